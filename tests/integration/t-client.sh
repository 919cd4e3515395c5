#!/usr/bin/env bash
# The CLI as a client (REKEY_ADDR / VAULT_ADDR): kv put/get/list/metadata, status, rotate,
# history, rollback and recover through a `rekey server -dev` print what the same commands print
# on a local store; VAULT_* variables and ~/.vault-token work; a wrong token, an unreachable
# address, a sealed server give clear errors; operator init/unseal/seal work against a server
# started on a shares store. No token, share or value ever appears in the CLI's argv.
. "$REKEY_TOP/tests/integration/lib.sh"

wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1/v1/sys/health" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
        sleep 0.1
    done
    fail "the server did not come up"
}
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

# Normalises what differs between two runs: times, fingerprints (keyed per store, so the same
# value has another in the server's store), and the author (the local author is the Unix user;
# the server's API does not send it).
norm() {
    sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TIME/g' -e 's/hmac:[0-9a-f]{12}/FP/g' \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}Z/TIME/g' \
        -e '/^author /d' -e '/"author":/d' "$1"
}
# same LOCAL REMOTE: the two outputs agree once normalised.
same() {
    norm "$1" >"$1.n"
    norm "$2" >"$2.n"
    diff -u "$1.n" "$2.n" || fail "client mode output differs from local mode ($1 vs $2)"
}

HOME="$PWD/home"
mkdir -p "$HOME"
export HOME
TOK="cli-root-$$-$RANDOM$RANDOM"
cat >rekey.yaml <<EOF
version: 1
$(store_yaml local.db)
hooks:
  render:
    type: file
    path: $PWD/target.secret
    template: "KEY={{new}}"
  check:
    type: exec
    command: [sh, -c, 'test ! -e $PWD/fail-test.flag']
secrets:
  - path: secret/app/key
    kind: generated
    format: "k-{hex:24}"
    field: key
    every: 30d
    grace: 1h
    apply: [render]
    test: [check]
  - path: secret/app/manual
    kind: manual
    field: api_key
    every: 90d
    grace: 1h
EOF

# ---------------- the same commands on a local store, for comparison ----------------
export REKEY_STORE=$(store_loc "$PWD/local.db") REKEY_KEY_FILE="$PWD/local.key"
"$REKEY" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
run_kv_commands() { # DIR: writes each command's output to DIR/*.out
    local d=$1
    mkdir -p "$d"
    printf 'p4ss-from-stdin\n' | "$REKEY" kv put secret/team/db password=- user=app >"$d/put1.out"
    "$REKEY" kv put -cas=1 secret/team/db password=second user=app2 >"$d/put2.out" 2>/dev/null
    "$REKEY" kv put -format=json secret/team/other k=v >"$d/put3.out"
    "$REKEY" kv get secret/team/db >"$d/get.out"
    "$REKEY" kv get -version=1 secret/team/db >"$d/get1.out"
    "$REKEY" kv get -format=json secret/team/db >"$d/getjson.out"
    "$REKEY" kv get -field=password secret/team/db >"$d/field.out"
    "$REKEY" kv get -field=password -version=1 secret/team/db >"$d/field1.out"
    "$REKEY" kv get -mount=secret -field=user team/db >"$d/mount.out"
    "$REKEY" kv list secret >"$d/list-root.out"
    "$REKEY" kv list secret/team/ >"$d/list.out"
    "$REKEY" kv list -format=json secret/team >"$d/listjson.out"
    "$REKEY" kv metadata secret/team/db >"$d/meta.out"
    "$REKEY" kv metadata get -format=json secret/team/db >"$d/metajson.out"
    set +e
    "$REKEY" kv get secret/team/nope >"$d/nope.out" 2>&1; echo "rc=$?" >>"$d/nope.out"
    "$REKEY" kv get -version=9 secret/team/db >"$d/nover.out" 2>&1; echo "rc=$?" >>"$d/nover.out"
    "$REKEY" kv get -field=nope secret/team/db >"$d/nofield.out" 2>&1; echo "rc=$?" >>"$d/nofield.out"
    "$REKEY" kv list secret/empty >"$d/list-empty.out" 2>&1; echo "rc=$?" >>"$d/list-empty.out"
    "$REKEY" kv put -cas=1 secret/team/db password=x >"$d/cas.out" 2>&1; echo "rc=$?" >>"$d/cas.out"
    set -e
}
run_rotate_commands() { # DIR
    local d=$1
    "$REKEY" status >"$d/status0.out" || true
    "$REKEY" rotate --dry-run secret/app/key >"$d/dry.out"
    "$REKEY" rotate secret/app/key >"$d/rot1.out"
    "$REKEY" rotate --reason "second one" secret/app/key >"$d/rot2.out"
    printf 'manual-value-7Q\n' | "$REKEY" rotate --from-stdin secret/app/manual >"$d/rotm.out"
    "$REKEY" status >"$d/status1.out"
    "$REKEY" status --json >"$d/status1json.out"
    "$REKEY" rollback secret/app/key >"$d/rollback.out"
    "$REKEY" history secret/app/key >"$d/history.out"
    "$REKEY" history --json secret/app/key >"$d/historyjson.out"
    "$REKEY" recover >"$d/recover.out"
    touch fail-test.flag
    set +e
    "$REKEY" rotate secret/app/key >"$d/rotfail.out" 2>"$d/rotfail.err"; echo "rc=$?" >>"$d/rotfail.out"
    "$REKEY" status >"$d/status2.out"; echo "rc=$?" >>"$d/status2.out"
    set -e
    rm -f fail-test.flag
    "$REKEY" kv get -field=key secret/app/key >"$d/key.secret"
}
run_kv_commands local
run_rotate_commands local
[ "$(cat target.secret)" = "KEY=$(cat local/key.secret)" ] || fail "local: the file hook did not render"
grep -q "rc=1" local/status2.out || fail "local: status after a failed rotation should exit 1"
unset REKEY_STORE REKEY_KEY_FILE

