#!/usr/bin/env bash
# bench/soak.sh [SECONDS]: a long mixed load on `rekey server -dev` (loopback only): wrk with a Lua
# script mixing reads (GET /v1/secret/data/<path>, 80%) and durable writes (POST, 20%) over
# PATHS paths, every non-2xx answer counted in the script's response()/done() callbacks, and
# the server's VmRSS sampled every INTERVAL seconds. Passes when there is no non-2xx answer, no
# socket error, the server stops with exit 0 on SIGTERM, and (when MAX_RSS_GROWTH_MB is set)
# the last RSS sample is at most that much above the first one. Prints a Markdown table.
# Env: CONNS (32), THREADS (2), PATHS (1000), INTERVAL (10), MAX_RSS_GROWTH_MB (unset: report
# only), BUILD_DIR (build-bench, a release build made on first use), REKEY (use this binary).
# Default duration 600 s; tests/integration/t-soak.sh runs 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${1:-600}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
PATHS=${PATHS:-1000}
INTERVAL=${INTERVAL:-10}
PY=/usr/bin/python3
bench_need wrk
bench_rekey

bench_tmpdir "${TMPDIR:-/tmp}/rekey-soak.XXXXXX"
tmp=$bench_dir
wpid='' spid=''
# (the server is stopped by the script itself; wrk and the sampler only on an early exit)
bench_on_exit() { bench_stop "$wpid" "$spid"; }
bench_unset_client_env
export REKEY_LOG=${REKEY_LOG:-warn}

port=$(bench_free_port)
token="soak-$$-$RANDOM$RANDOM"
printf 'version: 1\nsecrets: []\n' >"$tmp/empty.yaml"
bench_dev_server "$REKEY" "$port" "$tmp/empty.yaml" "$token" "$tmp/dev"
pid=$bench_pid

printf '%s' "$token" >"$tmp/token"
chmod 600 "$tmp/token"
$PY - "$port" "$tmp/token" "$PATHS" <<'PY'
import http.client, json, sys
port, tok, n = int(sys.argv[1]), open(sys.argv[2]).read().strip(), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    c.request("POST", "/v1/secret/data/soak/p%d" % i,
              json.dumps({"data": {"api_key": "sk-soak-%06d" % i}}), {"X-Vault-Token": tok})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("populate: HTTP %d on soak/p%d" % (r.status, i))
PY

cat >"$tmp/mixed.lua" <<EOF
local token = "$token"
local n = $PATHS
EOF
cat >>"$tmp/mixed.lua" <<'EOF'
local threads = {}
local counter = 0
non2xx, reads, writes = 0, 0, 0
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end
function init(args)
    math.randomseed(os.time() * 100 + id)
end
request = function()
    counter = counter + 1
    local p = "/v1/secret/data/soak/p" .. math.random(0, n - 1)
    if math.random(1, 5) == 1 then
        writes = writes + 1
        local body = '{"data":{"api_key":"sk-soak-' .. id .. '-' .. counter .. '"}}'
        return wrk.format("POST", p, {["X-Vault-Token"] = token,
                                      ["Content-Type"] = "application/json"}, body)
    end
    reads = reads + 1
    return wrk.format("GET", p, {["X-Vault-Token"] = token})
end
response = function(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        if non2xx <= 3 then
            io.stderr:write("soak: HTTP " .. status .. ": " .. string.sub(body or "", 1, 200) .. "\n")
        end
    end
end
function done(summary, latency, requests)
    local bad, r, w = 0, 0, 0
    for _, t in ipairs(threads) do
        bad = bad + t:get("non2xx")
        r = r + t:get("reads")
        w = w + t:get("writes")
    end
    io.write(string.format("lua: non2xx %d reads %d writes %d\n", bad, r, w))
    io.write(string.format("lua: errors connect %d read %d write %d timeout %d status %d\n",
        summary.errors.connect, summary.errors.read, summary.errors.write,
        summary.errors.timeout, summary.errors.status))
end
EOF
chmod 600 "$tmp/mixed.lua"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0; }
wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$tmp/mixed.lua" "http://127.0.0.1:$port" \
    >"$tmp/wrk.out" 2>"$tmp/wrk.err" &
