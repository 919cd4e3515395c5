#!/usr/bin/env bash
# Issue 11, findings 6 and 10 (CLI part). A KV reason or author holding terminal escape sequences
# (written through the API, which stores them) reaches no terminal raw: `rekey history`,
# `rekey kv metadata`, `rekey kv get` and `rekey kv put` show them escaped (\x1b, \x07) in their
# human-readable output, locally and through a server, while --json / -format=json keep them
# JSON-escaped. `rekey kv put -reason` refuses control characters. `rekey kv put field=VALUE`
# warns on stderr, in one line, that the value was on the command line, also when stderr is not a
# terminal.
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
# has_raw_ctl FILE: FILE holds a raw control byte that would drive a terminal (ESC, BEL, CR, BS).
has_raw_ctl() { grep -qaP '[\x1b\x07\x08\r]' "$1"; }
# expect_in_ci FILE TEXT: as expect_in, ignoring case (jansson writes \u001B).
expect_in_ci() { grep -qiF -- "$2" "$1" || { cat "$1"; fail "'$2' not found in $1"; }; }
# escaped FILE WHAT: the output holds no raw control byte and shows the escaped reason.
escaped() {
    if has_raw_ctl "$1"; then
        od -c "$1" | head -20
        fail "$2: a raw control byte reached the output"
    fi
    expect_in "$1" '\x1b]0;pwn\x07\x1b[2J'
}

# ---------------- finding 10: kv put field=VALUE warns without a terminal ----------------
init_store
# stderr is a file here, not a terminal: the warning is still given, as one line.
expect_exit 0 "$REKEY" kv put secret/w/one k=v
[ "$(wc -l <last.err)" -eq 1 ] || { cat last.err; fail "kv put field=VALUE: expected one line on stderr"; }
expect_in last.err "warning"
expect_in last.err "command line"
expect_in last.err "field=-"
# Values from stdin or a file: no warning.
printf 'from-stdin\n' | expect_exit 0 "$REKEY" kv put secret/w/two k=-
[ ! -s last.err ] || { cat last.err; fail "kv put field=-: unexpected stderr"; }
printf 'from-file\n' >v.secret
expect_exit 0 "$REKEY" kv put secret/w/three k=@v.secret
[ ! -s last.err ] || { cat last.err; fail "kv put field=@file: unexpected stderr"; }
# One inline value among others: still one line.
printf 'x\n' | expect_exit 0 "$REKEY" kv put secret/w/four a=- b=inline c=inline2
[ "$(wc -l <last.err)" -eq 1 ] || { cat last.err; fail "two inline values: expected one warning line"; }

# ---------------- -reason with control characters is refused by the CLI ----------------
expect_exit 2 "$REKEY" kv put -reason="$(printf 'a\033[2Jb')" secret/w/five k=-
expect_in last.err "control characters"
if has_raw_ctl last.err; then fail "the refusal quoted the reason raw"; fi
expect_exit 3 "$REKEY" kv get secret/w/five

# ---------------- a reason and an author with escapes, written through a server ----------------
# A server on a store of its own (key file), so that the local commands read it afterwards.
unset REKEY_STORE REKEY_KEY_FILE
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >rekey.yaml <<EOF
version: 1
$(store_yaml "$PWD/srv.db")
server: { listen: "127.0.0.1:$PORT" }
secrets: []
EOF
"$REKEY" -c rekey.yaml operator init -key-file="$PWD/srv.key" >init.secret
TOK=$(sed -n 's/^Initial Root Token: //p' init.secret)
[ -n "$TOK" ] || { cat init.secret; fail "no root token from operator init"; }
REKEY_KEY_FILE="$PWD/srv.key" "$REKEY" server -config "$PWD/rekey.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up "$A"
export REKEY_ADDR="$A" REKEY_TOKEN="$TOK"
api() { # METHOD PATH [BODY on stdin]: prints the HTTP status; the answer goes to api.out
    printf 'X-Vault-Token: %s\n' "$TOK" >hdr.secret
    curl -s -o api.out -w '%{http_code}' -X "$1" -H @hdr.secret --data-binary @- "$A/v1/$2"
}
REASON_JSON='\u001b]0;pwn\u0007\u001b[2J'
code=$(printf '{"data":{"k":"v1"},"options":{"reason":"%s"}}' "$REASON_JSON" | api POST secret/data/esc/app)
[ "$code" = 200 ] || { cat api.out; fail "write with an escaped reason: HTTP $code"; }
# A token whose display name holds an escape sequence becomes the author of its writes (unless
# the server refuses or cleans such a name, which is fine too).
code=$(printf '{"display_name":"x\\u001b]0;pwn\\u0007\\u001b[2J","policies":["root"]}' | api POST auth/token/create)
if [ "$code" = 200 ]; then
    CHILD=$($PY -c 'import json; print(json.load(open("api.out"))["auth"]["client_token"])')
    printf 'X-Vault-Token: %s\n' "$CHILD" >hdr2.secret
    # As in Vault, every byte of a display name outside [A-Za-z0-9-] becomes '-'.
    curl -s -o lookup.out -H @hdr2.secret "$A/v1/auth/token/lookup-self"
    dn=$($PY -c 'import json; print(json.load(open("lookup.out"))["data"]["display_name"])')
    [ "$dn" = "token-x--0-pwn---2J" ] || fail "display_name not cleaned: '$dn'"
    code=$(printf '{"data":{"k":"v2"},"options":{"reason":"%s"}}' "$REASON_JSON" |
        curl -s -o api.out -w '%{http_code}' -X POST -H @hdr2.secret --data-binary @- "$A/v1/secret/data/esc/app")
    [ "$code" = 200 ] || { cat api.out; fail "write by the child token: HTTP $code"; }
