#!/bin/sh
# bench/store.sh: builds bench_store and runs it on a temporary directory; prints the table.
# Usage: bench/store.sh [SECONDS per measurement, default 1]. The results are not written to a
# file: record them by hand (with the machine and the date) where the project keeps them.
set -eu
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=release -Dtests=false -Dtest_switches=false >/dev/null
fi
ninja -C "$build" bench/bench_store >/dev/null
dir=$(mktemp -d /tmp/rekey-bench-store-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
# The store lives on the same file system as /tmp: fsync cost depends on it.
echo "store directory: $dir ($(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }'))"
"$build/bench/bench_store" "$dir" "${1:-1}"
