#!/usr/bin/env bash
# The audit log (docs/audit.md): a server with an audit: block records every API request and
# response, and CLI commands on the same store append to the same file (one chain); no secret
# value or token the test wrote appears in it; `rekey audit verify` passes and names an edited
# line; SIGHUP after a rename continues the chain in a new file; sys/audit enables, lists and
# disables a device that survives a restart; sys/audit-hash agrees with `rekey audit hash`;
# queries by path and --errors; and a sink that cannot be written (a read-only file system, a
# full one, an injected fsync failure) makes requests and commands fail while changing nothing.
# Tokens go to curl in header files, values on stdin; never on a command line.
. "$REKEY_TOP/tests/integration/lib.sh"

PY=/usr/bin/python3
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
mkdir -p logs
LOG="$PWD/logs/audit.log"

# write_config FILE AUDIT_PATH|none
write_config() {
    {
        echo "version: 1"
        store_yaml "$PWD/rekey.db"
        echo "server:"
        echo "  listen: \"127.0.0.1:$PORT\""
        if [ "$2" != none ]; then
            echo "audit:"
            echo "  path: $2"
        fi
        cat <<'EOF'
secrets:
  - path: secret/app/key
    kind: generated
    format: "{hex:32}"
    every: 30d
    auto: false
EOF
    } >"$1"
}
write_config rekey.yaml "$LOG"
write_config noaudit.yaml none
export REKEY_CONFIG="$PWD/rekey.yaml" REKEY_KEY_FILE="$PWD/root.key"

# A store, its root token (in a header file for curl).
"$REKEY" operator init -key-file="$REKEY_KEY_FILE" >init.secret
ROOT=$(sed -n 's/^Initial Root Token: //p' init.secret)
[ -n "$ROOT" ] || fail "no root token from operator init"
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret
printf 'X-Vault-Token: %s\n' "not-a-token-$RANDOM" >bad.hdr.secret

