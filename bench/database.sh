#!/usr/bin/env bash
# bench/database.sh: the database engine and the lease manager, in one run (issue 15).
#   1. logins issued per second over HTTP: GET /v1/database/creds/bench on a `rekey server`
#      (sqlite store, durable: each issue writes the lease's intent and its confirmation) under
#      wrk (CONNS connections, DURATION), against the baseline in the same run: raw libpq
#      CREATE ROLE with a client-side SCRAM verifier on the same PostgreSQL 15
#      (bench/bench_pgcreate.c, THREADS connections: rekey's pool holds 4); req/s and p99 of each,
#      and the ratio (target >= 0.9);
#   2. the lease manager at LEASES leases (default 1,000,000) with a no-op plug-in
#      (bench/bench_leases.c) per store backend (sqlite, log): memory per lease (target <= 300
#      bytes), restore after a restart (target < 3 s), expiry throughput, revoke-prefix time and
#      the longest lease lookup meanwhile.
# Prints Markdown tables. Env: DURATION (10s), CONNS (4), THREADS (4), LEASES (1000000),
# BUILD_DIR (build-bench: a release build made on first use), SKIP_HTTP=1 / SKIP_LEASES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
CONNS=${CONNS:-4}
THREADS=${THREADS:-4}
LEASES=${LEASES:-1000000}
PY=/usr/bin/python3
PGBIN=/usr/lib/postgresql/15/bin
bench_build src/cli/rekey bench/bench_pgcreate bench/bench_leases
REKEY=$build/src/cli/rekey

bench_tmpdir /tmp/rekey-bench-db.XXXXXX
tmp=$bench_dir
bench_on_exit() { "$top/scripts/services" stop postgres "$tmp/pg" >/dev/null 2>&1; }
echo "machine: $(nproc) cores, $(uname -sr), load $(bench_loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"

if [ "${SKIP_HTTP:-0}" != 1 ]; then
    bench_need wrk
    [ -x $PGBIN/postgres ] || { echo "bench/database: PostgreSQL 15 is not installed" >&2; exit 1; }
    pgport=$(bench_free_port)
    export PG_ADMIN_PASSWORD_FILE=$tmp/admin.secret
    (cd "$tmp" && "$top/scripts/services" start postgres pg "$pgport" >/dev/null)
    (umask 077 && printf '127.0.0.1:%s:*:rekey_admin:%s\n' "$pgport" "$(cat "$tmp/admin.secret")" >"$tmp/pgpass")
    port=$(bench_free_port)
    cat >"$tmp/rekey.yaml" <<EOF
version: 1
store: { backend: sqlite, path: $tmp/rk.db }
server:
  listen: "127.0.0.1:$port"
EOF
    token=$(bench_operator_init "$REKEY" "sqlite:$tmp/rk.db" "$tmp/root.key")
    REKEY_KEY_FILE=$tmp/root.key REKEY_LOG=warn "$REKEY" server -config "$tmp/rekey.yaml" >"$tmp/server.log" 2>&1 &
    bench_track $!
    bench_wait_up $! "$tmp/server.log" "http://127.0.0.1:$port/v1/sys/health"
    printf 'X-Vault-Token: %s\n' "$token" >"$tmp/hdr"
    $PY - "$pgport" "$tmp/admin.secret" >"$tmp/config.json" <<'EOF'
import json, sys
print(json.dumps({"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:%s/postgres" % sys.argv[1],
  "username": "rekey_admin", "password": open(sys.argv[2]).read().strip(), "allowed_roles": ["bench"]}))
EOF
    curl -sf -X PUT -H @"$tmp/hdr" --data-binary @"$tmp/config.json" "http://127.0.0.1:$port/v1/database/config/pg" >/dev/null
    rm -f "$tmp/config.json"
    curl -sf -X PUT -H @"$tmp/hdr" --data-binary '{"db_name":"pg","default_ttl":"1h","max_ttl":"24h"}' \
        "http://127.0.0.1:$port/v1/database/roles/bench" >/dev/null
    (umask 077 && cat >"$tmp/creds.lua" <<EOF
wrk.method = "GET"
wrk.headers["X-Vault-Token"] = "$token"
done = function(summary, latency, requests)
    io.write(string.format("lua: non2xx %d\n", summary.errors.status))
end
EOF
    )
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$tmp/creds.lua" "http://127.0.0.1:$port/v1/database/creds/bench" >"$tmp/wrk.out" 2>&1
    bench_wrk_parse "$tmp/wrk.out"
    rps=$wrk_rps p50=$wrk_p50 p99=$wrk_p99 non2xx=$wrk_non2xx
    secs=${DURATION%s}
    read -r raw_rps raw_p50 raw_p99 < <(PGPASSFILE=$tmp/pgpass "$build/bench/bench_pgcreate" \
        "host=127.0.0.1 port=$pgport dbname=postgres user=rekey_admin" "$THREADS" "$secs")
    echo
    echo "| logins issued | per second | p50 | p99 | errors |"
    echo "|---|---|---|---|---|"
    echo "| rekey GET database/creds (HTTP, $CONNS conns) | $rps | $p50 | $p99 | ${non2xx:-?} |"
    echo "| raw libpq CREATE ROLE + client SCRAM ($THREADS conns) | $raw_rps | ${raw_p50}ms | ${raw_p99}ms | 0 |"
    $PY -c "import sys; print('ratio rekey / raw: %.2f (target >= 0.9)' % (float(sys.argv[1]) / float(sys.argv[2])))" "$rps" "$raw_rps"
fi

if [ "${SKIP_LEASES:-0}" != 1 ]; then
    echo
    echo "| store | leases | memory / lease (B) | restore (s) | expiry (leases/s) | revoke-prefix (s) | worst lookup meanwhile (ms) |"
    echo "|---|---|---|---|---|---|---|"
    "$build/bench/bench_leases" "sqlite:$tmp/leases.db" "$LEASES" 2>/dev/null
    "$build/bench/bench_leases" "log:$tmp/leases.log" "$LEASES" 2>/dev/null
fi
