#!/usr/bin/env bash
# Failed-authentication throttling against `rekey server -dev` (docs/server.md, "Failed-
# authentication throttling"): failures are throttled, not addresses. After a burst of bad
# tokens from 127.0.0.3 its bad tokens (and a missing one) get 429, while a valid token from the
# same address, root or not, is still served. X-Forwarded-For counts only from a trusted proxy
# (server.trusted_proxies: 127.0.0.2 here), and then only its right-most untrusted address:
# clients behind one proxy are throttled apart, the proxy itself is not locked out, and an
# address a client puts on the left of the header changes nothing. A bad trusted_proxies entry
# stops the server at start with file:line:col.
. "$REKEY_TOP/tests/integration/lib.sh"

TOKEN="th-root-$$-$RANDOM"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A="http://127.0.0.1:$PORT"
printf 'X-Vault-Token: %s\n' "$TOKEN" >root.hdr.secret
printf 'X-Vault-Token: hvs.th-not-a-token\n' >bad.hdr
printf 'version: 1\nserver:\n  trusted_proxies: [127.0.0.2, "192.0.2.0/24"]\nsecrets: []\n' >proxy.yaml

# A bad entry: refused at start, with the place in the file.
printf 'version: 1\nserver:\n  trusted_proxies:\n    - 127.0.0.2\n    - 10.0.0.0/33\nsecrets: []\n' >bad.yaml
expect_exit 3 "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" -config "$PWD/bad.yaml"
expect_in last.err "bad.yaml:5:"
expect_in last.err "server.trusted_proxies"
expect_in last.err "10.0.0.0/33"

REKEY_DEV_ROOT_TOKEN_ID=$TOKEN "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    -config "$PWD/proxy.yaml" >banner.secret 2>server.log &
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

# st HDRFILE FROM [CURL ARGS…]: the status of GET lookup-self with HDRFILE's token ("" = none)
# from source address FROM.
st() {
    local hdr=$1 from=$2
    shift 2
    local args=(-s -o resp.json -D resp.hdr -w '%{http_code}' --interface "$from")
    [ -n "$hdr" ] && args+=(-H "@$hdr")
    curl "${args[@]}" "$@" "$A/v1/auth/token/lookup-self"
}
# The bucket gives one failure back per second, so a throttled client that keeps failing gets
# an occasional 403 among its 429s (more on a slow machine); a client that is not throttled
# has 10 failures at once and gets only 403s in 6 tries.
# throttled HDR FROM [CURL ARGS…]: 6 requests; succeeds when at least one got 429.
throttled() {
    local hdr=$1 from=$2 n=0
    shift 2
    for _ in 1 2 3 4 5 6; do
        [ "$(st "$hdr" "$from" "$@")" = 429 ] || continue
        n=$((n + 1))
        grep -qi '^Retry-After: ' resp.hdr || fail "429 without Retry-After"
    done
    [ "$n" -ge 1 ]
}
# burst FROM [CURL ARGS…]: bad tokens until one gets 429 (at most 40); prints the statuses. The
# first 10 are always 403: a client starts with 10.
burst() {
    local codes="" from=$1 c
    shift
    for _ in $(seq 1 40); do
        c=$(st bad.hdr "$from" "$@")
        codes="$codes $c"
        [ "$c" = 429 ] && break
    done
    echo "$codes"
}

# A child token, not root.
curl -sf -H @root.hdr.secret -X POST --data '{"policies":["default"]}' \
    "$A/v1/auth/token/create" >child.json.secret || fail "creating a child token"
printf 'X-Vault-Token: %s\n' \
    "$($PY -c 'import json; print(json.load(open("child.json.secret"))["auth"]["client_token"])')" \
    >child.hdr.secret

# ---- an address that failed too often: its failures get 429, its valid tokens are served ----
codes=$(burst 127.0.0.3)
case "$codes" in " 403 403 403 403 403 403 403 403 403 403 "*429) ;;
    *) fail "bad tokens from 127.0.0.3: expected 10 403s, then 429, got:$codes" ;; esac
throttled bad.hdr 127.0.0.3 || fail "a bad token while throttled"
throttled "" 127.0.0.3 || fail "a missing token while throttled"
[ "$(st root.hdr.secret 127.0.0.3)" = 200 ] || fail "the root token was locked out by the throttle"
[ "$(st child.hdr.secret 127.0.0.3)" = 200 ] || fail "a valid token was locked out by the throttle"
throttled bad.hdr 127.0.0.3 || fail "valid tokens reset the failure count"
# X-Forwarded-For from an untrusted peer is ignored: it does not escape the throttle
throttled bad.hdr 127.0.0.3 -H 'X-Forwarded-For: 198.51.100.99' ||
    fail "X-Forwarded-For from an untrusted peer was believed"
[ "$(st bad.hdr 127.0.0.1)" = 403 ] || fail "another address is throttled too"

# ---- through the trusted proxy 127.0.0.2: clients apart, by the right-most untrusted address ----
codes=$(burst 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7')
case "$codes" in " 403 403 403 403 403 403 403 403 403 403 "*429) ;;
    *) fail "bad tokens via the proxy: expected 10 403s, then 429, got:$codes" ;; esac
expect_in server.log "failed authentication from 198.51.100.7"
throttled bad.hdr 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7' || fail "client 7 via proxy"
[ "$(st root.hdr.secret 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7')" = 200 ] ||
    fail "a valid token via the proxy was locked out"
[ "$(st bad.hdr 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.8')" = 403 ] ||
    fail "another client behind the proxy is throttled too"
[ "$(st bad.hdr 127.0.0.2)" = 403 ] || fail "the proxy's own address is throttled"
# what the client wrote on the left of the header does not count: the proxy appended .7
throttled bad.hdr 127.0.0.2 -H 'X-Forwarded-For: 203.0.113.1, 198.51.100.7' ||
    fail "an address a client prepends escaped the throttle"
# hops through other trusted proxies (192.0.2.0/24) are skipped; several headers read in order
throttled bad.hdr 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7, 192.0.2.5' ||
    fail "a trusted hop was taken as the client"
throttled bad.hdr 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.7' -H 'X-Forwarded-For: 192.0.2.9' ||
    fail "the second X-Forwarded-For header was not read after the first"

expect_not_in server.log "hvs.th-not-a-token"
expect_not_in server.log "$TOKEN"
kill -0 "$SERVER_PID" || fail "the server died"
echo "throttle: failures throttled per client, valid tokens served"
