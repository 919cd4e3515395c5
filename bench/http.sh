#!/usr/bin/env bash
# bench/http.sh: `rekey server` under wrk against the bare libmicrohttpd ceiling, in one run.
#   1. bench/mhd-baseline.c (built with cc + pkg-config, as bench/http-baseline.sh does): a fixed
#      JSON answer, plain HTTP;
#   2. rekey's GET /v1/secret/data/<path> (dev server, X-Vault-Token, spread over PATHS paths
#      written before): requests/s, p50/p99, and the ratio rekey / baseline (target >= 50%);
#   3. durable writes: POST /v1/secret/data/<path> over the same paths (target >= 5,000/s);
#   4. the same read benchmark over TLS (a self-signed P-256 certificate from openssl req, a
#      non-dev server with a key file and server.tls_cert/tls_key); the baseline has no TLS;
#   5. two rows that show where a read's time goes: GET /v1/sys/health (HTTP core, no token)
#      and GET /v1/auth/token/lookup-self (the token check alone);
#   6. the server's VmRSS / VmHWM (from /proc) under load and after.
# wrk -t2 -c64 -d10s --latency, keep-alive, loopback only. Prints a Markdown table; exits 1 if a
# target is missed or a run had errors.
# Env: DURATION (10s), CONNS (64), THREADS (2), PATHS (1000), BUILD_DIR (build-bench, a release
# build made on first use), REKEY (use this binary instead of building).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PATHS=${PATHS:-1000}
CC=${CC:-cc}
bench_need wrk openssl
bench_rekey

bench_tmpdir /tmp/rekey-bench-http.XXXXXX
tmp=$bench_dir
bench_unset_client_env
export REKEY_LOG=warn

rss() { # PID: "VmRSS VmHWM" in MiB
    awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {printf "%.1f %.1f", r / 1024, h / 1024}' \
        "/proc/$1/status"
}

# ---- the baseline ----
# shellcheck disable=SC2046
$CC -std=c17 -O2 -D_GNU_SOURCE -o "$tmp/mhd-baseline" bench/mhd-baseline.c \
    $(pkg-config --cflags --libs libmicrohttpd)
"$tmp/mhd-baseline" 0 >"$tmp/baseline.port" 2>"$tmp/baseline.log" &
bench_track $!
for _ in $(seq 1 100); do [ -s "$tmp/baseline.port" ] && break; sleep 0.05; done
base_port=$(head -n1 "$tmp/baseline.port")

# ---- a dev server, and a TLS server on a store with a key file ----
token="bench-$$-$RANDOM$RANDOM"
printf 'version: 1\nsecrets: []\n' >"$tmp/empty.yaml"
dev_port=$(bench_free_port)
bench_dev_server "$REKEY" "$dev_port" "$tmp/empty.yaml" "$token" "$tmp/dev"
dev_pid=$bench_pid

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=rekey-bench" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.pem" 2>/dev/null
chmod 600 "$tmp/tls.key"
tls_token=$(bench_operator_init "$REKEY" "sqlite:$tmp/tls.db" "$tmp/root.key")
tls_port=$(bench_free_port)
cat >"$tmp/tls.yaml" <<EOF
version: 1
store:
  path: $tmp/tls.db
  key_file: $tmp/root.key
server:
  listen: "127.0.0.1:$tls_port"
  tls_cert: $tmp/tls.pem
  tls_key: $tmp/tls.key
secrets: []
EOF
"$REKEY" server -config "$tmp/tls.yaml" >"$tmp/tls.banner" 2>"$tmp/tls.log" &
tls_pid=$!
bench_track "$tls_pid"
bench_wait_up "$tls_pid" "$tmp/tls.log" "https://127.0.0.1:$tls_port/v1/sys/health" --cacert "$tmp/tls.pem"

(umask 077 && printf '%s' "$token" >"$tmp/dev.token" && printf '%s' "$tls_token" >"$tmp/tls.token")
bench_populate "http://127.0.0.1:$dev_port" "$tmp/dev.token" "$PATHS"
bench_populate "https://127.0.0.1:$tls_port" "$tmp/tls.token" "$PATHS" "$tmp/tls.pem"