# ---------------- the same commands through a dev server ----------------
# (a dev server's store is SQLite whatever the backend under test: the comparison still holds)
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
REKEY_DEV_ROOT_TOKEN_ID=$TOK "$REKEY" server -dev -config "$PWD/rekey.yaml" -dev-listen-address "127.0.0.1:$PORT" \
    >server.log 2>&1 &
SERVER_PID=$!
wait_up "$A"
export REKEY_ADDR="$A" REKEY_TOKEN="$TOK"
rm -f target.secret
run_kv_commands remote
for f in put1 put2 put3 get get1 getjson field field1 mount list-root list listjson meta metajson \
         nope nover nofield list-empty cas; do
    same "local/$f.out" "remote/$f.out"
done
[ "$(cat remote/field.out)" = "second" ] || fail "kv get -field through the server"
[ "$(cat remote/field1.out)" = "p4ss-from-stdin" ] || fail "field=- from stdin through the server"
run_rotate_commands remote
[ "$(cat target.secret)" = "KEY=$(cat remote/key.secret)" ] || fail "remote: the file hook did not render"
# Fingerprints of generated values differ between the runs; the rest agrees.
for f in status0 dry rot1 rot2 rotm status1 status1json rollback recover rotfail status2 history \
         historyjson; do
    sed -E -i 's/hmac:[0-9a-f]{12}/FP/g' "local/$f.out" "remote/$f.out"
done
for f in status0 dry rot1 rot2 rotm status1 status1json rollback recover rotfail status2; do
    same "local/$f.out" "remote/$f.out"
