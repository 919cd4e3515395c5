#!/bin/sh
# bench/run-all.sh: runs every bench/*.sh (except itself and lib.sh, which they source) in turn and appends a dated section to
# bench/RESULTS.md with the machine (nproc, CPU model, RAM, kernel, load) and each script's output.
# Usage: bench/run-all.sh [--no-record]   (--no-record: print only, leave RESULTS.md alone)
# Environment: BUILD_DIR (default build-bench, a release build made on first use).
set -eu
cd "$(dirname "$0")/.."
record=1
[ "${1:-}" = "--no-record" ] && record=0
out=$(mktemp /tmp/rekey-bench-all-XXXXXX)
trap 'rm -f "$out"' EXIT INT TERM
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " + uncommitted changes" || true)
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev$dirty"
    echo
    echo "Machine: $(nproc) CPUs ($cpu), $ram RAM, Linux $(uname -r), load average before:" \
        "$(cut -d' ' -f1-3 /proc/loadavg). Shared and noisy: compare ratios measured in the same" \
        "run, not absolute figures across runs."
} >"$out"
status=0
for s in bench/*.sh; do
    case $(basename "$s") in run-all.sh | lib.sh) continue ;; esac
    name=$(basename "$s" .sh)
    echo "== $s" >&2
    start=$(date +%s)
    {
        echo
        echo "### $name"
        echo
    } >>"$out"
    # Each script runs with its own interpreter (its #! line); a non-executable one with bash.
    if { if [ -x "$s" ]; then "./$s"; else bash "$s"; fi; } >"$out.one" 2>&1; then
        rc=0
    else
        rc=$?
        status=1
    fi
    cat "$out.one" >>"$out"
    cat "$out.one" >&2
    rm -f "$out.one"
    {
        echo
        echo "($s: exit $rc, $(($(date +%s) - start)) s)"
    } >>"$out"
done
if [ "$record" -eq 1 ]; then
    [ -f bench/RESULTS.md ] || printf '# Benchmark results\n\nAppended by bench/run-all.sh, newest last.\n' >bench/RESULTS.md
    cat "$out" >>bench/RESULTS.md
    echo "appended to bench/RESULTS.md" >&2
else
    cat "$out"
fi
exit $status