else
    echo "note: the server refuses a display_name with control characters (HTTP $code)"
    code=$(printf '{"data":{"k":"v2"},"options":{"reason":"%s"}}' "$REASON_JSON" | api POST secret/data/esc/app)
    [ "$code" = 200 ] || { cat api.out; fail "second write: HTTP $code"; }
fi
# The API stores what it was given: the JSON answer carries it JSON-escaped.
code=$(api GET secret/metadata/esc/app </dev/null)
[ "$code" = 200 ] || fail "metadata: HTTP $code"
expect_in_ci api.out '\u001b]0;pwn\u0007\u001b[2J'

# ---------------- client mode: the human-readable outputs escape ----------------
expect_exit 0 "$REKEY" history secret/esc/app
cp last.out history.out
escaped history.out "rekey history (client)"
expect_exit 0 "$REKEY" kv metadata secret/esc/app
cp last.out meta.out
escaped meta.out "rekey kv metadata (client)"
expect_exit 0 "$REKEY" kv get secret/esc/app
cp last.out get.out
escaped get.out "rekey kv get (client)"
# JSON output stays JSON: the reason is there, JSON-escaped, and parses back to the raw bytes.
expect_exit 0 "$REKEY" kv metadata -format=json secret/esc/app
if has_raw_ctl last.out; then fail "kv metadata -format=json: raw control byte"; fi
$PY - <<'PY' || fail "kv metadata -format=json does not carry the reason as JSON"
import json
m = json.load(open("last.out"))
assert any(v["reason"] == "\x1b]0;pwn\x07\x1b[2J" for v in m["versions"].values()), m
PY
expect_exit 0 "$REKEY" history --json secret/esc/app
if has_raw_ctl last.out; then fail "history --json: raw control byte"; fi
expect_in_ci last.out '\u001b]0;pwn\u0007\u001b[2J'

# A data field whose value holds an escape shows escaped in the kv get table, and raw with -field
# (for scripts) as vault does.
code=$(printf '{"data":{"note":"a\\u001b[2Jb\\nc"}}' | api POST secret/data/esc/val)
[ "$code" = 200 ] || { cat api.out; fail "write esc/val: HTTP $code"; }
expect_exit 0 "$REKEY" kv get secret/esc/val
if has_raw_ctl last.out; then fail "kv get table: raw control byte in a value"; fi
expect_in last.out 'a\x1b[2Jb\nc'
expect_exit 0 "$REKEY" kv get -field=note secret/esc/val
[ "$(cat last.out)" = "$(printf 'a\033[2Jb\nc')" ] || fail "kv get -field must stay raw"

# A server's error message is escaped too (it quotes a path the server was given).
expect_exit 3 "$REKEY" kv get secret/esc/nope
if has_raw_ctl last.err; then fail "error message: raw control byte"; fi
unset REKEY_ADDR REKEY_TOKEN
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

# ---------------- local mode on the same store: the same printers, the same escaping ----------------
export REKEY_STORE=$(store_loc "$PWD/srv.db") REKEY_KEY_FILE="$PWD/srv.key"
expect_exit 0 "$REKEY" history secret/esc/app
escaped last.out "rekey history (local)"
expect_exit 0 "$REKEY" kv metadata secret/esc/app
escaped last.out "rekey kv metadata (local)"
expect_exit 0 "$REKEY" kv get secret/esc/app
escaped last.out "rekey kv get (local)"
expect_exit 0 "$REKEY" kv get secret/esc/val
if has_raw_ctl last.out; then fail "kv get table (local): raw control byte in a value"; fi
expect_in last.out 'a\x1b[2Jb\nc'
expect_exit 0 "$REKEY" history --json secret/esc/app
if has_raw_ctl last.out; then fail "history --json (local): raw control byte"; fi
expect_in_ci last.out '\u001b]0;pwn\u0007\u001b[2J'
expect_not_in server.log "$TOK"
echo "ok"