done
expect_in remote/rotfail.out "rc=3"
expect_in remote/rotfail.err "secret/app/key:"
expect_in remote/status2.out "failed"
expect_in remote/status2.out "rc=1"
# history: the events agree; the versions agree in number, stage and fingerprint (the API does
# not send a version's author and reason).
sed -n '/== Versions ==/q;p' local/history.out >local/events.out
sed -n '/== Versions ==/q;p' remote/history.out >remote/events.out
same local/events.out remote/events.out
sed -n '/== Versions ==/,$p' local/history.out | awk '{print $1, $2}' >local/vers.out
sed -n '/== Versions ==/,$p' remote/history.out | awk '{print $1, $2}' >remote/vers.out
same local/vers.out remote/vers.out
expect_in remote/history.out "reason: second one"
jq_events='import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps([{k: v for k, v in e.items() if k not in ("time", "duration_ms")} for e in d["events"]], sort_keys=True))'
[ "$($PY -c "$jq_events" local/historyjson.out)" = "$($PY -c "$jq_events" remote/historyjson.out)" ] \
    || fail "history --json events differ"
# The manual value reached the server through the request body.
[ "$("$REKEY" kv get -field=api_key secret/app/manual)" = "manual-value-7Q" ] \
    || fail "rotate --from-stdin through the server"

# rotate --all/--due: a manual kind is skipped without a terminal, as locally.
expect_exit 0 "$REKEY" rotate --all --yes
expect_in last.out "secret/app/key: rotated"
expect_in last.out "secret/app/manual: skipped: kind manual needs a value from a person"
expect_exit 2 "$REKEY" rotate --all

# Errors: another mount, a wrong token, no token, an unreachable server, a bad address.
expect_exit 2 "$REKEY" kv get database/creds/app
expect_in last.err "only"
REKEY_TOKEN=wrong-token expect_exit 3 "$REKEY" kv get secret/team/db
expect_in last.err "permission denied"
expect_not_in last.err "wrong-token"
( unset REKEY_TOKEN; expect_exit 3 "$REKEY" status )
expect_in last.err "permission denied: no token"
dead=$(free_port)
REKEY_ADDR="http://127.0.0.1:$dead" expect_exit 3 "$REKEY" kv get secret/team/db
expect_in last.err "cannot reach rekey at http://127.0.0.1:$dead"
REKEY_ADDR="127.0.0.1:$PORT" expect_exit 2 "$REKEY" status
expect_in last.err "http://"

# VAULT_ADDR / VAULT_TOKEN, and the vault CLI's token file.
(
    unset REKEY_ADDR REKEY_TOKEN
    export VAULT_ADDR="$A" VAULT_TOKEN="$TOK"
    expect_exit 0 "$REKEY" kv get -field=user secret/team/db
    [ "$(cat last.out)" = "app2" ] || fail "VAULT_ADDR/VAULT_TOKEN"
    unset VAULT_TOKEN
    printf '%s\n' "$TOK" >"$HOME/.vault-token"
    expect_exit 0 "$REKEY" kv list secret/team
    expect_in last.out "db"
    rm "$HOME/.vault-token"
)

# No token and no value on the command line: a CLI waiting on stdin shows neither in ps.
mkfifo value.fifo
"$REKEY" kv put secret/team/ps password=- <value.fifo >ps-put.out 2>&1 &
CLI_PID=$!
exec 7>value.fifo
sleep 0.3
# (the dev server itself was given its root token id on its command line, as in t-server.sh)
ps -eo args | grep -v -- ' server ' >ps.txt
printf 'ps-hidden-value-3K' >&7
exec 7>&-
wait "$CLI_PID" || { cat ps-put.out; fail "kv put from a fifo"; }
expect_in ps.txt "kv put secret/team/ps password=-"
expect_not_in ps.txt "$TOK"
expect_not_in ps.txt "ps-hidden-value-3K"

# Seal through the CLI: reads say sealed; the dev server (key file) cannot take shares.
expect_exit 0 "$REKEY" operator seal
expect_in last.out "sealed"
expect_exit 3 "$REKEY" kv get secret/team/db
expect_in last.err "is sealed"
expect_exit 3 "$REKEY" status
expect_in last.err "rekey operator unseal"
stop_server
expect_not_in server.log "p4ss-from-stdin"
expect_not_in server.log "manual-value-7Q"

