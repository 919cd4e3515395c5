#!/usr/bin/env bash
# bench/audit.sh: what the audit log costs, in one run (docs/audit.md).
#   1. KV reads over HTTP (GET /v1/secret/data/<path>, wrk) on two dev servers started the same
#      way, one with an audit: block and one without, measured alternately (off, on, off, on):
#      target on >= 0.7 x off (each read writes two fsynced lines: request and response);
#   2. durable KV writes (POST) with the audit log on: target >= 5,000/s;
#   3. `rekey audit` queries over a generated log of SIZE_MB (1 GB by default) of lines in the
#      server's format: a selective --path query, --errors, --actor, and the whole file with
#      --json; MB/s from the command's own --stats (target >= 200 MB/s); and `rekey audit
#      verify` over the same file, for reference (it hashes every line).
#   4. the ceiling: this disk's latency for a 300-byte append + fdatasync, measured by a trivial
#      loop in the directory of the audit log, in the same run.
# wrk -t2 -c64 -d10s, keep-alive, loopback; ROUNDS rounds, each measuring every server in turn;
# the verdicts use the medians. Prints a Markdown table; exits 1 if a target is missed or a run
# had errors.
# Env: DURATION (10s), CONNS (64), THREADS (2), PATHS (1000), SIZE_MB (1024; 0 skips the
# queries), ROUNDS (3), BUILD_DIR (build-bench, a release build made on first use), REKEY (use
# this binary instead), BASE_REKEY (another binary, e.g. an older commit's, measured with its
# audit log on in the same rounds, as the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PATHS=${PATHS:-1000}
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
BASE_REKEY=${BASE_REKEY:-}
PY=/usr/bin/python3
bench_need wrk
bench_rekey

bench_tmpdir /tmp/rekey-bench-audit.XXXXXX
tmp=$bench_dir
bench_unset_client_env
export REKEY_LOG=warn

token="bench-$$-$RANDOM$RANDOM"
printf 'version: 1\nsecrets: []\n' >"$tmp/off.yaml"
printf 'version: 1\naudit:\n  path: %s/audit.log\nsecrets: []\n' "$tmp" >"$tmp/on.yaml"
printf 'version: 1\naudit:\n  path: %s/base-audit.log\nsecrets: []\n' "$tmp" >"$tmp/base.yaml"
servers="off on"
[ -n "$BASE_REKEY" ] && servers="off on base"
# a dev server per NAME, on NAME.yaml in its own directory; PORT[NAME] is its port
declare -A PORT
for name in $servers; do
    port=$(bench_free_port)
    bin=$REKEY
    [ "$name" = base ] && bin=$BASE_REKEY
    bench_dev_server "$bin" "$port" "$tmp/$name.yaml" "$token" "$tmp/$name"
    PORT[$name]=$port
done

(umask 077 && printf '%s' "$token" >"$tmp/token")
for name in $servers; do
    bench_populate "http://127.0.0.1:${PORT[$name]}" "$tmp/token" "$PATHS"
done

bench_lua_kv "$tmp/read.lua" read "$token" "$PATHS" 0
bench_lua_kv "$tmp/write.lua" write "$token" "$PATHS" 2

rows=()
fails=0
declare -A RPS
# measure NAME URL SCRIPT: wrk; adds a row, keeps NAME's req/s (space-separated) in RPS.
measure() {
    local name=$1 url=$2 script=$3 out="$tmp/wrk.out" rps p50 p99 non2xx
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$script" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; fails=$((fails + 1)); }
    bench_wrk_parse "$out"
    rps=$wrk_rps p50=$wrk_p50 p99=$wrk_p99 non2xx=${wrk_non2xx:-0}
    rows+=("| $name | ${rps:-?} | ${p50:-?} | ${p99:-?} | $non2xx |")
    if [ "$non2xx" != 0 ]; then
        echo "bench/audit: $name had $non2xx non-2xx answers" >&2
        fails=$((fails + 1))
    fi
    RPS[$name]="${RPS[$name]:-} ${rps:-0}"
}

