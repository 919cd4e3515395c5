#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]: build the libFuzzer targets with clang (build-fuzz, once)
# and run each for SECONDS (default 5) on a copy of its seed corpus fuzz/corpus/NAME/, with the
# target's extra libFuzzer flags from fuzz/NAME.options if there is one.
# Fails if any target crashes, leaks or trips a sanitizer; the input is kept in
# build-fuzz/artifacts/. Env: FUZZ_BUILD (build dir), FUZZ_JOBS (ninja -j).
set -euo pipefail

secs=${1:-5}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}

if ! command -v clang >/dev/null; then
    echo "fuzz/run.sh: clang is needed (apt-get install clang libfuzzer-14-dev)" >&2
    exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
    # The libraries are instrumented for coverage (fuzzer-no-link) so libFuzzer sees into the
    # parsers; the fuzz executables add -fsanitize=fuzzer themselves (fuzz/meson.build).
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Dtests=false -Db_lundef=false \
        -Dbuildtype=debugoptimized \
        -Dc_args="-fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-warning-option" \
        -Dc_link_args=-fsanitize=address,undefined >/dev/null
fi

# The targets meson knows: NAME-fuzzer executables under fuzz/.
mapfile -t all < <(meson introspect --targets "$build" | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].endswith("-fuzzer"):
        print(t["name"][:-len("-fuzzer")])' | sort)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz/run.sh: no fuzz targets" >&2
    exit 2
fi

if ! ninja -C "$build" ${FUZZ_JOBS:+-j "$FUZZ_JOBS"} \
    $(for t in "${targets[@]}"; do echo "fuzz/$t-fuzzer"; done) >"$build/fuzz-build.log" 2>&1; then
    grep -E -A3 'FAILED|error' "$build/fuzz-build.log" | head -40 >&2
    echo "fuzz/run.sh: build failed (full log: $build/fuzz-build.log)" >&2
    exit 1
fi

artifacts="$build/artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/rekey-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT

export LSAN_OPTIONS="suppressions=$root/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

passed=0
failed=0
for t in "${targets[@]}"; do
    corpus="$work/$t"
    mkdir -p "$corpus"
    if [ -d "$root/fuzz/corpus/$t" ]; then
        cp -R "$root/fuzz/corpus/$t/." "$corpus/"
    fi
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536
          -print_final_stats=0 -artifact_prefix="$artifacts/$t-")
    if [ -f "$root/fuzz/$t.dict" ]; then
        args+=(-dict="$root/fuzz/$t.dict")
    fi
    if [ -f "$root/fuzz/$t.options" ]; then
        # The target's own flags, one per line ('#' comments): later flags win in libFuzzer.
        while IFS= read -r opt; do
            args+=("$opt")
        done < <(grep -Ev '^[[:space:]]*(#|$)' "$root/fuzz/$t.options")
    fi
    if "$build/fuzz/$t-fuzzer" "${args[@]}" "$corpus" >"$work/$t.log" 2>&1; then
        runs=$(grep -Eo 'Done [0-9]+ runs' "$work/$t.log" | tail -1 || true)
        echo "fuzz: $t: ok (${runs:-no stats})"
        passed=$((passed + 1))
    else
        echo "fuzz: $t: FAILED; the input is in $artifacts/$t-*" >&2
        grep -E 'ERROR|SUMMARY|==[0-9]+==' "$work/$t.log" | head -20 >&2 || tail -30 "$work/$t.log" >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
