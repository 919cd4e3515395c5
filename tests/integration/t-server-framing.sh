#!/usr/bin/env bash
# Request framing against `rekey server -dev`, with raw bytes (no client library sends these):
# Content-Length with Transfer-Encoding, an unknown transfer coding, two lengths, a NUL byte in
# the path (which libmicrohttpd would cut the path at: "/v1/secret/data/app/db\0xyz" read
# app/db) or in a header value ("X-Vault-Token: TOKEN\0junk" authenticated as TOKEN), a folded
# header line. Each is answered 400 and the connection closed, no handler runs (the secret is
# not read, the token is not spent or logged); well-formed requests around them are served.
. "$REKEY_TOP/tests/integration/lib.sh"

TOKEN="fr-root-$$-$RANDOM"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A="http://127.0.0.1:$PORT"
printf 'X-Vault-Token: %s\n' "$TOKEN" >root.hdr.secret
printf '%s' "$TOKEN" >root.token.secret
printf 'version: 1\nsecrets: []\n' >empty.yaml

REKEY_DEV_ROOT_TOKEN_ID=$TOKEN "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    -config "$PWD/empty.yaml" >banner.secret 2>server.log &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
done

# A secret at app/db, and a limited token (2 uses) whose uses show whether a request ran.
curl -sf -o /dev/null -H @root.hdr.secret -X POST --data '{"data":{"password":"fr-value"}}' \
    "$A/v1/secret/data/app/db" || fail "writing app/db"
curl -sf -H @root.hdr.secret -X POST --data '{"policies":["default"],"num_uses":2}' \
    "$A/v1/auth/token/create" >limited.json.secret || fail "creating the limited token"
$PY -c 'import json; print(json.load(open("limited.json.secret"))["auth"]["client_token"], end="")' \
    >limited.token.secret

# raw.py sends each case on its own connection and prints one line per case:
# "<name> <status> <closed|open>".
cat >raw.py <<'PY'
import socket, sys
port = int(sys.argv[1])
root = open("root.token.secret").read().encode()
limited = open("limited.token.secret").read().encode()
H = b"Host: 127.0.0.1\r\n"
def case(name, raw):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    s.sendall(raw)
    buf, closed = b"", False
    try:
        while True:
            got = s.recv(65536)
            if not got:
                closed = True
                break
            buf += got
    except socket.timeout:
        pass
    s.close()
    status = buf.split(b" ", 2)[1].decode() if buf.startswith(b"HTTP/1.1 ") else "none"
    print(name, status, "closed" if closed else "open", flush=True)
    open("resp-%s.out" % name, "wb").write(buf)
body = b'{"data":{"password":"fr-other"}}'
chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
tok = b"X-Vault-Token: " + root + b"\r\n"
case("cl-te", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked) + chunked)
case("te-cl", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(chunked) + chunked)
case("te-gzip", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Transfer-Encoding: gzip\r\n\r\n" + body)
case("te-list", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked)
case("cl-cl", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Content-Length: %d\r\nContent-Length: 2\r\n\r\n" % len(body) + body)
# NUL in the path: would read app/db with the limited token's use
case("nul-path", b"GET /v1/secret/data/app/db\0xyz HTTP/1.1\r\n" + H +
     b"X-Vault-Token: " + limited + b"\r\n\r\n")
# NUL in the token header: would authenticate as the limited token
case("nul-token", b"GET /v1/auth/token/lookup-self HTTP/1.1\r\n" + H +
     b"X-Vault-Token: " + limited + b"\0junk\r\n\r\n")
case("nul-token-last", b"GET /v1/auth/token/lookup-self HTTP/1.1\r\n" + H +
     b"X-Vault-Token: " + limited + b"\0\0\0\0junk\r\n\r\n")
case("nul-bearer", b"GET /v1/auth/token/lookup-self HTTP/1.1\r\n" +
     b"Authorization: Bearer " + limited + b"\0junk\r\n" + H + b"\r\n")
case("folded", b"GET /v1/auth/token/lookup-self HTTP/1.1\r\n" + H +
     b"X-Vault-Token: " + limited + b"\r\n junk\r\n\r\n")
# well-formed: served (the first spends one use of the limited token)
case("ok-limited", b"GET /v1/auth/token/lookup-self HTTP/1.1\r\n" + H +
     b"X-Vault-Token: " + limited + b"\r\nConnection: close\r\n\r\n")
case("ok-chunked", b"POST /v1/secret/data/app/ch HTTP/1.1\r\n" + H + tok +
     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
case("ok-length", b"POST /v1/secret/data/app/cl HTTP/1.1\r\n" + H + tok +
     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
PY
$PY raw.py "$PORT" >cases.out || { cat cases.out; fail "raw.py failed"; }
cat cases.out
for c in cl-te te-cl te-gzip te-list cl-cl nul-path nul-token nul-token-last nul-bearer folded; do
    grep -qx "$c 400 closed" cases.out || fail "$c: expected '400 closed', got '$(grep "^$c " cases.out)'"
    grep -qF '"errors":["malformed request: ' "resp-$c.out" || { cat "resp-$c.out"; fail "$c: no error body"; }
    grep -qiF 'Connection: close' "resp-$c.out" || fail "$c: no Connection: close"
done
for c in ok-limited ok-chunked ok-length; do
    grep -qE "^$c 20[04] " cases.out || fail "$c: expected 200/204, got '$(grep "^$c " cases.out)'"
done

# No refused request ran: app/cl was never written by them (ok-length wrote version 1 only),
# the limited token has one use left (ok-limited spent the other), app/db is unchanged.
STATUS=$(curl -s -o meta.json -w '%{http_code}' -H @root.hdr.secret "$A/v1/secret/metadata/app/cl")
[ "$STATUS" = 200 ] || fail "metadata app/cl: $STATUS"
$PY -c 'import json,sys; d=json.load(open("meta.json"))["data"]; sys.exit(0 if d["current_version"]==1 else 1)' ||
    { cat meta.json; fail "a refused request wrote app/cl"; }
STATUS=$(curl -s -o self.json -w '%{http_code}' -H "X-Vault-Token: $(cat limited.token.secret)" \
    "$A/v1/auth/token/lookup-self")
[ "$STATUS" = 200 ] || fail "the limited token was spent by a refused request ($STATUS)"
$PY -c 'import json,sys; sys.exit(0 if json.load(open("self.json"))["data"]["num_uses"]==0 else 1)' ||
    { cat self.json; fail "expected the last use to be spent now"; }
expect_not_in server.log "$(cat limited.token.secret)"
expect_not_in server.log "$TOKEN"
kill -0 "$SERVER_PID" || fail "the server died"
echo "framing: all refused with 400 and a closed connection"
