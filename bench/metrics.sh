#!/bin/sh
# bench/metrics.sh: a Prometheus scrape of `rekey server` whose inventory holds 10,000 entries
# (kind generated, every 30d, auto) with one version each in the store, as bench/status.sh makes
# them. Target: a scrape (GET /v1/sys/metrics?format=prometheus) under 50 ms.
# Prints the median, p90 and max wall time of 30 scrapes (curl's time_total, after 3 warm-ups),
# the part spent reading the store (rekey_secrets_collect_duration_seconds, median), the server's
# CPU time per scrape (less sensitive to other load on the machine than wall time), the size of
# the answer, and the time of `rekey metrics` (one process: YAML load + store + text).
# Usage: bench/metrics.sh [N entries, default 10000]
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
n=${1:-10000}
bench_build bench/bench_kv src/cli/rekey
rekey=$build/src/cli/rekey
bench_tmpdir /tmp/rekey-bench-metrics-XXXXXX
dir=$bench_dir
cd "$dir"
port=$(bench_free_port)
bench_inventory "$n" "server:
  listen: 127.0.0.1:$port
  unauthenticated_metrics_access: true" >rekey.yaml
"$build/bench/bench_kv" --populate "$dir/store.db" "$n" "$dir/root.key"
export REKEY_KEY_FILE="$dir/root.key"
REKEY_LOG=warn "$rekey" -c rekey.yaml server >server.log 2>&1 &
pid=$!
bench_track "$pid"
url="http://127.0.0.1:$port/v1/sys/metrics?format=prometheus"
bench_wait_up "$pid" server.log "http://127.0.0.1:$port/v1/sys/health"
for _ in 1 2 3; do curl -sf -o scrape.txt "$url"; done
lines=$(grep -c '^rekey_secret_version{' scrape.txt)
[ "$lines" -eq "$n" ] || { echo "the scrape has $lines entries, expected $n"; exit 1; }
size_kib=$(($(wc -c <scrape.txt) / 1024))
: >times
: >collect
tck=$(getconf CLK_TCK)
cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
for _ in $(seq 1 30); do
    curl -sf -o scrape.txt -w '%{time_total}\n' "$url" >>times
    awk '/^rekey_secrets_collect_duration_seconds / { print $2 }' scrape.txt >>collect
done
cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$tck" 'BEGIN { printf "%.1f", (b - a) * 1000 / t / 30 }')
ms() { awk '{ printf "%.1f\n", $1 * 1000 }' "$1" | sort -n; }
median_ms=$(ms times | sed -n 15p)
p90_ms=$(ms times | sed -n 27p)
max_ms=$(ms times | tail -1)
collect_ms=$(ms collect | sed -n 15p)
t0=$(date +%s%N)
"$rekey" -c rekey.yaml metrics >cli.txt
t1=$(date +%s%N)
cli_ms=$(((t1 - t0) / 1000000))
verdict=$(awk -v m="$median_ms" 'BEGIN { print (m < 50 ? "met" : "MISSED") }')
echo "inventory: $n entries (kind generated), scrape: $size_kib KiB, $(wc -l <scrape.txt) lines"
echo
echo "| measurement | median | p90 | max | target |"
echo "|---|---:|---:|---:|---|"
echo "| scrape of rekey server, $n entries (curl, 30 runs) | $median_ms ms | $p90_ms ms | $max_ms ms | < 50 ms: $verdict |"
echo "| of which reading the store (rekey_secrets_collect_duration_seconds) | $collect_ms ms | | | |"
echo "| server CPU time per scrape (utime + stime from /proc) | $cpu_ms ms | | | |"
echo "| rekey metrics (one process: YAML load, store, text) | $cli_ms ms | | | |"
