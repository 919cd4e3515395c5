#!/usr/bin/env bash
# Metrics and alerts (docs/metrics.md): the shipped rules pass `promtool check rules` and their
# unit tests (`promtool test rules`); `rekey metrics` flips an entry's overdue gauge at the exact
# second its own schedule says (REKEY_NOW); a live scrape of `rekey server -dev` passes
# `promtool check metrics`, is refused without a token unless the configuration allows it (a
# SIGHUP applies the setting), moves with rotations (version, timestamps, rotation counters; the
# request counters when the router publishes its events), shows an entry with `every: 2s`
# turning overdue at the right moment and a sealed store; a rotation run by a separate CLI
# process shows in the server's next scrape. Tokens travel in header files.
. "$REKEY_TOP/tests/integration/lib.sh"

PY=/usr/bin/python3
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus: scripts/deps)"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$PWD
ROOT="it-root-$$-$RANDOM$RANDOM"
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret
: >none.hdr

# req METHOD PATH [BODY [HEADER-FILE]]: answer in ./resp.json, status in $STATUS.
req() {
    local method=$1 path=$2 body=${3-} hdr=${4-root.hdr.secret}
    local args=(-s -o resp.json -w '%{http_code}' -X "$method")
    [ -n "$hdr" ] && args+=(-H @"$hdr")
    [ -n "$body" ] && args+=(--data-binary "$body")
    STATUS=$(curl "${args[@]}" "$A$path")
}
expect() { [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS"; }; }
j() { $PY -c 'import json,sys; d = json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }
# scrape [HEADER-FILE]: GET sys/metrics?format=prometheus into ./scrape.txt, status in $STATUS.
scrape() {
    STATUS=$(curl -s -o scrape.txt -w '%{http_code}' -H @"${1:-root.hdr.secret}" \
        "$A/v1/sys/metrics?format=prometheus")
}
# value FILE SAMPLE: the value of the sample line that starts with SAMPLE + ' ' (empty if none).
value() { awk -v s="$2" 'index($0, s " ") == 1 { print $NF; exit }' "$1"; }
wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$A/v1/sys/health" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
        sleep 0.1
    done
    fail "the server did not come up"
}
wait_log() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        grep -qF -- "$1" server.log && return 0
        sleep 0.1
    done
    cat server.log; fail "'$1' did not appear in the server's log within $2 s"
}
stop_server() {
    local i
    kill -TERM "$SERVER_PID"
    for ((i = 0; i < 50; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && { kill -KILL "$SERVER_PID"; cat server.log; fail "the server did not stop"; }
    set +e; wait "$SERVER_PID"; local rc=$?; set -e
    SERVER_PID=
    [ "$rc" -eq 0 ] || { cat server.log; fail "server exit code $rc after SIGTERM"; }
}
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

# ======================= the shipped rules =======================
cp "$REKEY_TOP/deploy/prometheus/rekey-rules.yaml" "$REKEY_TOP/deploy/prometheus/rekey-rules.test.yaml" .
promtool check rules rekey-rules.yaml >last.out 2>&1 || { cat last.out; fail "promtool check rules"; }
promtool test rules rekey-rules.test.yaml >last.out 2>&1 || { cat last.out; fail "promtool test rules"; }
# The test file is not a formality: a rule that waits longer than it should fails it.
sed 's/for: 5m/for: 30m/' rekey-rules.yaml >broken.yaml && mv broken.yaml rekey-rules.yaml
if promtool test rules rekey-rules.test.yaml >last.out 2>&1; then
    fail "promtool test rules passes with a rule changed"
fi

# The dashboard's queries parse (each becomes a recording rule for promtool to check).
$PY - "$REKEY_TOP/deploy/grafana/rekey.json" >dash-rules.yaml <<'PY' || fail "the dashboard does not load"
import json, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(ps):
    for p in ps:
        exprs.extend(t["expr"] for t in p.get("targets", []))
        walk(p.get("panels", []))
walk(d["panels"])
assert len(exprs) >= 10, exprs
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$instance", ".*").replace("$__rate_interval", "5m")
    print("      - record: dashboard_query_%d\n        expr: %s" % (i, json.dumps(e)))
PY
promtool check rules dash-rules.yaml >last.out 2>&1 || { cat last.out; fail "a dashboard query does not parse"; }

# ======================= rekey metrics: the exact second an entry turns overdue ==========
cat >cli.yaml <<EOF
version: 1
$(store_yaml cli.db)
secrets:
  - path: secret/cli/auto
    kind: generated
    format: "ca-{hex:16}"
    every: 1h
    auto: true
  - path: secret/cli/never
    kind: generated
    format: "cn-{hex:16}"
    every: 30d
EOF
export REKEY_CONFIG=$dir/cli.yaml REKEY_KEY_FILE=$dir/cli.key
"$REKEY" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
T0=1800000000
REKEY_NOW=$T0 "$REKEY" rotate secret/cli/auto >/dev/null
L='path="secret/cli/auto",kind="generated"'
# every 1h with auto: due at T0+3600, overdue past the tolerance min(1h, every/10) = 360 s.
REKEY_NOW=$((T0 + 3960)) "$REKEY" metrics >m1.txt
promtool check metrics <m1.txt >last.out 2>&1 || { cat last.out; fail "promtool check metrics (rekey metrics)"; }
[ "$(value m1.txt "rekey_secret_last_rotation_timestamp_seconds{$L}")" = "$T0" ] || { cat m1.txt; fail "last rotation"; }
[ "$(value m1.txt "rekey_secret_next_rotation_timestamp_seconds{$L}")" = "$((T0 + 3600))" ] || { cat m1.txt; fail "next rotation"; }
[ "$(value m1.txt "rekey_secret_rotation_overdue{$L}")" = 0 ] || { cat m1.txt; fail "overdue one second early"; }
expect_in m1.txt "rekey_secret_state{$L,state=\"due\"} 1"
[ "$(value m1.txt "rekey_secret_version{$L}")" = 1 ] || fail "version 1"
[ "$(value m1.txt 'rekey_secret_version{path="secret/cli/never",kind="generated"}')" = 0 ] || fail "never rotated: version 0"
expect_not_in m1.txt 'rekey_secret_last_rotation_timestamp_seconds{path="secret/cli/never"'
expect_in m1.txt 'rekey_build_info{version="'
REKEY_NOW=$((T0 + 3961)) "$REKEY" metrics >m2.txt
[ "$(value m2.txt "rekey_secret_rotation_overdue{$L}")" = 1 ] || { cat m2.txt; fail "not overdue at T0+3961"; }
expect_in m2.txt "rekey_secret_state{$L,state=\"overdue\"} 1"
# A rotation (another process) brings it back.
REKEY_NOW=$((T0 + 4000)) "$REKEY" rotate secret/cli/auto >/dev/null
REKEY_NOW=$((T0 + 4001)) "$REKEY" metrics >m3.txt
[ "$(value m3.txt "rekey_secret_version{$L}")" = 2 ] || { cat m3.txt; fail "version 2"; }
[ "$(value m3.txt "rekey_secret_last_rotation_timestamp_seconds{$L}")" = "$((T0 + 4000))" ] || fail "last rotation after the second"
[ "$(value m3.txt "rekey_secret_rotation_overdue{$L}")" = 0 ] || fail "overdue after a rotation"
unset REKEY_CONFIG REKEY_KEY_FILE

# ======================= the setting is checked like any other =======================
printf 'version: 1\nserver:\n  unauthenticated_metrics_access: maybe\n' >bad.yaml
expect_exit 3 "$REKEY" -c bad.yaml lint
expect_in last.err "bad.yaml:3:35: server.unauthenticated_metrics_access: expected true or false"

# ======================= rekey server -dev: a live scrape =======================
write_config() { # $1: true/false for server.unauthenticated_metrics_access
    cat >dev.yaml <<EOF
version: 1
server:
  unauthenticated_metrics_access: $1
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 3s
    auto: true
  - path: secret/app/slow
    kind: generated
    format: "sl-{hex:16}"
    every: 2s
EOF
}
write_config false
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
"$REKEY" server -dev -dev-listen-address "127.0.0.1:$PORT" -dev-root-token-id "$ROOT" \
    -config "$dir/dev.yaml" >server.log 2>&1 &
SERVER_PID=$!
wait_up

# Who may scrape: no token 403, a token without read on sys/metrics 403, root and a token with
# read 200. Without format=prometheus: 400 with a message.
scrape none.hdr
[ "$STATUS" = 403 ] || { cat scrape.txt; fail "an unauthenticated scrape got $STATUS, want 403"; }
req GET /v1/sys/metrics
expect 400
expect_in resp.json "format=prometheus"
req PUT /v1/sys/policies/acl/metrics-reader '{"policy":"path \"sys/metrics\" { capabilities = [\"read\"] }"}'
expect 204
req POST /v1/auth/token/create '{"policies":["metrics-reader"],"ttl":"1h"}'
expect 200
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >reader.hdr.secret
req POST /v1/auth/token/create '{"policies":["default"],"ttl":"1h"}'
expect 200
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >other.hdr.secret
scrape other.hdr.secret
[ "$STATUS" = 403 ] || fail "a token without read on sys/metrics got $STATUS, want 403"
scrape reader.hdr.secret
[ "$STATUS" = 200 ] || { cat scrape.txt; fail "the metrics-reader token got $STATUS"; }
ctype=$(curl -s -o /dev/null -w '%{content_type}' -H @root.hdr.secret "$A/v1/sys/metrics?format=prometheus")
case $ctype in text/plain*version=0.0.4*) ;; *) fail "content type $ctype" ;; esac
scrape
[ "$STATUS" = 200 ] || fail "root scrape: $STATUS"
promtool check metrics <scrape.txt >last.out 2>&1 || { cat last.out; fail "promtool check metrics on a live scrape"; }
expect_in scrape.txt "rekey_sealed 0"
expect_in scrape.txt "rekey_initialized 1"
expect_in scrape.txt "rekey_audit_failures_total 0"
expect_in scrape.txt "# TYPE rekey_http_request_duration_seconds histogram"
expect_in scrape.txt "rekey_secrets 2"

# The metrics move with a rotation: the scheduler rotates secret/app/token every 3 s.
T='path="secret/app/token",kind="generated"'
v1= l1=
for _ in $(seq 1 50); do
    scrape
    v1=$(value scrape.txt "rekey_secret_version{$T}")
    [ "${v1:-0}" -ge 1 ] && break
    sleep 0.1
done
[ "${v1:-0}" -ge 1 ] || { cat scrape.txt; fail "secret/app/token was never rotated"; }
l1=$(value scrape.txt "rekey_secret_last_rotation_timestamp_seconds{$T}")
reqs1=$(awk '/^rekey_http_requests_total\{/ { s += $NF } END { print s + 0 }' scrape.txt)
for _ in 1 2 3; do req GET /v1/secret/data/app/token; expect 200; done
v2=$v1
for _ in $(seq 1 80); do
    sleep 0.1
    scrape
    v2=$(value scrape.txt "rekey_secret_version{$T}")
    [ "$v2" -gt "$v1" ] && break
done
[ "$v2" -gt "$v1" ] || { cat server.log; fail "the version did not move in 8 s (v$v1)"; }
l2=$(value scrape.txt "rekey_secret_last_rotation_timestamp_seconds{$T}")
[ "$l2" -gt "$l1" ] || fail "the last rotation timestamp did not move ($l1 -> $l2)"
[ "$(value scrape.txt "rekey_secret_next_rotation_timestamp_seconds{$T}")" = $((l2 + 3)) ] ||
    fail "next rotation is not last + every"
# The scheduler's rotations reach the counters through the engine's result events.
ok=$(value scrape.txt 'rekey_rotation_total{path="secret/app/token",result="ok"}')
[ "${ok:-0}" -ge 2 ] || { cat scrape.txt; fail "rekey_rotation_total did not count the rotations"; }
[ "$(value scrape.txt 'rekey_rotation_total{path="secret/app/token",result="rolled-back"}')" = 0 ] ||
    fail "a rolled-back rotation counted"
[ "$(value scrape.txt rekey_rotation_duration_seconds_count)" -ge 2 ] || fail "rotation duration count"
reqs2=$(awk '/^rekey_http_requests_total\{/ { s += $NF } END { print s + 0 }' scrape.txt)
if grep -q '^rekey_http_requests_total{' scrape.txt; then
    [ "$reqs2" -ge $((reqs1 + 3)) ] || { cat scrape.txt; fail "requests counted $reqs1 -> $reqs2"; }
else
    echo "skip (the API publishes no response event yet): rekey_http_requests_total"
fi
promtool check metrics <scrape.txt >last.out 2>&1 || { cat last.out; fail "promtool check metrics after rotations"; }

# An entry with every: 2s (not auto: nobody rotates it) turns overdue at its due time: each
# scrape is bracketed by the clock, and its gauge must agree with the due time it shows.
req POST /v1/rekey/rotate/secret/app/slow '{"reason":"metrics test"}'
expect 200
$PY - "$A" <<'PY' || fail "the overdue gauge of secret/app/slow does not follow its schedule"
import sys, time, urllib.request
a = sys.argv[1]
tok = open("root.hdr.secret").read().split(": ", 1)[1].strip()
lab = 'path="secret/app/slow",kind="generated"'
seen0 = seen1 = False
deadline = time.time() + 8
while time.time() < deadline and not (seen0 and seen1):
    t_before = time.time()
    r = urllib.request.urlopen(urllib.request.Request(
        a + "/v1/sys/metrics?format=prometheus", headers={"X-Vault-Token": tok}))
    body = r.read().decode()
    t_after = time.time()
    vals = {}
    for line in body.splitlines():
        for name in ("rekey_secret_rotation_overdue", "rekey_secret_next_rotation_timestamp_seconds",
                     "rekey_secret_last_rotation_timestamp_seconds"):
            if line.startswith(name + "{" + lab + "} "):
                vals[name] = int(line.rsplit(" ", 1)[1])
    over = vals["rekey_secret_rotation_overdue"]
    due = vals["rekey_secret_next_rotation_timestamp_seconds"]
    assert due == vals["rekey_secret_last_rotation_timestamp_seconds"] + 2, vals
    # the server compares whole seconds: overdue once its clock reads due + 1
    if over == 0:
        assert t_before < due + 1, ("still 0 at", t_before, "due", due)
        seen0 = True
    else:
        assert t_after >= due + 1, ("already 1 at", t_after, "due", due)
        seen1 = True
    time.sleep(0.2)
assert seen0 and seen1, (seen0, seen1)
PY

# SIGHUP with unauthenticated_metrics_access: true: a scrape without a token is served.
write_config true
kill -HUP "$SERVER_PID"
wait_log "reloaded" 5
scrape none.hdr
[ "$STATUS" = 200 ] || fail "unauthenticated scrape after enabling it: $STATUS"
promtool check metrics <scrape.txt >last.out 2>&1 || { cat last.out; fail "promtool check metrics (unauthenticated)"; }

# Sealed: the unauthenticated scrape still answers, with rekey_sealed 1 and no entries.
req PUT /v1/sys/seal ''
expect 204
scrape none.hdr
[ "$STATUS" = 200 ] || fail "a sealed server's unauthenticated scrape: $STATUS"
expect_in scrape.txt "rekey_sealed 1"
expect_not_in scrape.txt "rekey_secret_version{"
promtool check metrics <scrape.txt >last.out 2>&1 || { cat last.out; fail "promtool check metrics (sealed)"; }
# A token cannot be checked while sealed (that scrape fails, and RekeyDown says so).
write_config false
kill -HUP "$SERVER_PID"
sleep 0.5
scrape
[ "$STATUS" = 503 ] || fail "a token scrape of a sealed server: $STATUS, want 503"
stop_server

# ======================= a rotation by another process shows at the next scrape ==========
if sqlite_only "two processes on one store"; then
    PORT=$(free_port)
    A="http://127.0.0.1:$PORT"
    cat >srv.yaml <<EOF
version: 1
$(store_yaml srv.db)
server:
  listen: "127.0.0.1:$PORT"
  unauthenticated_metrics_access: true
secrets:
  - path: secret/sep/one
    kind: generated
    format: "sp-{hex:16}"
    every: 30d
EOF
    export REKEY_CONFIG=$dir/srv.yaml REKEY_KEY_FILE=$dir/srv.key
    "$REKEY" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
    "$REKEY" rotate secret/sep/one >/dev/null
    "$REKEY" server >server.log 2>&1 &
    SERVER_PID=$!
    wait_up
    S='path="secret/sep/one",kind="generated"'
    scrape none.hdr
    [ "$STATUS" = 200 ] || { cat server.log; fail "scrape: $STATUS"; }
    [ "$(value scrape.txt "rekey_secret_version{$S}")" = 1 ] || { cat scrape.txt; fail "version 1 before"; }
    "$REKEY" rotate secret/sep/one >/dev/null
    scrape none.hdr
    [ "$(value scrape.txt "rekey_secret_version{$S}")" = 2 ] || { cat scrape.txt; fail "the CLI's rotation is not in the server's scrape"; }
    stop_server
fi
