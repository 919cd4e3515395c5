#!/usr/bin/env bash
# Rotates N generated secrets (default 10,000) with `rekey rotate --all --yes` and one no-op
# exec reload hook each; prints secrets per second and the peak RSS. Usage: bench/rotate.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_rekey
rekey=$REKEY
n=${1:-10000}
bench_tmpdir /tmp/rekey-bench-rotate.XXXXXX
dir=$bench_dir
cd "$dir"
bench_hook_inventory "$n" secret/bench/s ", reload: [noop]" >rekey.yaml
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key" REKEY_LOG=warn
"$rekey" -c rekey.yaml operator init -key-file="$REKEY_KEY_FILE" >/dev/null
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o rss.txt "$rekey" -c rekey.yaml rotate --all --yes > out.txt
end=$(date +%s.%N)
tail -1 out.txt
secs=$(echo "$end - $start" | bc)
printf 'rotate --all: %d secrets in %.1f s = %.0f secrets/s; peak RSS %d KiB\n' "$n" "$secs" \
  "$(echo "$n / $secs" | bc -l)" "$(cat rss.txt)"
