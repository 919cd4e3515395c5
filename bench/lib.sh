# bench/lib.sh: the setup the benchmark scripts share. Sourced (POSIX sh, also by the bash
# scripts) after `cd "$(dirname "$0")/.."`, i.e. from the top of the checkout:
#   . bench/lib.sh
# Sets top (the checkout). Functions are prefixed bench_; they print errors as "bench/NAME: …"
# where NAME is the sourcing script's name.
# shellcheck shell=sh

top=$PWD
bench_name=$(basename "$0" .sh)
bench_dir=
bench_pids=

# bench_build TARGET…: makes (first use) and builds the release build dir BUILD_DIR (default
# build-bench, relative to the checkout), sets build to its absolute path.
bench_build() {
    build=${BUILD_DIR:-build-bench}
    case $build in /*) ;; *) build=$top/$build ;; esac
    if [ ! -f "$build/build.ninja" ]; then
        # werror off: GCC's -O3 maybe-uninitialized false positives must not stop a benchmark.
        meson setup "$build" "$top" -Dbuildtype=release -Dtests=false -Dtest_switches=false \
            -Dwerror=false >/dev/null
    fi
    bench_log=$(mktemp "${TMPDIR:-/tmp}/rekey-bench-build.XXXXXX")
    if ! ninja -C "$build" "$@" >"$bench_log" 2>&1; then
        tail -20 "$bench_log" >&2
        rm -f "$bench_log"
        echo "bench/$bench_name: the build failed" >&2
        exit 1
    fi
    rm -f "$bench_log"
}

# bench_rekey: sets REKEY to the rekey binary: $REKEY when set, else the one of bench_build.
bench_rekey() {
    if [ -z "${REKEY:-}" ]; then
        bench_build src/cli/rekey
        REKEY=$build/src/cli/rekey
    fi
}

# bench_need PROGRAM…: exits 1 naming the first PROGRAM that is not installed.
bench_need() {
    for bench_p in "$@"; do
        command -v "$bench_p" >/dev/null ||
            { echo "bench/$bench_name: $bench_p is not installed (scripts/deps)" >&2; exit 1; }
    done
}

# bench_tmpdir TEMPLATE: makes the mode 0700 scratch directory mktemp -d TEMPLATE, sets
# bench_dir to it and arms bench_cleanup on exit.
bench_tmpdir() {
    bench_dir=$(mktemp -d "$1")
    chmod 700 "$bench_dir"
    trap bench_cleanup EXIT INT TERM
}

# bench_track PID…: has bench_cleanup stop PID on exit.
bench_track() {
    bench_pids="$bench_pids $*"
}

# bench_stop PID…: stops each PID (SIGTERM, or the signal named in bench_sig) and reaps it.
bench_stop() {
    for bench_p in "$@"; do
        [ -n "$bench_p" ] || continue
        kill -"${bench_sig:-TERM}" "$bench_p" 2>/dev/null || true
        wait "$bench_p" 2>/dev/null || true
    done
}

# bench_cleanup: the exit trap: stops the tracked processes, runs the script's bench_on_exit
# when it defines one, removes bench_dir.
bench_cleanup() {
    # shellcheck disable=SC2086 # a list of pids
    bench_stop $bench_pids
    if command -v bench_on_exit >/dev/null 2>&1; then bench_on_exit || true; fi
    [ -z "$bench_dir" ] || rm -rf "$bench_dir"
}

# bench_unset_client_env: unsets the variables that would point a rekey command elsewhere.
bench_unset_client_env() {
    unset REKEY_ADDR REKEY_TOKEN VAULT_ADDR VAULT_TOKEN REKEY_CONFIG REKEY_STORE REKEY_KEY_FILE
}

# bench_free_port: prints a free TCP port on 127.0.0.1.
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_up PID LOG URL [CURL ARGS…]: waits (20 s at most) until URL answers; exits 1 with
# LOG ("-": none) on stderr if it does not or the server PID ("-": not watched) has exited.
bench_wait_up() {
    bench_w_pid=$1 bench_w_log=$2 bench_w_url=$3
    shift 3
    bench_i=0
    while [ "$bench_i" -lt 400 ]; do
        curl -s -o /dev/null "$@" "$bench_w_url" && return 0
        [ "$bench_w_pid" = - ] || kill -0 "$bench_w_pid" 2>/dev/null || break
        sleep 0.05
        bench_i=$((bench_i + 1))
    done
    [ "$bench_w_log" = - ] || cat "$bench_w_log" >&2 2>/dev/null || true
    echo "bench/$bench_name: the server at $bench_w_url did not start" >&2
    exit 1
}

# bench_dev_server BIN PORT CONFIG TOKEN DIR: starts `BIN server -dev` on 127.0.0.1:PORT in DIR
# (also its TMPDIR), root token TOKEN (through the environment, not argv), banner in DIR/banner,
# log in DIR/server.log; waits until it answers; sets bench_pid (tracked).
bench_dev_server() {
    mkdir -p "$5"
    (cd "$5" && TMPDIR="$5" REKEY_DEV_ROOT_TOKEN_ID=$4 exec "$1" server -dev \
        -dev-listen-address "127.0.0.1:$2" -config "$3" >"$5/banner" 2>"$5/server.log") &
    bench_pid=$!
    bench_track "$bench_pid"
    bench_wait_up "$bench_pid" "$5/server.log" "http://127.0.0.1:$2/v1/sys/health"
}

# bench_operator_init BIN STORE KEY_FILE: `BIN operator init` of STORE; prints the root token.
bench_operator_init() {
    REKEY_STORE=$2 "$1" operator init -key-file="$3" >"$bench_dir/init.out" 2>&1 ||
        { cat "$bench_dir/init.out" >&2; rm -f "$bench_dir/init.out"; exit 1; }
    sed -n 's/^Initial Root Token: //p' "$bench_dir/init.out"
    rm -f "$bench_dir/init.out"
}

# bench_populate URL TOKEN_FILE N [CA_FILE]: writes KV paths bench/p0 … bench/pN-1 over one
# keep-alive connection (https with CA_FILE).
bench_populate() {
    python3 - "$1" "$2" "$3" "${4:-}" <<'PY'
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

# bench_lua_kv FILE read|write|lookup TOKEN N SEED: writes (mode 0600) a wrk script: GETs or
# durable POSTs of random KV paths bench/p0 … bench/pN-1, or GET lookup-self; it prints
# "lua: non2xx COUNT" at the end. The token is in the file, not in argv or the environment.
bench_lua_kv() {
    (
        umask 077
        exec >"$1"
        cat <<EOF
local token = "$3"
local n = $4
function done(summary, latency, requests)
    io.write(string.format("lua: non2xx %d\\n", summary.errors.status))
end
math.randomseed(os.time() + $5)
EOF
        case $2 in
        read) cat <<'EOF' ;;
request = function()
    return wrk.format("GET", "/v1/secret/data/bench/p" .. math.random(0, n - 1),
                      {["X-Vault-Token"] = token})
end
EOF
        write) cat <<'EOF' ;;
local seq = 0
request = function()
    seq = seq + 1
    local body = '{"data":{"api_key":"sk-bench-w' .. seq .. '-' .. math.random(1, 1000000000) ..
                 '","port":' .. seq .. '}}'
    return wrk.format("POST", "/v1/secret/data/bench/p" .. math.random(0, n - 1),
                      {["X-Vault-Token"] = token, ["Content-Type"] = "application/json"}, body)
end
EOF
        lookup) cat <<'EOF' ;;
request = function()
    return wrk.format("GET", "/v1/auth/token/lookup-self", {["X-Vault-Token"] = token})
end
EOF
        esac
    )
    chmod 600 "$1"
}

# bench_wrk_parse FILE: from wrk --latency output FILE sets wrk_rps, wrk_p50, wrk_p99, wrk_non2xx
# (the script's "lua: non2xx" line, else wrk's Non-2xx line; empty if neither) and wrk_sock
# (wrk's socket errors, empty if none).
# shellcheck disable=SC2034 # read by the sourcing scripts
bench_wrk_parse() {
    wrk_rps=$(awk '/^Requests\/sec:/ {print $2}' "$1")
    wrk_p50=$(awk '$1 == "50%" {print $2}' "$1")
    wrk_p99=$(awk '$1 == "99%" {print $2}' "$1")
    wrk_non2xx=$(awk '/^lua: non2xx/ {print $3} /Non-2xx or 3xx responses:/ {print $NF}' "$1" | tail -1)
    wrk_sock=$(awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); print}' "$1")
}

# bench_median: prints the median of the numbers on stdin (blank-separated or one a line; the
# mean of the middle two for an even count; 0 for none).
bench_median() {
    tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_loadavg: prints the 1, 5 and 15 minute load averages.
bench_loadavg() {
    cut -d' ' -f1-3 /proc/loadavg
}

# bench_store_dir_line DIR: prints "store directory: DIR (FSTYPE on DEVICE)" (fsync cost
# depends on the file system).
bench_store_dir_line() {
    echo "store directory: $1 ($(df -T "$1" | awk 'NR == 2 { print $2 " on " $1 }'))"
}

# bench_inventory N [SERVER LINES]: prints a rekey.yaml (store store.db) of N generated secrets
# secret/bench/gGGG/sNNNNNN (every 30d, auto), the paths bench_kv --populate writes; SERVER
# LINES (a server: block) go before the secrets.
bench_inventory() {
    echo "version: 1"
    echo "store:"
    echo "  path: store.db"
    [ -z "${2:-}" ] || printf '%s\n' "$2"
    echo "secrets:"
    bench_i=0
    while [ "$bench_i" -lt "$1" ]; do
        printf '  - path: secret/bench/g%03d/s%06d\n    kind: generated\n    format: "tok-{hex:32}"\n    field: api_key\n    every: 30d\n    auto: true\n' \
            $((bench_i / 1000)) "$bench_i"
        bench_i=$((bench_i + 1))
    done
}

# bench_hook_inventory N PREFIX [EXTRA]: prints a rekey.yaml (store store.db, a no-op exec hook
# "noop") of N generated secrets PREFIX000001 … (every 30d, auto), EXTRA added to each entry.
bench_hook_inventory() {
    echo "version: 1"
    echo "store: { path: store.db }"
    echo "hooks:"
    echo "  noop: { type: exec, command: [/bin/true] }"
    echo "secrets:"
    for bench_i in $(seq 1 "$1"); do
        printf '  - { path: %s%06d, kind: generated, every: 30d, auto: true, field: key, format: "{hex:32}"%s }\n' \
            "$2" "$bench_i" "${3:-}"
    done
}