# Lua scripts for wrk (the token is written into them, mode 0600, not passed in argv or env).
bench_lua_kv "$tmp/read.lua" read "$token" "$PATHS" 0
bench_lua_kv "$tmp/read-tls.lua" read "$tls_token" "$PATHS" 1
bench_lua_kv "$tmp/lookup.lua" lookup "$token" "$PATHS" 0
bench_lua_kv "$tmp/write.lua" write "$token" "$PATHS" 2

# measure NAME PID URL [SCRIPT]: runs wrk (sampling the server's RSS halfway), adds a row.
rows=()
fails=0
declare -A RPS
measure() {
    local name=$1 pid=$2 url=$3 script=${4:-} out args
    out="$tmp/$(printf '%s' "$1" | tr -c 'A-Za-z0-9' '_').wrk"
    args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" --latency)
    [ -n "$script" ] && args+=(-s "$script")
    wrk "${args[@]}" "$url" >"$out" 2>&1 &
    local wpid=$! secs=${DURATION%s}
    sleep "$(awk -v s="$secs" 'BEGIN {print s / 2}')"
    local load_rss=-
    [ "$pid" != "-" ] && load_rss=$(rss "$pid")
    wait "$wpid" || { cat "$out" >&2; echo "bench/http: wrk failed for $name" >&2; fails=$((fails + 1)); }
    local rps p50 p99 non2xx sock
    bench_wrk_parse "$out"
    rps=$wrk_rps p50=$wrk_p50 p99=$wrk_p99 non2xx=${wrk_non2xx:-0} sock=$wrk_sock
    RPS[$name]=${rps:-0}
    local after_rss=-
    [ "$pid" != "-" ] && after_rss=$(rss "$pid")
    rows+=("| $name | ${rps:-?} | ${p50:-?} | ${p99:-?} | $non2xx${sock:+ (socket: $sock)} | ${load_rss% *} | ${after_rss% *} / ${after_rss#* } |")
    if [ "$non2xx" != 0 ]; then
        echo "bench/http: $name had $non2xx non-2xx answers" >&2
        fails=$((fails + 1))
    fi
}

measure "baseline GET (mhd)" - "http://127.0.0.1:$base_port/v1/sys/health"
measure "rekey GET kv" "$dev_pid" "http://127.0.0.1:$dev_port" "$tmp/read.lua"
# Where the time goes: the HTTP core and app alone, then the token check alone.
measure "rekey GET sys/health (no token)" "$dev_pid" "http://127.0.0.1:$dev_port/v1/sys/health"
measure "rekey GET lookup-self (token only)" "$dev_pid" "http://127.0.0.1:$dev_port" "$tmp/lookup.lua"
measure "rekey POST kv (durable)" "$dev_pid" "http://127.0.0.1:$dev_port" "$tmp/write.lua"
measure "rekey GET kv, TLS" "$tls_pid" "https://127.0.0.1:$tls_port" "$tmp/read-tls.lua"
sleep 1
idle_rss=$(rss "$dev_pid")
idle_tls=$(rss "$tls_pid")

echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, keep-alive, $PATHS paths, $(nproc) CPUs;" \
    "RSS in MiB (VmRSS halfway through the run; VmRSS / VmHWM after it)"
echo
echo "| run | req/s | p50 | p99 | non-2xx | RSS under load | RSS / HWM after |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo "| baseline GET over TLS (mhd) | n/a: bench/mhd-baseline.c has no TLS | | | | | |"
echo
echo "RSS 1 s after the last run: dev server ${idle_rss% *} MiB (HWM ${idle_rss#* }), TLS server" \
    "${idle_tls% *} MiB (HWM ${idle_tls#* })"
awk -v r="${RPS[rekey GET kv]}" -v b="${RPS[baseline GET (mhd)]}" -v w="${RPS[rekey POST kv (durable)]}" \
    -v t="${RPS[rekey GET kv, TLS]}" 'BEGIN {
    ratio = (b > 0) ? 100 * r / b : 0
    printf "rekey GET / baseline = %.1f%% (target >= 50%%): %s\n", ratio, (ratio >= 50) ? "PASS" : "FAIL"
    printf "durable writes = %.0f/s (target >= 5000/s): %s\n", w, (w >= 5000) ? "PASS" : "FAIL"
    printf "TLS GET / plain GET = %.1f%%\n", (r > 0) ? 100 * t / r : 0
    exit (ratio >= 50 && w >= 5000) ? 0 : 1
}' || fails=$((fails + 1))
[ "$fails" -eq 0 ]
