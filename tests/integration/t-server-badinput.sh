#!/usr/bin/env bash
# Hostile and malformed input against `rekey server -dev`, with curl and raw sockets: the
# preflight route `vault kv` asks first, error shapes, malformed JSON, wrong types, oversized
# bodies (with and without Content-Length), path traversal (plain, encoded, in writes) with the
# store compared before and after, unknown routes and methods, missing/wrong/expired/revoked
# tokens, a slow-loris client sending headers one byte a second (cut at the request deadline,
# server.request_timeout, shortened to 3 s here), a slow but complete client on a keep-alive
# connection (served: the deadline counts from the previous response), and throttling (429)
# after a burst of bad tokens, per client address. The slow clients run in the background.
. "$REKEY_TOP/tests/integration/lib.sh"

TOKEN="bi-root-$$-$RANDOM"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A="http://127.0.0.1:$PORT"
REQ_TIMEOUT=3 # server.request_timeout (default 30 s); dev mode honours it
printf 'X-Vault-Token: %s\n' "$TOKEN" >root.hdr.secret
printf 'version: 1\nserver:\n  request_timeout: %ss\nsecrets: []\n' "$REQ_TIMEOUT" >empty.yaml

REKEY_DEV_ROOT_TOKEN_ID=$TOKEN "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    -config "$PWD/empty.yaml" >banner.secret 2>server.log &
SERVER_PID=$!
SLOW_PID= OK_PID=
cleanup() {
    [ -n "$SLOW_PID" ] && kill "$SLOW_PID" 2>/dev/null
    [ -n "$OK_PID" ] && kill "$OK_PID" 2>/dev/null
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
done

# req METHOD PATH [BODY [HEADER FILE [CURL ARGS…]]]: answer in ./resp.json, status in $STATUS,
# headers in ./resp.hdr. An empty header file argument means no token.
expect() {
    [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS ($LAST)"; }
}
jis() {
    local got
    got=$(j "$1") || { cat resp.json; fail "answer is not JSON ($LAST)"; }
    [ "$got" = "$2" ] || { cat resp.json; echo; fail "$1: expected '$2', got '$got' ($LAST)"; }
}
# error_shape: the answer is {"errors": [strings…]} and nothing else.
error_shape() {
    jis 'list(d) == ["errors"] and isinstance(d["errors"], list) and all(isinstance(e, str) for e in d["errors"])' True
}
# bad CODE METHOD PATH [BODY [HDR [CURL ARGS…]]]: the request answers CODE with Vault's error shape.
bad() {
    local code=$1
    shift
    LAST="$*"
    req "$@"
    expect "$code"
    error_shape
}

# ---- a slow-loris client, started first: headers one byte per second, never finished ----
$PY - "$PORT" "$REQ_TIMEOUT" >slowloris.out 2>&1 <<'PY' &
import select, socket, sys, time
port, limit = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
start = time.monotonic()
data = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
closed = None
for i in range(limit + 20):
    try:
        s.send(data[i:i + 1] if i < len(data) else b"a")
    except OSError:
        closed = time.monotonic() - start
        break
    r, _, _ = select.select([s], [], [], 1.0)
    if r:
        try:
            got = s.recv(4096)
        except OSError:
            got = b""
        if not got or got.startswith(b"HTTP/1.1 4"):
            closed = time.monotonic() - start
            # drain whatever follows until the close
            break
print("closed after %.2f s" % closed if closed is not None else "never closed")
PY
SLOW_PID=$!

# ---- a slow but complete client: its request trickles in over a third of the deadline, then,
# on the same keep-alive connection, a second request after a pause, when the connection is
# older than the deadline but the previous response is not: both must be answered ----
$PY - "$PORT" "$REQ_TIMEOUT" >slowok.out 2>&1 <<'PY' &
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
start = time.monotonic()
req = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
buf = b""
def response():
    global buf
    while b"\r\n\r\n" not in buf:
        got = s.recv(4096)
        if not got:
            raise SystemExit("closed by the server after %.2f s" % (time.monotonic() - start))
        buf += got
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        got = s.recv(4096)
        if not got:
            raise SystemExit("closed mid-body")
        rest += got
    buf = rest[n:]
    return head.split(b"\r\n")[0].decode()
# Eight pieces over a third of the deadline (not a byte per sleep: on a loaded machine each
# sleep overshoots, and fifty of them could carry the client itself past the deadline).
pieces = 8
size = -(-len(req) // pieces)
for i in range(0, len(req), size):
    s.send(req[i:i + size])
    time.sleep(limit / 3 / pieces)
first = response()
time.sleep(limit * 2 / 3) # the connection is now older than the deadline
s.send(req)
second = response()
print("%s; %s; %.2f s" % (first, second, time.monotonic() - start))
PY
OK_PID=$!

# ---- the preflight route `vault kv get` asks first ----
LAST=preflight
req GET /v1/sys/internal/ui/mounts/secret
expect 200
jis 'd["data"]["type"], d["data"]["path"], d["data"]["options"]["version"]' "('kv', 'secret/', '2')"
req GET /v1/sys/internal/ui/mounts/secret/some/deep/path
expect 200
jis 'd["data"]["path"]' 'secret/'
bad 403 GET /v1/sys/internal/ui/mounts/nomount
bad 403 GET /v1/sys/internal/ui/mounts/secret "" ""   # no token

# ---- a known state to compare after the hostile requests ----
req POST /v1/secret/data/keep/one '{"data":{"v":"1"}}'
expect 200
req POST /v1/secret/data/b '{"data":{"v":"b"}}'
expect 200
snapshot() { # $1 = file: the list of the root and keep/, and the metadata of keep/one and b
    local out=$1 p
    : >"$out"
    for p in "LIST /v1/secret/metadata" "LIST /v1/secret/metadata/keep" \
             "GET /v1/secret/metadata/keep/one" "GET /v1/secret/metadata/b" \
             "GET /v1/secret/data/b"; do
        # shellcheck disable=SC2086
        req $p
        echo "$p $STATUS" >>"$out"
        $PY -c 'import json; d=json.load(open("resp.json")); d.pop("request_id", None); print(json.dumps(d, sort_keys=True))' >>"$out"
    done
}
snapshot before.secret

# ---- malformed JSON and wrong types: 400, naming the problem, never quoting the value ----
bad 400 POST /v1/secret/data/keep/one '{bad'
jis '"failed to parse JSON input" in d["errors"][0]' True
bad 400 POST /v1/secret/data/keep/one '[1,2]'
bad 400 POST /v1/secret/data/keep/one '"just a string"'
bad 400 POST /v1/secret/data/keep/one '{"data":{"v":"x"},"data":{"v":"y"}}'
bad 400 POST /v1/secret/data/keep/one '{"data":{"v":"x"}} trailing'
bad 400 POST /v1/secret/data/keep/one "$(printf '{"data":{"v":"\xff\xfe"}}')"
deep=$($PY -c 'print("{\"data\":" + "{\"a\":" * 70 + "1" + "}" * 70 + "}")')
bad 400 POST /v1/secret/data/keep/one "$deep"
bad 400 POST /v1/secret/data/keep/one '{"data":"SECRET-VALUE-QQ"}'
jis 'd["errors"][0]' 'invalid "data": expected an object, got string'
expect_not_in resp.json "SECRET-VALUE-QQ"
bad 400 POST /v1/secret/data/keep/one '{"options":{"cas":1}}'
bad 400 POST /v1/secret/data/keep/one '{"data":{"v":"x"},"options":{"cas":"SECRET-CAS-QQ"}}'
expect_not_in resp.json "SECRET-CAS-QQ"
bad 400 POST /v1/secret/data/keep/one '{"data":{"v":"x"},"options":{"cas":-1}}'
bad 400 POST /v1/secret/data/keep/one '{"data":{"v":"x"},"options":"x"}'
bad 400 POST /v1/secret/metadata/keep/one '{"max_versions":"many"}'
jis 'd["errors"][0]' 'invalid "max_versions": expected an integer, got string'
bad 400 POST /v1/secret/metadata/keep/one '{"max_versions":-3}'
bad 400 POST /v1/secret/metadata/keep/one '{"cas_required":[]}'
bad 400 POST /v1/secret/metadata/keep/one '{"delete_version_after":"soon"}'
bad 400 POST /v1/secret/metadata/keep/one '{"custom_metadata":{"k":1}}'
bad 400 POST /v1/secret/delete/keep/one '{"versions":"one"}'
bad 400 POST /v1/secret/destroy/keep/one '{}'
bad 400 POST /v1/secret/config '{"max_versions":true}'
bad 400 POST /v1/auth/token/create '{"policies":"x"}'
bad 400 POST /v1/auth/token/create '{"ttl":[]}'
bad 400 POST /v1/auth/token/create '{"num_uses":-1}'
bad 400 PUT /v1/sys/policies/acl/x '{"policy":42}'
bad 400 PUT /v1/sys/policies/acl/x '{"policy":"path \"a\" { capabilities = [\"fly\"] }"}'
bad 415 PATCH /v1/secret/data/keep/one '{"data":{"v":"x"}}'
req POST /v1/secret/data/keep/one '{"data":{"v":"2"},"unknown_field":{"ignored":true}}'
expect 200 # unknown fields are ignored, as in Vault
req POST /v1/secret/data/keep/one '{"data":{"v":"1"}}'
expect 200
snapshot before.secret # the two writes above are the only changes

# ---- bodies over 1 MiB: 413, with Content-Length and chunked ----
head -c 1100000 /dev/zero | tr '\0' 'a' >big.body
bad 413 POST /v1/secret/data/keep/one @big.body
bad 413 POST /v1/secret/data/keep/one @big.body root.hdr.secret -H 'Transfer-Encoding: chunked'
bad 413 PUT /v1/sys/policies/acl/big @big.body
# Just under the limit is parsed (and refused for its content, not its size).
$PY -c 'import json; print(json.dumps({"data": {"v": "a" * 600000}}))' >large.body
bad 400 POST /v1/secret/data/keep/large @large.body # data is limited to 512 KiB
req GET /v1/sys/health "" ""
expect 200 # the server is fine after those

# ---- path traversal and odd paths: refused before routing, nothing written ----
for p in "/v1/secret/data/keep/../b" "/v1/secret/data/../sys/seal" "/v1/secret/data/./b" \
         "/v1/secret/data/keep/%2e%2e/b" "/v1/secret/data/keep/%2E%2E/b" "/v1/secret/data/%2e/b" \
         "/v1/secret/data/keep%2fone" "/v1/secret/data/keep%2Fone" "/v1/secret/data/keep//one" \
         "/v1/secret/data/keep%5cone" "/v1/secret/data/keep%00one" "/v1/secret/data/keep%0aone" \
         "/v1/secret/data/keep/one%00" "/v1//secret/data/b" \
         "/v1/secret/metadata/keep/.." "/v1/secret/destroy/keep/../b"; do
    for m in GET POST DELETE; do
        LAST="$m $p"
        req "$m" "$p" '{"data":{"v":"EVIL"},"versions":[1]}' root.hdr.secret --path-as-is
        case "$STATUS" in 400|404) ;; *) cat resp.json; fail "$m $p: expected 400 or 404, got $STATUS";; esac
        error_shape
    done
done
bad 400 GET /v1/secret/data/%c3%a9
# No double decoding: %252e%252e is the literal name "%2e%2e" (valid printable ASCII), not "..".
LAST="double-encoded dots"
req POST /v1/secret/data/%252e%252e/b '{"data":{"v":"literal"}}'
case "$STATUS" in
    200) req DELETE /v1/secret/metadata/%252e%252e/b; expect 204 ;;
    400) error_shape ;;
    *) cat resp.json; fail "a double-encoded path answered $STATUS" ;;