SERVER_PID=
start_server() { # CONFIG
    "$REKEY" server -config "$1" >>server.log 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$A/v1/sys/health" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 server.log; fail "the server exited"; }
        sleep 0.1
    done
    fail "the server did not start"
}
stop_server() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
MOUNTS=()
cleanup() {
    stop_server
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT

NREQ=0 # requests sent to the server (each must appear in the log)
# req METHOD PATH [BODY [HEADER FILE]]: answer in resp.json, status in $STATUS.
req() {
    local hdr=${4:-root.hdr.secret} args=(-s -o resp.json -w '%{http_code}' -X "$1")
    args+=(-H "@$hdr")
    [ -n "${3-}" ] && args+=(--data-binary @-)
    STATUS=$(printf '%s' "${3-}" | curl "${args[@]}" "$A$2")
    NREQ=$((NREQ + 1))
}
expect() { [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS"; }; }
j() { $PY -c 'import json,sys; d=json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }

start_server rekey.yaml
NREQ=$((NREQ + 1)) # start_server's successful health check

# ---- every request is recorded, no secret is ----
V1="pw-one-$RANDOM-Qz"
V2="pw-two-$RANDOM-Wx"
req POST /v1/secret/data/app/db "{\"data\":{\"password\":\"$V1\"}}"
expect 200
req POST /v1/secret/data/app/db "{\"data\":{\"password\":\"$V2\"}}"
expect 200
req GET /v1/secret/data/app/db
expect 200
req LIST /v1/secret/metadata/app
expect 200
req GET /v1/secret/data/app/db "" bad.hdr.secret
expect 403
req GET /v1/secret/data/nope
expect 404
req POST /v1/auth/token/create '{"policies":["default"],"display_name":"ci"}'
expect 200
CHILD=$(j 'd["auth"]["client_token"]')
CHILD_ACC=$(j 'd["auth"]["accessor"]')
printf 'X-Vault-Token: %s\n' "$CHILD" >child.hdr.secret
req GET /v1/auth/token/lookup-self "" child.hdr.secret
expect 200
req GET /v1/secret/data/app/db "" child.hdr.secret
expect 403
# A command on the same store while the server runs: one chain, two writers.
V3="pw-cli-$RANDOM-Er"
printf '%s' "$V3" | expect_exit 0 "$REKEY" kv put secret/cli/one password=-
expect_exit 0 "$REKEY" kv get secret/cli/one
# A rotation run by the CLI: its outcome is recorded, its new value is not.
expect_exit 0 "$REKEY" rotate secret/app/key
"$REKEY" kv get -format=json secret/app/key >rotated.secret
NEWVALS=$($PY -c 'import json; d=json.load(open("rotated.secret")); print("\n".join(str(v) for v in d["data"]["data"].values()))')
[ -n "$NEWVALS" ] || fail "no value after the rotation"

nreq=$(grep -c '"type":"request"' "$LOG")
nresp=$(grep -c '"type":"response"' "$LOG")
[ "$nreq" -eq "$NREQ" ] || fail "$NREQ requests sent, $nreq request entries"
[ "$nresp" -eq "$NREQ" ] || fail "$NREQ requests sent, $nresp response entries"
$PY - "$LOG" <<'EOF' || fail "request and response entries do not pair up"
import json, sys
reqs, resps = {}, {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["type"] == "request": reqs[d["request_id"]] = d
    if d["type"] == "response": resps[d["request_id"]] = d
assert reqs.keys() == resps.keys(), "unpaired request ids"
assert any(d["path"] == "secret/data/app/db" and d.get("status") == 403 and d.get("error") == "permission denied" for d in resps.values())
assert any(d.get("actor") == "token-ci" for d in reqs.values()), "the child token's requests name it"
EOF
expect_in "$LOG" '"type":"local","operation":"kv put","path":"secret/cli/one"'
expect_in "$LOG" '"type":"local-result","operation":"kv get","path":"secret/cli/one"'
expect_in "$LOG" '"operation":"operator init"'
expect_in "$LOG" '"type":"rotation","operation":"rotate","path":"secret/app/key"'
while read -r v; do
    grep -qF -- "$v" "$LOG" && fail "the rotated value is in the audit log in plaintext"
done <<<"$NEWVALS"
for v in "$V1" "$V2" "$V3" "$ROOT" "$CHILD" "$CHILD_ACC"; do
    grep -qF -- "$v" "$LOG" && fail "a secret value, token or accessor is in the audit log in plaintext"
done

# ---- sys/audit-hash agrees with rekey audit hash, and finds the accessor ----
req POST /v1/sys/audit-hash/config "{\"input\":\"$CHILD_ACC\"}"
expect 200
H_API=$(j 'd["hash"]')
H_CLI=$(printf '%s' "$CHILD_ACC" | "$REKEY" audit hash)
[ "$H_API" = "$H_CLI" ] || fail "sys/audit-hash and rekey audit hash differ"
case $H_CLI in hmac-sha256:*) ;; *) fail "not an hmac-sha256 hash" ;; esac
grep -qF -- "\"accessor\":\"$H_CLI\"" "$LOG" || fail "the child token's accessor hash is not in the log"
expect_exit 0 "$REKEY" audit --actor "$H_CLI" "$LOG"
expect_in last.out "secret/data/app/db"
req POST /v1/sys/audit-hash/nope '{"input":"x"}'
expect 400

# ---- queries ----
expect_exit 0 "$REKEY" audit --path secret/app/db "$LOG"
[ "$(grep -c 'secret/data/app/db' last.out)" -ge 8 ] || { cat last.out; fail "--path misses lines"; }
expect_not_in last.out "secret/cli/one"
expect_exit 0 "$REKEY" audit --errors --json "$LOG"
$PY - <<'EOF' || fail "--errors"
import json
rows = [json.loads(l) for l in open("last.out")]
assert rows and all("error" in r for r in rows), rows
assert {r.get("status") for r in rows} >= {403, 404}, rows
EOF
expect_exit 0 "$REKEY" audit --op "kv put" --since 1h "$LOG"
expect_in last.out "secret/cli/one"
expect_exit 0 "$REKEY" audit --path secret/app --until 2000-01-01 "$LOG"
[ "$(wc -l <last.out)" -eq 1 ] || fail "--until in the past still matched"

# ---- sys/audit: enable, list, disable; a device survives a restart ----
req PUT /v1/sys/audit/dev1 "{\"type\":\"file\",\"description\":\"second copy\",\"options\":{\"file_path\":\"$PWD/logs/dev1.log\"}}"
expect 204
req GET /v1/sys/audit
expect 200
[ "$(j 'sorted(d["data"].keys())')" = "['config/', 'dev1/']" ] || { cat resp.json; fail "sys/audit list"; }
[ "$(j 'd["dev1/"]["options"]["file_path"]')" = "$PWD/logs/dev1.log" ] || fail "sys/audit file_path"
req PUT /v1/sys/audit/dev1 "{\"type\":\"file\",\"options\":{\"file_path\":\"$PWD/logs/other.log\"}}"
expect 400
req PUT /v1/sys/audit/dev2 '{"type":"file","options":{"file_path":"relative.log"}}'
expect 400
req PUT /v1/sys/audit/dev2 '{"type":"socket","options":{"file_path":"/tmp/x"}}'
expect 400
req GET /v1/sys/audit "" child.hdr.secret
expect 403
req GET /v1/secret/data/app/db
expect 200
grep -q '"path":"secret/data/app/db"' logs/dev1.log || fail "the device did not get the request"
stop_server
start_server rekey.yaml
NREQ=$((NREQ + 1))
req GET /v1/sys/audit
expect 200
[ "$(j 'sorted(d["data"].keys())')" = "['config/', 'dev1/']" ] || fail "the device did not survive a restart"
req DELETE /v1/sys/audit/dev1
expect 204
req DELETE /v1/sys/audit/dev1
expect 400
req DELETE /v1/sys/audit/config
expect 400
req GET /v1/sys/audit
expect 200
[ "$(j 'sorted(d["data"].keys())')" = "['config/']" ] || fail "sys/audit after disable"
expect_exit 0 "$REKEY" audit verify logs/dev1.log

# ---- rotation: rename, SIGHUP, the chain goes on in the new file ----
mv "$LOG" "$LOG.1"
kill -HUP "$SERVER_PID"
sleep 0.3
req GET /v1/secret/data/app/db
expect 200
expect_in "$LOG" '"anchor":false'
expect_exit 0 "$REKEY" audit verify "$LOG.1" "$LOG"
expect_in last.out "ok:"
expect_exit 1 "$REKEY" audit verify "$LOG" "$LOG.1" # out of order
expect_in last.out "audit.log.1:1:"

# ---- verify names an edited line ----
stop_server
cp "$LOG.1" edited.log
$PY - <<'EOF'
lines = open("edited.log").read().split("\n")
lines[5] = lines[5].replace('"time":"2', '"time":"1', 1)
open("edited.log", "w").write("\n".join(lines))
EOF
expect_exit 1 "$REKEY" audit verify edited.log
expect_in last.out "edited.log:6:"
sed '4d' "$LOG.1" >deleted.log
expect_exit 1 "$REKEY" audit verify deleted.log
expect_in last.out "deleted.log:4:"

# ---- a sink that cannot be written: requests fail with 500 and change nothing ----
# check_unchanged: the writes refused above left no trace (read without the audit block).
check_unchanged() {
    start_server noaudit.yaml
    req GET /v1/secret/data/app/refused
    expect 404
    stop_server
    expect_exit 3 env REKEY_CONFIG="$PWD/noaudit.yaml" "$REKEY" kv get secret/cli/refused
}
# refused CONFIG: with the server on CONFIG, a write and a read answer 500; a CLI write fails.
refused() {
    start_server "$1"
    req POST /v1/secret/data/app/refused '{"data":{"password":"never-stored"}}'
    expect 500
    expect_in resp.json "audit"
    req GET /v1/secret/data/app/db
    expect 500
    # A KV read runs before its lines are written (they are fsynced together with its answer's):
    # the answer it made must not get out when they cannot be.
    expect_not_in resp.json "$V2"
    expect_in resp.json "audit"
    stop_server
    printf 'never-stored' | expect_exit 3 env REKEY_CONFIG="$PWD/$1" "$REKEY" kv put secret/cli/refused password=-
    expect_in last.err "not run"
    check_unchanged
}
if [ "$(id -u)" = 0 ] && mkdir -p ro && mount -t tmpfs -o ro,size=64k tmpfs ro 2>/dev/null; then
    MOUNTS+=("$PWD/ro")
    write_config ro.yaml "$PWD/ro/audit.log"
    refused ro.yaml
    # A full file system.
    mkdir -p full
    mount -t tmpfs -o size=64k tmpfs full
    MOUNTS+=("$PWD/full")
    write_config full.yaml "$PWD/full/audit.log"
    dd if=/dev/zero of=full/filler bs=1k count=1024 2>/dev/null || true
    rm -f full/audit.log
    refused full.yaml
else
    echo "skip (needs root and mount): a read-only and a full file system; chmod instead"
    mkdir -p rodir
    chmod 555 rodir
    write_config ro.yaml "$PWD/rodir/audit.log"
    refused ro.yaml
fi
# An fsync that fails (the test switch; only in a test build).
if "$REKEY" --version | grep -q "test build"; then
    write_config ok2.yaml "$PWD/logs/fault.log"
    export REKEY_AUDIT_FAULT=fsync:1 # every fsync fails
    refused ok2.yaml
    unset REKEY_AUDIT_FAULT
    [ ! -s logs/fault.log ] || fail "a failed write left lines behind"
fi

# ---- no audit block and no device: lint and status say so ----
expect_exit 0 env REKEY_CONFIG="$PWD/noaudit.yaml" "$REKEY" lint
expect_in last.out "audit: no audit: block"
expect_exit 0 env REKEY_CONFIG="$PWD/noaudit.yaml" "$REKEY" status
expect_in last.err "audit: off"
expect_exit 0 "$REKEY" lint
expect_in last.out "audit: file $LOG"
echo "t-audit: ok"
