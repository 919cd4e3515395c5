#!/usr/bin/env bash
# The rotation scheduler inside `rekey server`: in dev mode it rotates a generated secret every
# 3 s and its file hook keeps the file equal to the value the API serves; SIGHUP with a broken
# configuration keeps the old one (file:line:col logged), SIGHUP with a new secret schedules it;
# SIGTERM exits 0. On a store unsealed with shares over the API, the scheduler starts at unseal
# and stops at seal. On a key-file store, SIGTERM during a slow reload hook lets that rotation
# finish before exit 0, and the store is consistent afterwards. Tokens travel in header files.
. "$REKEY_TOP/tests/integration/lib.sh"

ROOT="it-root-$$-$RANDOM$RANDOM"
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret
dir=$PWD

# rotations PATH: the number of successful scheduled rotations in PATH's history.
rotations() {
    req GET "/v1/rekey/history/$1"
    expect 200
    j 'sum(1 for e in d["data"]["events"] if e["op"] == "rotate" and e["result"] == "ok")'
}
# state PATH: the scheduler's state of PATH ("ok", "rotating", ...).
state() {
    req GET "/v1/rekey/status/$1"
    expect 200
    j 'd["data"]["state"]'
}
# consistent PATH FIELD FILE PREFIX: over the API, exactly one current version, none pending,
# no rotation in flight, and FILE holds PREFIX + the current value of FIELD. The scheduler keeps
# rotating meanwhile, so it looks for a quiet moment: a look during which a rotation ran (or was
# in flight) is taken again, up to 40 times; a quiet look that disagrees fails.
consistent() {
    local try n1 val file
    for ((try = 0; try < 40; try++)); do
        n1=$(rotations "$1")
        [ "$(state "$1")" != rotating ] || { sleep 0.1; continue; }
        req GET "/v1/secret/metadata/${1#secret/}"
        expect 200
        $PY - <<'PY' || { cat resp.json; fail "the versions of $1 are not consistent"; }
import json, sys
m = json.load(open("resp.json"))["data"]
stages = [v["stage"] for v in m["versions"].values()]
if "pending" in stages:
    sys.exit(0)  # a rotation started since: the caller looks again
assert stages.count("current") == 1, stages
nums = sorted(int(k) for k in m["versions"])
assert nums == list(range(nums[0], nums[-1] + 1)), nums
PY
        req GET "/v1/secret/data/${1#secret/}"
        expect 200
        val=$(j "d['data']['data']['$2']")
        [ -n "$val" ] || fail "$1 has no value"
        file=$(cat "$3")
        [ "$(state "$1")" != rotating ] && [ "$(rotations "$1")" = "$n1" ] || { sleep 0.1; continue; }
        [ "$file" = "$4$val" ] || fail "$3 does not hold the current value of $1"
        return 0
    done
    fail "no quiet moment to compare $3 with $1 in 40 tries"
}
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

write_config() { # $1: extra secrets appended
    cat >rekey.yaml <<EOF
version: 1
$(store_yaml store.db)
hooks:
  render:
    type: file
    path: $dir/token.secret
    template: "{{new}}"
    mode: "0600"
  render-other:
    type: file
    path: $dir/other.secret
    template: "OTHER={{new}}"
    mode: "0600"
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 3s
    auto: true
    reload: [render]
  - path: secret/app/human
    kind: manual
    field: api_key
    every: 30d
$1
EOF
}

# ======================= dev mode: rotations on schedule =======================
write_config ""
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
REKEY_DEV_ROOT_TOKEN_ID=$ROOT "$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" \
    -config "$dir/rekey.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
wait_server_log "scheduler started" 5
sleep 8
n=$(rotations secret/app/token)
[ "$n" -ge 2 ] || { cat server.log; fail "expected at least 2 rotations in 8 s, got $n"; }
expect_in server.log "rotated secret/app/token v"
expect_in server.log "secret secret/app/human is due: it has no value yet"
consistent secret/app/token key token.secret ""
req GET /v1/rekey/history/secret/app/token
[ "$(j '[e["author"] for e in d["data"]["events"] if e["op"] == "rotate"][-1]')" = rekey-daemon ] ||
    { cat resp.json; fail "not rotated by the scheduler"; }

# SIGHUP with a broken configuration: the old one stays (file:line:col logged), rotations go on.
cp rekey.yaml good.yaml
printf 'secrets:\n  - path: [oops\n' >>rekey.yaml
before=$(rotations secret/app/token)
kill -HUP "$SERVER_PID"
wait_server_log "reload failed, keeping the old configuration" 5
grep -E "reload failed.*rekey\.yaml:[0-9]+:[0-9]+" server.log >/dev/null ||
    { cat server.log; fail "the reload error does not name file:line:col"; }
sleep 3.5
after=$(rotations secret/app/token)
[ "$after" -gt "$before" ] || { cat server.log; fail "no rotation after a failed reload"; }