esac
bad 400 POST "/v1/secret/data/$($PY -c 'print("x" * 600)')" '{"data":{"v":"1"}}'
snapshot after.secret
cmp -s before.secret after.secret || { diff before.secret after.secret; fail "the store changed"; }

# ---- unknown routes: 404 {"errors":[]}; wrong methods: 405 with Allow ----
for p in /v1/nope /v1/secret /v2/secret/data/b / /v1/sys/nope /v1/secret/subkeys/b /v1/cubbyhole/x; do
    bad 404 GET "$p"
done
jis 'd["errors"]' '[]'
bad 405 DELETE /v1/sys/health
grep -qi '^Allow: ' resp.hdr || fail "405 without an Allow header"
bad 405 PATCH /v1/sys/mounts
bad 405 PUT /v1/sys/seal-status
bad 405 BREW /v1/secret/data/b
bad 405 DELETE /v1/auth/token/create

# ---- tokens: missing, wrong, malformed, expired, revoked → the same 403 ----
printf 'X-Vault-Token: hvs.bi-not-a-token\n' >bad.hdr.secret
printf 'X-Vault-Token: %s\n' "$($PY -c 'print("x" * 5000)')" >long.hdr.secret
bad 403 GET /v1/secret/data/b "" ""
jis 'd["errors"]' "['permission denied']"
bad 403 GET /v1/secret/data/b "" bad.hdr.secret
jis 'd["errors"]' "['permission denied']"
bad 403 GET /v1/secret/data/b "" long.hdr.secret
req POST /v1/auth/token/create '{"policies":["default"],"ttl":"1s"}'
expect 200
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >exp.hdr.secret
req POST /v1/auth/token/create '{"policies":["default"],"ttl":"1h"}'
expect 200
REV=$(j 'd["auth"]["client_token"]')
printf 'X-Vault-Token: %s\n' "$REV" >rev.hdr.secret
printf 'Authorization: Bearer %s\n' "$REV" >rev-bearer.hdr.secret
req GET /v1/auth/token/lookup-self "" rev-bearer.hdr.secret
expect 200 # Authorization: Bearer works too
req POST /v1/auth/token/revoke "{\"token\":\"$REV\"}"
expect 204
bad 403 GET /v1/auth/token/lookup-self "" rev.hdr.secret
jis 'd["errors"]' "['permission denied']"
sleep 2
bad 403 GET /v1/auth/token/lookup-self "" exp.hdr.secret
jis 'd["errors"]' "['permission denied']"
expect_not_in server.log "hvs.bi-not-a-token"
expect_not_in server.log "$REV"

