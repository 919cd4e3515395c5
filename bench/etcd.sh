#!/usr/bin/env bash
# bench/etcd.sh: rekey on a 3-member etcd cluster (loopback), against etcd itself, in one run.
#   1. raw etcd puts through its JSON gateway (POST /v3/kv/put, a 600-byte value, about what
#      rekey writes per KV version), wrk with CONNS connections: the ceiling for durable writes;
#   2. rekey's durable KV writes (POST /v1/secret/data/<path>, one server on the cluster) with the
#      same connections: writes/s and the ratio to 1 (target >= 0.5);
#   3. rekey's KV reads (GET; linearizable, from the watched read cache) against the
#      fixed-body libmicrohttpd ceiling (bench/mhd-baseline.c, as bench/http.sh does);
#   4. failover: two servers, a secret due every 2 s; kill -9 of the leader; the time until the
#      standby's first scheduled rotation (target < 10 s).
# Each wrk figure is the median of RUNS runs of DURATION. Prints a Markdown table.
# Env: DURATION (3s), RUNS (3), CONNS (16), THREADS (2), PATHS (200), BUILD_DIR (build-bench,
# a release build made on first use), REKEY (use this binary instead).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-3s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
PATHS=${PATHS:-200}
PY=/usr/bin/python3
bench_need wrk
bench_rekey
bench_tmpdir /tmp/rekey-bench-etcd.XXXXXX
tmp=$bench_dir
bench_sig=KILL # the servers left at exit
bench_on_exit() { "$top/scripts/services" stop etcd-cluster "$tmp/etcd" >/dev/null 2>&1; }
bench_unset_client_env
export REKEY_LOG=info
base=$($PY -c '
import random, socket
for _ in range(200):
    b = random.randrange(20000, 40000, 2)
    try:
        ss = [socket.socket() for _ in range(6)]
        for i, s in enumerate(ss):
            s.bind(("127.0.0.1", b + i))
        print(b)
        break
    except OSError:
        pass')
"$top/scripts/services" start etcd-cluster "$tmp/etcd" "$base" >/dev/null
ep=$(cat "$tmp/etcd/endpoints")
export REKEY_STORE="etcd:$ep" REKEY_KEY_FILE="$tmp/root.key"
token=$(bench_operator_init "$REKEY" "$REKEY_STORE" "$REKEY_KEY_FILE")

# server NAME PORT [SECRETS]: a server on the cluster, log NAME.log; waits until it answers; sets SPID.
server() {
    printf 'version: 1\nstore: { backend: etcd, endpoints: "%s" }\nserver:\n  listen: "127.0.0.1:%s"\n%s\n' \
        "$ep" "$2" "${3-}" >"$tmp/$1.yaml"
    "$REKEY" server -config "$tmp/$1.yaml" >>"$tmp/$1.log" 2>&1 &
    SPID=$!
    bench_track "$SPID"
    bench_wait_up "$SPID" "$tmp/$1.log" "http://127.0.0.1:$2/v1/sys/health"
}

# wrk_median LUA URL: the median requests/s of RUNS runs (fails on non-2xx answers).
wrk_median() {
    local i out rates=()
    for ((i = 0; i < RUNS; i++)); do
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$1" "$2")
        if echo "$out" | grep -q "Non-2xx"; then
            echo "$out" >&2
            echo "bench/etcd: errors in a run of $1" >&2
            exit 1
        fi
        rates+=("$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')")
    done
    printf '%.0f' "$(printf '%s\n' "${rates[@]}" | bench_median)"
}

# 1. raw etcd puts
val=$($PY -c 'import base64; print(base64.b64encode(b"x" * 600).decode())')
# (keys "bench/000"…: "bench/" is 6 bytes and each number 3, so their base64 concatenate)
$PY - "$PATHS" >"$tmp/put.lua" <<'P'
import base64, sys
n = min(int(sys.argv[1]), 1000)
print("local keys = {%s}" % ",".join('"%s"' % base64.b64encode(b"%03d" % i).decode() for i in range(n)))
P
cat >>"$tmp/put.lua" <<EOF
local seq = 0
request = function()
    seq = seq + 1
    return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"},
                      '{"key":"YmVuY2gv' .. keys[(seq % #keys) + 1] .. '","value":"$val"}')
end
EOF
raw_put=$(wrk_median "$tmp/put.lua" "${ep%%,*}")

# 2. rekey writes
PA=$(bench_free_port)
server a "$PA"
pa=$SPID
cat >"$tmp/write.lua" <<EOF
local seq = 0
request = function()
    seq = seq + 1
    return wrk.format("POST", "/v1/secret/data/bench/p" .. (seq % $PATHS),
                      {["X-Vault-Token"] = "$token", ["Content-Type"] = "application/json"},
                      '{"data":{"api_key":"sk-bench-' .. seq .. '"}}')
end
EOF
chmod 600 "$tmp/write.lua"
rk_write=$(wrk_median "$tmp/write.lua" "http://127.0.0.1:$PA")

# 3. reads against the libmicrohttpd ceiling
cat >"$tmp/read.lua" <<EOF
local seq = 0
request = function()
    seq = seq + 1
    return wrk.format("GET", "/v1/secret/data/bench/p" .. (seq % $PATHS), {["X-Vault-Token"] = "$token"})
end
EOF
chmod 600 "$tmp/read.lua"
rk_read=$(wrk_median "$tmp/read.lua" "http://127.0.0.1:$PA")
kill -TERM "$pa"
wait "$pa" 2>/dev/null || true
cc -std=c17 -O2 -D_GNU_SOURCE -o "$tmp/mhd-baseline" bench/mhd-baseline.c \
    $(pkg-config --cflags --libs libmicrohttpd)
"$tmp/mhd-baseline" 0 >"$tmp/baseline.port" 2>/dev/null &
mhd_pid=$!
bench_track "$mhd_pid"
for _ in $(seq 1 100); do [ -s "$tmp/baseline.port" ] && break; sleep 0.05; done
echo 'request = function() return wrk.format("GET", "/") end' >"$tmp/base.lua"
mhd=$(wrk_median "$tmp/base.lua" "http://127.0.0.1:$(head -n1 "$tmp/baseline.port")")
kill "$mhd_pid"

# 4. failover: the leader killed; the standby's first scheduled rotation
sec='secrets:
  - path: secret/fo/token
    kind: generated
    format: "tok-{hex:32}"
    field: key
    every: 2s
    auto: true'
fo=()
for ((i = 0; i < RUNS; i++)); do
    : >"$tmp/f1.log"
    : >"$tmp/f2.log"
    P1=$(bench_free_port)
    P2=$(bench_free_port)
    server f1 "$P1" "$sec"
    p1=$SPID
    for _ in $(seq 1 100); do grep -q "rotated" "$tmp/f1.log" && break; sleep 0.05; done
    server f2 "$P2" "$sec"
    p2=$SPID
    sleep 0.5
    t0=$(date +%s.%N)
    kill -KILL "$p1"
    for _ in $(seq 1 500); do grep -q "rotated" "$tmp/f2.log" && break; sleep 0.02; done
    grep -q "rotated" "$tmp/f2.log" || { cat "$tmp/f2.log" >&2; echo "bench/etcd: no rotation after the failover" >&2; exit 1; }
    fo+=("$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")")
    kill -TERM "$p2"
    wait "$p2" 2>/dev/null || true
done
fo_med=$(printf '%.1f' "$(printf '%s\n' "${fo[@]}" | bench_median)")

ratio() { $PY -c "print('%.2f' % ($1 / $2))"; }
echo "| figure | value | ratio | target |"
echo "|---|---:|---:|---|"
echo "| raw etcd put through the gateway, $CONNS connections | $raw_put/s | 1 | — |"
echo "| rekey durable KV write over HTTP, $CONNS connections | $rk_write/s | $(ratio "$rk_write" "$raw_put") × raw | ≥ 0.5 × |"
echo "| libmicrohttpd fixed body (ceiling), $CONNS connections | $mhd/s | 1 | — |"
echo "| rekey KV read over HTTP (linearizable, watched cache) | $rk_read/s | $(ratio "$rk_read" "$mhd") × ceiling | ≥ 0.5 × |"
echo "| failover: leader's kill -9 to the standby's first rotation | $fo_med s (runs: ${fo[*]}) | — | < 10 s |"
