#!/usr/bin/env bash
# Issue 11, finding 7: a malformed unseal share is refused. PUT /v1/sys/unseal with a share of
# the wrong length or encoding ({"key":"0102"}, a truncated or lengthened share, base64 of the
# wrong length, share number 0, not hex nor base64) answers 400 and leaves the unseal progress
# and nonce as they were; the right shares, hex or base64 (Vault's keys_base64), then unseal.
# `rekey operator unseal` refuses a malformed share before sending it. No share reaches a
# command line or the server's log.
. "$REKEY_TOP/tests/integration/lib.sh"

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1/v1/sys/health" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
        sleep 0.1
    done
    fail "the server did not come up"
}

PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >rekey.yaml <<EOF
version: 1
$(store_yaml "$PWD/shares.db")
server: { listen: "127.0.0.1:$PORT" }
secrets: []
EOF
"$REKEY" server -config "$PWD/rekey.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up "$A"

# Initialise through the API (3 shares, threshold 2): the answer holds keys and keys_base64.
printf '{"secret_shares":3,"secret_threshold":2}' |
    curl -s -o init.secret -w '%{http_code}' -X PUT --data-binary @- "$A/v1/sys/init" >code.txt
[ "$(cat code.txt)" = 200 ] || { cat init.secret; fail "sys/init: HTTP $(cat code.txt)"; }
# share N hex|base64: prints share N (1-based) from the init answer.
share() { $PY -c 'import json,sys; d=json.load(open("init.secret")); print(d["keys" if sys.argv[2]=="hex" else "keys_base64"][int(sys.argv[1])-1])' "$1" "$2"; }
S1=$(share 1 hex)
[ ${#S1} -eq 66 ] || fail "a share of a 32-byte root key should be 66 hex digits, not ${#S1}"

# unseal BODY_FILE: PUT sys/unseal with the JSON in BODY_FILE; the status code on stdout, the
# answer in unseal.out.
unseal() { curl -s -o unseal.out -w '%{http_code}' -X PUT --data-binary @"$1" "$A/v1/sys/unseal"; }
# key_body SHARE: writes {"key":SHARE} to key.secret (the share never goes on a command line).
key_body() { printf '{"key":"%s"}' "$1" >key.secret; }
status_field() { curl -s "$A/v1/sys/seal-status" | $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

key_body "$S1"
[ "$(unseal key.secret)" = 200 ] || { cat unseal.out; fail "the first share was refused"; }
[ "$(status_field progress)" = 1 ] || fail "progress after the first share"
NONCE=$(status_field nonce)
[ -n "$NONCE" ] || fail "no unseal nonce after the first share"

# Malformed shares: each answers 400 and changes nothing. S1's bytes with another length or
# encoding are used so that a share that "counted" would show as progress 2 (or a reset).
S2=$(share 2 hex)
X0="00${S2:2}"                        # share number 0
B64SHORT=$($PY -c 'import base64; print(base64.b64encode(bytes.fromhex("0102")).decode())')
B64LONG=$($PY -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1]+"00")).decode())' "$S2")
for bad in "0102" "${S2:0:64}" "${S2}00" "${S2:0:65}" "$X0" "$B64SHORT" "$B64LONG" \
    "not-a-share" "${S2:0:30} ${S2:30}" "zz${S2:2}"; do
    key_body "$bad"
    code=$(unseal key.secret)
    [ "$code" = 400 ] || { cat unseal.out; fail "a malformed share (${#bad} characters) answered $code"; }
    if grep -qF -- "$S2" unseal.out; then fail "the error quotes the share"; fi
    [ "$(status_field progress)" = 1 ] || fail "a malformed share (${#bad} characters) changed the progress"
    [ "$(status_field nonce)" = "$NONCE" ] || fail "a malformed share reset the unseal attempt"
    [ "$(status_field sealed)" = True ] || fail "sealed after a malformed share"
done
# The review's reproduction, with its message.
key_body "0102"
unseal key.secret >/dev/null
expect_in unseal.out "holds 2 bytes"

# The CLI refuses a malformed share before sending it; the progress stays.
export REKEY_ADDR="$A"
printf '0102\n' | expect_exit 3 "$REKEY" operator unseal
expect_in last.err "line 1 of stdin, not sent"
expect_in last.err "holds 2 bytes"
printf '\n%s\n' "${S2:0:64}" | expect_exit 3 "$REKEY" operator unseal
expect_in last.err "line 2 of stdin, not sent"
[ "$(status_field progress)" = 1 ] || fail "the CLI changed the progress with a malformed share"
[ "$(status_field nonce)" = "$NONCE" ] || fail "the CLI reset the unseal attempt"

# A share given twice is refused too, without counting.
key_body "$S1"
[ "$(unseal key.secret)" = 400 ] || fail "a repeated share was accepted"
[ "$(status_field progress)" = 1 ] || fail "a repeated share changed the progress"

# The second share, in base64 (Vault's keys_base64), unseals.
key_body "$(share 2 base64)"
[ "$(unseal key.secret)" = 200 ] || { cat unseal.out; fail "the base64 share was refused"; }
[ "$(status_field sealed)" = False ] || fail "still sealed after two good shares"

# Once unsealed, a share is not looked at: the answer is the status, and nothing changes.
key_body "0102"
unseal key.secret >/dev/null
[ "$(status_field sealed)" = False ] || fail "a malformed share sealed the server"

# Seal again and unseal through the CLI with hex shares (upper case is fine), 3 then 1.
TOK=$($PY -c 'import json; print(json.load(open("init.secret"))["root_token"])')
export REKEY_TOKEN="$TOK"
expect_exit 0 "$REKEY" operator seal
S3=$(share 3 hex)
printf '%s\n%s\n' "${S3^^}" "$S1" | expect_exit 0 "$REKEY" operator unseal
expect_in last.out "Sealed             false"

expect_not_in server.log "$S1"
expect_not_in server.log "$S2"
expect_not_in server.log "$S3"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
echo "ok"
