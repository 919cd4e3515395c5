#!/usr/bin/env bash
# A short soak of `rekey server -dev`: bench/soak.sh for 20 s (wrk, 80% reads / 20% durable
# writes, every non-2xx counted in wrk's Lua callbacks, RSS sampled every 2 s). Fails on any
# non-2xx answer, socket error, error in the server log, a non-zero exit on SIGTERM (which, in
# the ASan build, includes leaks), or RSS growth over 20 MiB between the first and last sample
# (200 MiB under ASan, whose quarantine holds freed memory).
. "$REKEY_TOP/tests/integration/lib.sh"
command -v wrk >/dev/null || fail "wrk is not installed (scripts/deps installs it)"
limit=20
# (Not `ldd | grep -q`: grep's early exit gives ldd a SIGPIPE, which pipefail makes a no.)
if grep -qa __asan_init "$REKEY"; then limit=200; fi
rc=0
REKEY="$REKEY" INTERVAL=2 CONNS=16 PATHS=300 MAX_RSS_GROWTH_MB=$limit \
    "$REKEY_TOP/bench/soak.sh" 20 >soak.out 2>&1 || rc=$?
cat soak.out
[ "$rc" -eq 0 ] || fail "soak failed"
echo "t-soak: ok"