# ---------------- shares: a store initialised locally, unsealed through the server ----------------
unset REKEY_ADDR REKEY_TOKEN
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >shares.yaml <<EOF
version: 1
$(store_yaml "$PWD/shares.db")
server: { listen: "127.0.0.1:$PORT" }
secrets: []
EOF
REKEY_STORE="$(store_loc "$PWD/shares.db")" expect_exit 0 "$REKEY" operator init -key-shares=3 -key-threshold=2
cp last.out init-local.secret
expect_in init-local.secret "Unseal Share 3: "
S1=$(sed -n 's/^Unseal Share 1: //p' init-local.secret)
S3=$(sed -n 's/^Unseal Share 3: //p' init-local.secret)
ROOT=$(sed -n 's/^Initial Root Token: //p' init-local.secret)
"$REKEY" server -config "$PWD/shares.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up "$A"
export REKEY_ADDR="$A" REKEY_TOKEN="$ROOT"
expect_exit 3 "$REKEY" kv get secret/x
expect_in last.err "is sealed"
# The first share from a pipe: progress 1/2; ps shows no share while the CLI waits.
mkfifo share.fifo
"$REKEY" operator unseal <share.fifo >unseal1.out 2>&1 &
CLI_PID=$!
exec 7>share.fifo
sleep 0.3
ps -eo args >ps2.txt
printf '%s\n' "$S1" >&7
exec 7>&-
wait "$CLI_PID" || { cat unseal1.out; fail "operator unseal (first share)"; }
expect_not_in ps2.txt "$S1"
expect_not_in ps2.txt "$ROOT"
expect_in unseal1.out "Sealed             true"
expect_in unseal1.out "Unseal Progress    1/2"
printf 'not-a-share\n' | expect_exit 3 "$REKEY" operator unseal
printf '%s\n' "$S3" | expect_exit 0 "$REKEY" operator unseal
expect_in last.out "Sealed             false"
printf 'unsealed-value\n' | expect_exit 0 "$REKEY" kv put secret/after/unseal v=-
expect_exit 0 "$REKEY" kv get -field=v secret/after/unseal
[ "$(cat last.out)" = "unsealed-value" ] || fail "read after unseal"
expect_exit 0 "$REKEY" operator seal
expect_exit 3 "$REKEY" kv get secret/after/unseal
expect_in last.err "sealed"
printf '%s\n%s\n' "$S3" "$S1" | expect_exit 0 "$REKEY" operator unseal
expect_in last.out "Sealed             false"
expect_not_in server.log "$S1"
stop_server

# ---------------- operator init through a server on a new store ----------------
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
sed -e "s#shares.db#remote-init.db#" -e "s/127.0.0.1:[0-9]*/127.0.0.1:$PORT/" shares.yaml >ri.yaml
"$REKEY" server -config "$PWD/ri.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up "$A"
unset REKEY_TOKEN
export REKEY_ADDR="$A"
expect_exit 2 "$REKEY" operator init -key-file=x.key
expect_exit 0 "$REKEY" operator init -key-shares=3 -key-threshold=2
cp last.out init-remote.secret
# The same text as the local command, shares and token aside.
sed -E 's/: [^ ]+$/: X/' init-local.secret >il.txt
sed -E 's/: [^ ]+$/: X/' init-remote.secret >ir.txt
diff -u il.txt ir.txt || fail "operator init through the server prints differently"
expect_exit 3 "$REKEY" operator init -key-shares=3 -key-threshold=2
expect_in last.err "already initialised"
R1=$(sed -n 's/^Unseal Share 1: //p' init-remote.secret)
R2=$(sed -n 's/^Unseal Share 2: //p' init-remote.secret)
export REKEY_TOKEN=$(sed -n 's/^Initial Root Token: //p' init-remote.secret)
printf '%s\n%s\n' "$R1" "$R2" | expect_exit 0 "$REKEY" operator unseal
expect_in last.out "Sealed             false"
expect_exit 1 "$REKEY" kv list secret
expect_in last.err "No value found at secret"
stop_server

# Remote-only commands say what they need without an address.
unset REKEY_ADDR
expect_exit 3 "$REKEY" operator seal
expect_in last.err "REKEY_ADDR"
echo "t-client: ok"