# SIGHUP with a new secret: the scheduler re-plans and rotates it (it has no value: due now).
write_config "  - path: secret/app/other
    kind: generated
    format: \"ot-{hex:16}\"
    field: key
    every: 2s
    auto: true
    reload: [render-other]"
kill -HUP "$SERVER_PID"
wait_server_log "scheduler: re-planning" 5
for _ in $(seq 1 50); do
    req GET /v1/secret/data/app/other
    [ "$STATUS" = 200 ] && break
    sleep 0.1
done
expect 200
sleep 3
[ "$(rotations secret/app/other)" -ge 2 ] || { cat server.log; fail "the new secret's 2s period is not kept"; }
consistent secret/app/other key other.secret "OTHER="
consistent secret/app/token key token.secret ""
req GET /v1/secret/data/app/token
expect_not_in server.log "$(j 'd["data"]["data"]["key"]')"

stop_server_clean
expect_in server.log "SIGTERM: stopping"
expect_in server.log "scheduler stopped:"

# ======================= shares: the scheduler follows unseal and seal =======================
cat >srv.yaml <<EOF
version: 1
$(store_yaml shares.db)
server:
  listen: "127.0.0.1:PORT"
hooks:
  render:
    type: file
    path: $dir/shares.secret
    template: "{{new}}"
    mode: "0600"
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 2s
    auto: true
    reload: [render]
EOF
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
sed -i "s/PORT/$PORT/" srv.yaml
: >server.log
"$REKEY" server -config "$dir/srv.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
req PUT /v1/sys/init '{"secret_shares":1,"secret_threshold":1}' ""
expect 200
cp resp.json init.json.secret
K1=$($PY -c 'import json; print(json.load(open("init.json.secret"))["keys"][0])')
R2=$($PY -c 'import json; print(json.load(open("init.json.secret"))["root_token"])')
printf 'X-Vault-Token: %s\n' "$R2" >root.hdr.secret
expect_not_in server.log "scheduler started"
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
expect 200
wait_server_log "scheduler started" 5
sleep 3
[ "$(rotations secret/app/token)" -ge 2 ] || { cat server.log; fail "no rotations after unseal"; }
req PUT /v1/sys/seal
expect 204
wait_server_log "scheduler stopped:" 5
req PUT /v1/sys/unseal "{\"key\":\"$K1\"}" ""
expect 200
req GET /v1/rekey/history/secret/app/token
expect 200
sealed_count=$(rotations secret/app/token)
[ "$(grep -c "scheduler started" server.log)" -eq 2 ] || { cat server.log; fail "not restarted at unseal"; }
sleep 2.5
[ "$(rotations secret/app/token)" -gt "$sealed_count" ] || { cat server.log; fail "no rotation after the second unseal"; }
consistent secret/app/token key shares.secret ""
stop_server_clean
expect_not_in server.log "$K1"

# ======================= key file: SIGTERM during a rotation =======================
export REKEY_STORE=$(store_loc "$dir/kf.db")
expect_exit 0 "$REKEY" operator init -key-file="$dir/kf.key"
R3=$(sed -n 's/^Initial Root Token: //p' last.out)
printf 'X-Vault-Token: %s\n' "$R3" >root.hdr.secret
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >kf.yaml <<EOF
version: 1
$(store_yaml kf.db)
server:
  listen: "127.0.0.1:$PORT"
hooks:
  render:
    type: file
    path: $dir/kf.secret
    template: "{{new}}"
    mode: "0600"
  slow:
    type: exec
    command: ["/bin/sh", "-c", "touch $dir/slow.started; sleep 2"]
    timeout: 10s
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 4s
    auto: true
    reload: [render, slow]
EOF
: >server.log
REKEY_KEY_FILE="$dir/kf.key" "$REKEY" server -config "$dir/kf.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up
wait_server_log "scheduler started" 5
# The first rotation is due at once; SIGTERM while its slow hook runs.
for _ in $(seq 1 50); do [ -e slow.started ] && break; sleep 0.1; done
[ -e slow.started ] || { cat server.log; fail "the slow hook did not start"; }
t0=$(date +%s.%N)
stop_server_clean 8
took=$(echo "$(date +%s.%N) - $t0" | bc)
expect_in server.log "rotated secret/app/token v0 -> v1"
expect_in server.log "scheduler stopped: 1 rotated"
echo "SIGTERM during a 2 s hook: stopped after ${took} s"
# The store on disk agrees: one current version, nothing pending, the file holds it.
export REKEY_KEY_FILE="$dir/kf.key" REKEY_CONFIG="$dir/kf.yaml"
check_rotation_invariants secret/app/token key kf.secret ""
# Exit 1 means overdue: on a slow (sanitizer) build the 4 s period may have passed meanwhile.
"$REKEY" status --json >status.json || [ $? -eq 1 ] || fail "rekey status failed"
$PY -c 'import json; s=[x for x in json.load(open("status.json")) if x["path"]=="secret/app/token"][0]; assert s["version"] == 1, s' ||
    fail "expected version 1 after the interrupted server"
echo ok
