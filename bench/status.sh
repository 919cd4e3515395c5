#!/bin/sh
# bench/status.sh: `rekey status` over an inventory of 10,000 secrets (kind generated, every 30d)
# whose store holds one version each. Prints the median wall time of 5 runs (hyperfine when it
# is installed, else a loop timed with date +%s%N) and the peak RSS (/usr/bin/time -v, Debian
# package `time`). Target: under 200 ms.
# Usage: bench/status.sh [N secrets, default 10000]
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
n=${1:-10000}
bench_build bench/bench_kv src/cli/rekey
rekey=$build/src/cli/rekey
bench_tmpdir /tmp/rekey-bench-status-XXXXXX
dir=$bench_dir
cd "$dir"
bench_inventory "$n" >rekey.yaml
"$build/bench/bench_kv" --populate "$dir/store.db" "$n" "$dir/root.key"
export REKEY_KEY_FILE="$dir/root.key"
"$rekey" -c rekey.yaml status >status.out || [ $? -eq 1 ] ||
    { echo "rekey status failed:"; tail -5 status.out; exit 1; }
rows=$(grep -c '^secret/bench/' status.out)
echo "inventory: $n secrets (kind generated), store: $(du -k store.db | cut -f1) KiB, status rows: $rows"
[ "$rows" -eq "$n" ] || { echo "status printed $rows rows, expected $n"; exit 1; }
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --runs 5 --warmup 1 -i --export-json hf.json \
        "$rekey -c rekey.yaml status" >/dev/null 2>&1
    median_ms=$(python3 -c 'import json; r = json.load(open("hf.json"))["results"][0]; print("%.1f" % (r["median"] * 1000))')
    how="hyperfine, 5 runs after 1 warm-up"
else
    : >times
    for _ in 1 2 3 4 5; do
        t0=$(date +%s%N)
        "$rekey" -c rekey.yaml status >/dev/null || true
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>times
    done
    median_ms=$(sort -n times | sed -n 3p | awk '{ printf "%.1f", $1 / 1000 }')
    how="date +%s%N loop, 5 runs"
fi
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$rekey" -c rekey.yaml status >/dev/null 2>time.err || true
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' time.err)
else
    rss="n/a (install the Debian package time)"
fi
verdict=$(awk -v m="$median_ms" 'BEGIN { print (m < 200 ? "met" : "MISSED") }')
echo
echo "| measurement | median | target | peak RSS |"
echo "|---|---:|---|---:|"
echo "| rekey status, $n secrets ($how) | $median_ms ms | < 200 ms: $verdict | $rss KiB |"
