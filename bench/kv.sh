#!/bin/sh
# bench/kv.sh: builds bench_kv and runs it on a temporary directory; prints a Markdown table:
# kv_get (1 and 2 threads, p50/p99), durable kv_put (1, 2, 8 writers) against raw SQLite with one
# fsynced transaction per row, for 10,000 and 100,000 secrets, and the peak RSS.
# Usage: bench/kv.sh [SECONDS per measurement, default 1]  (about 15 s at 1)
set -eu
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" bench/bench_kv >/dev/null
dir=$(mktemp -d /tmp/rekey-bench-kv-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
echo "store directory: $dir ($(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }'))"
echo
"$build/bench/bench_kv" "$dir" "${1:-1}"
