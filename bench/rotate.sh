#!/usr/bin/env bash
# Rotates N generated secrets (default 10,000) with `rekey rotate --all --yes` and one no-op
# exec reload hook each; prints secrets per second and the peak RSS. Usage: bench/rotate.sh [N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench}
if [ -z "${REKEY:-}" ]; then
  [ -f "$build/build.ninja" ] || meson setup "$build" "$top" -Dbuildtype=release -Dtests=false -Dtest_switches=false >/dev/null
  ninja -C "$build" src/cli/rekey >/dev/null
fi
rekey=${REKEY:-$build/src/cli/rekey}
n=${1:-10000}
dir=$(mktemp -d /tmp/rekey-bench-rotate.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
{
  echo "version: 1"
  echo "store: { path: store.db }"
  echo "hooks:"
  echo "  noop: { type: exec, command: [/bin/true] }"
  echo "secrets:"
  for i in $(seq 1 "$n"); do
    printf '  - { path: secret/bench/s%06d, kind: generated, every: 30d, auto: true, field: key, format: "{hex:32}", reload: [noop] }\n' "$i"
  done
} > rekey.yaml
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key" REKEY_LOG=warn
"$rekey" -c rekey.yaml operator init -key-file="$REKEY_KEY_FILE" >/dev/null
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o rss.txt "$rekey" -c rekey.yaml rotate --all --yes > out.txt
end=$(date +%s.%N)
tail -1 out.txt
secs=$(echo "$end - $start" | bc)
printf 'rotate --all: %d secrets in %.1f s = %.0f secrets/s; peak RSS %d KiB\n' "$n" "$secs" \
  "$(echo "$n / $secs" | bc -l)" "$(cat rss.txt)"