wpid=$!
# RSS samples: the first after 2 s of load (connections and caches warmed up), then every
# INTERVAL seconds until wrk ends.
(
    sleep 2
    while kill -0 "$wpid" 2>/dev/null; do
        echo "$(date +%s) $(rss_kb)"
        t=0
        while [ "$t" -lt "$INTERVAL" ] && kill -0 "$wpid" 2>/dev/null; do sleep 1; t=$((t + 1)); done
    done
) >"$tmp/rss" &
spid=$!
wrc=0
wait "$wpid" || wrc=$?
wpid=
wait "$spid" || true
spid=
echo "$(date +%s) $(rss_kb)" >>"$tmp/rss"
sleep 1
idle=$(rss_kb)
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
src=0
wait "$pid" || src=$?
pid=
bench_pids= # reaped: nothing for the exit trap to stop

bench_wrk_parse "$tmp/wrk.out"
rps=$wrk_rps p50=$wrk_p50 p99=$wrk_p99 sock=$wrk_sock
read -r _ _ non2xx _ reads _ writes < <(grep "^lua: non2xx" "$tmp/wrk.out" || echo "lua: non2xx ? reads ? writes ?")
errs=$(sed -n 's/^lua: errors //p' "$tmp/wrk.out")
read -r first last max n < <(awk '{ if (NR == 1) f = $2; l = $2; if ($2 > m) m = $2 }
    END { printf "%.1f %.1f %.1f %d\n", f / 1024, l / 1024, m / 1024, NR }' "$tmp/rss")
growth=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.1f", b - a }')

echo "soak: ${SECS}s, wrk -t$THREADS -c$CONNS, 80% GET / 20% durable POST over $PATHS paths," \
    "$(nproc) CPUs; RSS sampled every ${INTERVAL}s ($n samples)"
echo
echo "| req/s | reads | writes | p50 | p99 | non-2xx | socket errors | RSS first | RSS last | RSS max | growth | RSS idle / HWM | exit on SIGTERM |"
echo "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
echo "| ${rps:-?} | $reads | $writes | ${p50:-?} | ${p99:-?} | $non2xx | ${sock:-none} | $first | $last | $max | $growth | $(awk -v i="$idle" -v h="$hwm" 'BEGIN { printf "%.1f / %.1f", i / 1024, h / 1024 }') | $src |"
echo
status=0
[ "$wrc" -eq 0 ] || { echo "soak: FAIL: wrk exited $wrc"; cat "$tmp/wrk.err"; status=1; }
[ "$non2xx" = 0 ] || { echo "soak: FAIL: $non2xx non-2xx answers"; head -5 "$tmp/wrk.err"; status=1; }
[ -z "$sock" ] || { echo "soak: FAIL: socket errors: $sock ($errs)"; status=1; }
[ "$src" -eq 0 ] || { echo "soak: FAIL: the server exited $src on SIGTERM"; tail -20 "$tmp/dev/server.log"; status=1; }
if [ -n "${MAX_RSS_GROWTH_MB:-}" ]; then
    if awk -v g="$growth" -v m="$MAX_RSS_GROWTH_MB" 'BEGIN { exit !(g > m) }'; then
        echo "soak: FAIL: RSS grew by $growth MiB (limit $MAX_RSS_GROWTH_MB MiB)"
        status=1
    fi
fi
if grep -qiE ' (error|crit)' "$tmp/dev/server.log"; then
    echo "soak: server log errors:"
    grep -iE ' (error|crit)' "$tmp/dev/server.log" | head -5
    status=1
fi
[ "$status" -eq 0 ] && echo "soak: PASS"
exit "$status"
