#!/bin/sh
# bench/kv.sh: builds bench_kv and runs it on a temporary directory; prints a Markdown table:
# kv_get (1 and 2 threads, p50/p99), durable kv_put (1, 2, 8 writers) against raw SQLite with one
# fsynced transaction per row, for 10,000 and 100,000 secrets, and the peak RSS. The 8-writer
# target's verdict compares the median of three 8-writer runs with the median of four baselines
# run between them.
# Runs once per store backend: sqlite (the default) and log (the append-only store).
# Usage: bench/kv.sh [SECONDS per measurement, default 1] [sqlite|log|both, default both]
# (about 20 s per backend at 1)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_build bench/bench_kv
bench_tmpdir /tmp/rekey-bench-kv-XXXXXX
dir=$bench_dir
bench_store_dir_line "$dir"
echo
case "${2:-both}" in
  both) backends="sqlite log" ;;
  sqlite|log) backends=$2 ;;
  *) echo "usage: bench/kv.sh [SECONDS] [sqlite|log|both]" >&2; exit 2 ;;
esac
for b in $backends; do
    rm -rf "${dir:?}"/*
    BENCH_BACKEND=$b "$build/bench/bench_kv" "$dir" "${1:-1}"
    echo
done