# The ceiling: one writer, a 300-byte append + fdatasync per line, beside the audit log.
fsync_loop() {
    $PY - "$tmp/fsync-probe" 2000 <<'PY'
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
line, ts = b"x" * 299 + b"\n", []
for _ in range(n):
    a = time.perf_counter()
    os.write(fd, line)
    os.fdatasync(fd)
    ts.append(time.perf_counter() - a)
os.close(fd)
os.unlink(path)
ts.sort()
print("%.0f %.0f %.0f" % (ts[n // 2] * 1e6, ts[int(n * 0.99)] * 1e6, n / sum(ts)))
PY
}
fsync_rows=()
for round in $(seq 1 "$ROUNDS"); do
    read -r f50 f99 fps < <(fsync_loop)
    fsync_rows+=("| round $round | $f50 us | $f99 us | $fps |")
    measure "GET kv, audit off" "http://127.0.0.1:${PORT[off]}" "$tmp/read.lua"
    measure "GET kv, audit on" "http://127.0.0.1:${PORT[on]}" "$tmp/read.lua"
    [ -n "$BASE_REKEY" ] && measure "GET kv, audit on (baseline)" "http://127.0.0.1:${PORT[base]}" "$tmp/read.lua"
    measure "POST kv (durable), audit on" "http://127.0.0.1:${PORT[on]}" "$tmp/write.lua"
    measure "POST kv (durable), audit off" "http://127.0.0.1:${PORT[off]}" "$tmp/write.lua"
    [ -n "$BASE_REKEY" ] && measure "POST kv (durable), audit on (baseline)" "http://127.0.0.1:${PORT[base]}" "$tmp/write.lua"
done
audit_lines=$(wc -l <"$tmp/audit.log")
verify_server=$("$REKEY" audit verify "$tmp/audit.log" | head -c 300)

# ---- queries over a generated log in the server's format ----
qrows=()
qmin=""
verify_mbs=""
bytes=0
if [ "$SIZE_MB" -gt 0 ]; then
$PY - "$tmp/big.log" "$SIZE_MB" <<'PY'
import hashlib, os, random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
random.seed(7)
prev = hashlib.sha256(b"anchor").hexdigest()
def seal(body, t):
    global prev
    head = '{"prev":"%s","time":"%s",%s' % (prev, t, body)
    h = hashlib.sha256(head.encode()).hexdigest()
    prev = h
    return '%s,"hash":"%s"}\n' % (head, h)
actors = ["token-ci", "token-deploy", "root", "token-app%d" % 7]
with open(path, "w", buffering=1 << 22) as f:
    n = 0
    f.write(seal('"type":"header","version":1,"anchor":true,"pid":1,"host":"bench","file":"big.log"', "2026-01-01T00:00:00.000000Z"))
    chunk = []
    while n < size:
        i = len(chunk) + n
        s = i // 1000
        t = "2026-01-%02dT%02d:%02d:%02d.%06dZ" % (1 + (s // 86400) % 28, (s // 3600) % 24, (s // 60) % 60, s % 60, i % 1000000)
        p = "secret/data/team%d/app%d/key" % (random.randrange(200), random.randrange(50))
        a = random.choice(actors)
        st = 403 if random.random() < 0.001 else 200
        body = ('"type":"response","request_id":"5f0c%012x-0000-0000-0000-000000000000","operation":"read","path":"%s",'
                '"remote_address":"10.1.%d.%d","actor":"%s","accessor":"hmac-sha256:%s","policies":["default","app"],'
                '"status":%d,"duration_us":%d' % (i, p, i % 250, i % 200, a, prev, st, 100 + i % 900))
        if st >= 400:
            body += ',"error":"permission denied"'
        line = seal(body, t)
        chunk.append(line)
        if len(chunk) >= 20000:
            data = "".join(chunk)
            f.write(data)
            n += len(data)
            chunk = []
    if chunk:
        f.write("".join(chunk))
PY
bytes=$(stat -c %s "$tmp/big.log")
cat "$tmp/big.log" >/dev/null # in the page cache, as a log being investigated usually is
# query NAME ARGS…: runs rekey audit --stats, adds a row with its MB/s
query() {
    local name=$1 line mbs n
    shift
    "$REKEY" audit --stats "$@" "$tmp/big.log" >"$tmp/q.out" 2>"$tmp/q.err" ||
        { cat "$tmp/q.err" >&2; fails=$((fails + 1)); }
    line=$(tail -1 "$tmp/q.err")
    mbs=$(echo "$line" | sed -n 's/.*(\([0-9]*\) MB\/s).*/\1/p')
    n=$(echo "$line" | sed -n 's/.*, \([0-9]*\) matching.*/\1/p')
    qrows+=("| \`rekey audit $*\` | ${mbs:-?} | ${n:-?} |")
    if [ -z "$qmin" ] || [ "${mbs:-0}" -lt "$qmin" ]; then qmin=${mbs:-0}; fi
}
query "path" --path secret/team7/app3
query "errors" --errors
query "actor" --actor token-deploy --op read --since 2026-01-05 --until 2026-01-06
query "all json" --json
t0=$(date +%s.%N)
"$REKEY" audit verify "$tmp/big.log" >/dev/null || { echo "bench/audit: verify failed" >&2; fails=$((fails + 1)); }
t1=$(date +%s.%N)
verify_mbs=$(awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN {printf "%.0f", b / 1e6 / (c - a)}')
fi

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, keep-alive, $PATHS paths, $(nproc) CPUs;" \
    "dev servers started alike ($servers; base = BASE_REKEY with its audit log on), measured in" \
    "turn for $ROUNDS rounds; load average at the end: $(bench_loadavg)"
echo
echo "| run | req/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "The audit log of that run: $audit_lines lines; rekey audit verify: $verify_server"
echo
echo "The ceiling: a 300-byte append + fdatasync loop beside the audit log, before each round:"
echo
echo "| round | median | p99 | fsyncs/s |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${fsync_rows[@]}"
echo
echo "Medians over the rounds (req/s):"
echo
for k in "GET kv, audit off" "GET kv, audit on" "GET kv, audit on (baseline)" \
    "POST kv (durable), audit on" "POST kv (durable), audit off" \
    "POST kv (durable), audit on (baseline)"; do
    [ -n "${RPS[$k]:-}" ] && echo "- $k: $(echo "${RPS[$k]}" | bench_median) (runs:${RPS[$k]})"
done
echo
if [ "$SIZE_MB" -gt 0 ]; then
    echo "Queries over a generated log of $((bytes / 1000000)) MB (in the page cache):"
    echo
    echo "| query | MB/s | lines matched |"
    echo "|---|---:|---:|"
    printf '%s\n' "${qrows[@]}"
    echo "| \`rekey audit verify\` (SHA-256 of every line) | $verify_mbs | |"
    echo
fi
awk -v on="$(echo "${RPS[GET kv, audit on]}" | bench_median)" \
    -v off="$(echo "${RPS[GET kv, audit off]}" | bench_median)" \
    -v w="$(echo "${RPS[POST kv (durable), audit on]}" | bench_median)" -v q="${qmin:-}" 'BEGIN {
    ratio = (off > 0) ? on / off : 0
    printf "GET kv audit on / off = %.2f (medians; target >= 0.70): %s\n", ratio, (ratio >= 0.7) ? "PASS" : "FAIL"
    printf "durable writes with audit = %.0f/s (median; target >= 5000/s): %s\n", w, (w >= 5000) ? "PASS" : "FAIL"
    if (q != "") printf "slowest query = %d MB/s (target >= 200 MB/s): %s\n", q, (q >= 200) ? "PASS" : "FAIL"
    exit (ratio >= 0.7 && w >= 5000 && (q == "" || q >= 200)) ? 0 : 1
}' || fails=$((fails + 1))
[ "$fails" -eq 0 ]
