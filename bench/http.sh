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
top=$PWD
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PATHS=${PATHS:-1000}
CC=${CC:-cc}
PY=/usr/bin/python3
command -v wrk >/dev/null || { echo "bench/http: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "bench/http: openssl is not installed" >&2; exit 1; }

if [ -z "${REKEY:-}" ]; then
    build=${BUILD_DIR:-build-bench}
    if [ ! -f "$build/build.ninja" ]; then
        # werror off: GCC's -O3 maybe-uninitialized false positives must not stop a benchmark.
        meson setup "$build" -Dbuildtype=release -Dtests=false -Dtest_switches=false -Dwerror=false >/dev/null
    fi
    ninja -C "$build" src/cli/rekey >/dev/null
    REKEY=$top/$build/src/cli/rekey
fi

tmp=$(mktemp -d /tmp/rekey-bench-http.XXXXXX)
chmod 700 "$tmp"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
unset REKEY_ADDR REKEY_TOKEN VAULT_ADDR VAULT_TOKEN REKEY_CONFIG REKEY_STORE REKEY_KEY_FILE
export REKEY_LOG=warn

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_up URL [CURL ARGS…]: polls until the server answers (10 s at most).
wait_up() {
    local url=$1
    shift
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "$@" "$url" && return 0
        sleep 0.05
    done
    echo "bench/http: the server at $url did not start" >&2
    cat "$tmp"/*.log >&2 2>/dev/null || true
    exit 1
}
rss() { # PID: "VmRSS VmHWM" in MiB
    awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {printf "%.1f %.1f", r / 1024, h / 1024}' \
        "/proc/$1/status"
}

# ---- the baseline ----
# shellcheck disable=SC2046
$CC -std=c17 -O2 -D_GNU_SOURCE -o "$tmp/mhd-baseline" bench/mhd-baseline.c \
    $(pkg-config --cflags --libs libmicrohttpd)
"$tmp/mhd-baseline" 0 >"$tmp/baseline.port" 2>"$tmp/baseline.log" &
pids="$pids $!"
for _ in $(seq 1 100); do [ -s "$tmp/baseline.port" ] && break; sleep 0.05; done
base_port=$(head -n1 "$tmp/baseline.port")

# ---- a dev server, and a TLS server on a store with a key file ----
token="bench-$$-$RANDOM$RANDOM"
printf 'version: 1\nsecrets: []\n' >"$tmp/empty.yaml"
dev_port=$(free_port)
(cd "$tmp" && TMPDIR="$tmp" REKEY_DEV_ROOT_TOKEN_ID=$token exec "$REKEY" server -dev -dev-listen-address "127.0.0.1:$dev_port" \
    -config "$tmp/empty.yaml" >"$tmp/dev.banner" 2>"$tmp/dev.log") &
dev_pid=$!
pids="$pids $dev_pid"
wait_up "http://127.0.0.1:$dev_port/v1/sys/health"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=rekey-bench" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.pem" 2>/dev/null
chmod 600 "$tmp/tls.key"
REKEY_STORE="sqlite:$tmp/tls.db" "$REKEY" operator init -key-file="$tmp/root.key" >"$tmp/init.out" 2>&1
tls_token=$(sed -n 's/^Initial Root Token: //p' "$tmp/init.out")
rm -f "$tmp/init.out"
tls_port=$(free_port)
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
pids="$pids $tls_pid"
wait_up "https://127.0.0.1:$tls_port/v1/sys/health" --cacert "$tmp/tls.pem"

# populate URL TOKEN_FILE: writes PATHS paths bench/p0… over one keep-alive connection.
populate() {
    $PY - "$1" "$2" "$PATHS" "$tmp/tls.pem" <<'PY'
import http.client, json, ssl, sys, urllib.parse
url, tokfile, n, ca = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
tok = open(tokfile).read().strip()
if url.scheme == "https":
    c = http.client.HTTPSConnection(url.hostname, url.port, context=ssl.create_default_context(cafile=ca))
else:
    c = http.client.HTTPConnection(url.hostname, url.port)
for i in range(n):
    body = json.dumps({"data": {"api_key": "sk-bench-%06d-%s" % (i, "x" * 40), "port": i}})
    c.request("POST", "/v1/secret/data/bench/p%d" % i, body, {"X-Vault-Token": tok})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("populate: HTTP %d on bench/p%d" % (r.status, i))
PY
}
printf '%s' "$token" >"$tmp/dev.token"
printf '%s' "$tls_token" >"$tmp/tls.token"
populate "http://127.0.0.1:$dev_port" "$tmp/dev.token"
populate "https://127.0.0.1:$tls_port" "$tmp/tls.token"

# Lua scripts for wrk (the token is written into them, mode 0600, not passed in argv or env).
lua_common() { # TOKEN
    cat <<EOF
local token = "$1"
local n = $PATHS
local errors = 0
function done(summary, latency, requests)
    io.write(string.format("lua: non2xx %d\\n", summary.errors.status))
end
EOF
}
{ lua_common "$token"; cat <<'EOF'
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/v1/secret/data/bench/p" .. math.random(0, n - 1),
                      {["X-Vault-Token"] = token})
end
EOF
} >"$tmp/read.lua"
{ lua_common "$tls_token"; cat <<'EOF'
math.randomseed(os.time() + 1)
request = function()
    return wrk.format("GET", "/v1/secret/data/bench/p" .. math.random(0, n - 1),
                      {["X-Vault-Token"] = token})
end
EOF
} >"$tmp/read-tls.lua"
{ lua_common "$token"; cat <<'EOF'
request = function()
    return wrk.format("GET", "/v1/auth/token/lookup-self", {["X-Vault-Token"] = token})
end
EOF
} >"$tmp/lookup.lua"
{ lua_common "$token"; cat <<'EOF'
local seq = 0
math.randomseed(os.time() + 2)
request = function()
    seq = seq + 1
    local body = '{"data":{"api_key":"sk-bench-w' .. seq .. '-' .. math.random(1, 1000000000) ..
                 '","port":' .. seq .. '}}'
    return wrk.format("POST", "/v1/secret/data/bench/p" .. math.random(0, n - 1),
                      {["X-Vault-Token"] = token, ["Content-Type"] = "application/json"}, body)
end
EOF
} >"$tmp/write.lua"
chmod 600 "$tmp"/*.lua "$tmp"/*.token

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
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    non2xx=$(awk '/^lua: non2xx/ {print $3} /Non-2xx or 3xx responses:/ {print $NF}' "$out" | tail -1)
    sock=$(awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); print}' "$out")
    non2xx=${non2xx:-0}
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