# ---- throttling: a burst of bad tokens from 127.0.0.2 gets 429; 127.0.0.1 is unaffected ----
codes=""
for _ in $(seq 1 14); do
    req GET /v1/auth/token/lookup-self "" bad.hdr.secret --interface 127.0.0.2
    codes="$codes $STATUS"
    [ "$STATUS" != 429 ] || cp resp.hdr r429.hdr
done
case "$codes" in *403*429*) ;; *) fail "bad tokens: expected 403s then 429, got:$codes";; esac
grep -qi '^Retry-After: ' r429.hdr || fail "429 without Retry-After"
LAST="429 shape"
error_shape
req GET /v1/auth/token/lookup-self "" root.hdr.secret --interface 127.0.0.2
expect 200 # a valid token is served: failures are throttled, not addresses (t-server-throttle)
req GET /v1/auth/token/lookup-self
expect 200 # another client address is not throttled
req GET /v1/sys/health "" "" --interface 127.0.0.2
expect 200 # unauthenticated routes still answer

# ---- the slow client was cut at the request deadline, not before; the slow but complete
# client was served; the server kept serving ----
wait "$SLOW_PID" || true
SLOW_PID=
cat slowloris.out
secs=$(sed -n 's/^closed after \([0-9.]*\) s$/\1/p' slowloris.out)
[ -n "$secs" ] || fail "the slow client was never disconnected"
# The deadline starts when the server accepts, after the client's connect returned, so the
# cut cannot come earlier than the timeout; the reaper looks every 0.2 s (slack for a busy CI).
awk -v s="$secs" -v t="$REQ_TIMEOUT" 'BEGIN { exit !(s >= t - 0.05 && s <= t + 3) }' ||
    fail "the slow client was cut after $secs s, expected $REQ_TIMEOUT to $((REQ_TIMEOUT + 3)) s"
expect_in server.log "request not received within ${REQ_TIMEOUT}s"
wait "$OK_PID" || { cat slowok.out; fail "the slow but complete client was not served"; }
OK_PID=
cat slowok.out
expect_in slowok.out "HTTP/1.1 200 OK; HTTP/1.1 200 OK;"
req GET /v1/secret/data/b
expect 200
kill -0 "$SERVER_PID" || fail "the server died"
echo "t-server-badinput: ok"
