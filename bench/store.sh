#!/bin/sh
# bench/store.sh: builds bench_store and runs it on a temporary directory; prints the table.
# Usage: bench/store.sh [SECONDS per measurement, default 1]. The results are not written to a
# file: record them by hand (with the machine and the date) where the project keeps them.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_build bench/bench_store
bench_tmpdir /tmp/rekey-bench-store-XXXXXX
# The store lives on the same file system as /tmp: fsync cost depends on it.
bench_store_dir_line "$bench_dir"
"$build/bench/bench_store" "$bench_dir" "${1:-1}"
