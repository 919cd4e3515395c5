#!/bin/sh
# http-baseline.sh: rekey's HTTP core against the bare libmicrohttpd ceiling, in one run.
# Builds bench/mhd-baseline.c and bench/http-route.c (meson targets of the release build dir,
# BUILD_DIR), starts each on an ephemeral loopback port, runs `wrk -t2 -c64 -d5s` (keep-alive)
# against a fixed-JSON route, prints requests/s and latency, stops them, and prints the ratio.
# The target is rekey >= 80% of the baseline. Env: DURATION (default 5s), CONNS (64).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
bench_need wrk

bench_tmpdir /tmp/rekey-bench-http.XXXXXX
tmp=$bench_dir

bench_build bench/mhd-baseline bench/http-route

# start NAME BINARY: runs it, waits for the port it prints, sets $port.
start() {
    "$2" 0 >"$tmp/$1.port" 2>"$tmp/$1.log" &
    bench_track $!
    i=0
    while [ ! -s "$tmp/$1.port" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "http-baseline: $1 did not start:" >&2; cat "$tmp/$1.log" >&2; exit 1; }
        sleep 0.05
    done
    port=$(head -n1 "$tmp/$1.port")
}

# measure NAME URL: runs wrk, prints a line, sets $rps.
measure() {
    curl -fsS "$2" >/dev/null 2>&1 || true   # warm up one connection
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$2" >"$tmp/$1.wrk"
    bench_wrk_parse "$tmp/$1.wrk"
    rps=$wrk_rps p50=$wrk_p50 p99=$wrk_p99
    errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$tmp/$1.wrk")
    printf '%-14s %12s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "$errs"
}

start mhd-baseline "$build/bench/mhd-baseline"
measure mhd-baseline "http://127.0.0.1:$port/v1/sys/health"
base=$rps
start rekey-http "$build/bench/http-route"
measure rekey-http "http://127.0.0.1:$port/v1/sys/health"
ours=$rps
awk -v a="$ours" -v b="$base" 'BEGIN {
    r = (b > 0) ? 100 * a / b : 0
    printf "rekey-http / mhd-baseline = %.1f%% (target >= 80%%): %s\n", r, (r >= 80) ? "PASS" : "FAIL"
    exit (r >= 80) ? 0 : 1
}'
