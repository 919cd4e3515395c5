#!/bin/sh
# bench/transit.sh: transit signing over HTTP against OpenSSL's own figure, measured in the same
# run (`openssl speed -multi 2`, both cores). Targets: sign/s over HTTP for ed25519 >= 0.6 x the
# two-core openssl sign/s, and for rsa-4096 >= 0.9 x. Also measured (no target): verify/s for
# both, and JWT issue/s (ed25519, /v1/rekey/jwt).
# `rekey server -dev` on a free loopback port; wrk -t2 -c16, 5 s a run, the median of 3 runs.
# The server and wrk share the machine's two cores with openssl's figure measured alone, so the
# ratio includes the load generator's own CPU.
# Usage: bench/transit.sh [seconds per run, default 5]   (BUILD_DIR: a release build dir)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD_DIR=${BUILD_DIR:-build-bench-transit}
secs=${1:-5}
bench_build src/cli/rekey
rekey=$build/src/cli/rekey
bench_need wrk
bench_tmpdir /tmp/rekey-bench-transit-XXXXXX
dir=$bench_dir
cd "$dir"

# ---- OpenSSL alone, both cores ----
# "+F6:0:253:Ed25519:<sign/s>:<verify/s>" and "+F2:4:4096:<sign/s>:<verify/s>", summed over -multi
ossl() {
    openssl speed -seconds "$secs" -mr -multi 2 "$1" 2>/dev/null | grep '^+F' | tail -1
}
ed_line=$(ossl ed25519)
rsa_line=$(ossl rsa4096)
ossl_ed_sign=$(echo "$ed_line" | awk -F: '{printf "%.0f", $5}')
ossl_ed_verify=$(echo "$ed_line" | awk -F: '{printf "%.0f", $6}')
ossl_rsa_sign=$(echo "$rsa_line" | awk -F: '{printf "%.0f", $4}')
ossl_rsa_verify=$(echo "$rsa_line" | awk -F: '{printf "%.0f", $5}')

# ---- the server ----
port=$(bench_free_port)
token="bench-$$"
printf 'version: 1\nsecrets: []\n' >empty.yaml
REKEY_LOG=warn bench_dev_server "$rekey" "$port" "$dir/empty.yaml" "$token" "$dir/dev"
A="http://127.0.0.1:$port"
post() { curl -sf -H "X-Vault-Token: $token" -X POST --data-binary "$2" "$A$1"; }
post /v1/transit/keys/ed '{"type":"ed25519"}' >/dev/null
post /v1/transit/keys/rsa '{"type":"rsa-4096"}' >/dev/null
msg=$(printf 'a message of some thirty-two by' | base64 -w0)
sig_ed=$(post /v1/transit/sign/ed "{\"input\":\"$msg\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["signature"])')
sig_rsa=$(post /v1/transit/sign/rsa "{\"input\":\"$msg\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["signature"])')

# wrk_rate PATH BODY: requests/s, the median of 3 runs (non-2xx answers fail the bench).
wrk_rate() {
    cat >req.lua <<EOF
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["X-Vault-Token"] = "$token"
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RATE %.0f ERRORS %d\n", summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
    for _ in 1 2 3; do
        wrk -t2 -c16 -d"${secs}s" -s req.lua "$A$1" | grep '^RATE' >>rates.txt
    done
    if awk '$4 != 0 {bad=1} END {exit bad ? 0 : 1}' rates.txt; then
        echo "bench/transit.sh: errors answering $1:" >&2; cat rates.txt >&2; exit 1
    fi
    awk '{print $2}' rates.txt | bench_median
    rm -f rates.txt
}
http_ed_sign=$(wrk_rate /v1/transit/sign/ed "{\"input\":\"$msg\"}")
http_ed_verify=$(wrk_rate /v1/transit/verify/ed "{\"input\":\"$msg\",\"signature\":\"$sig_ed\"}")
http_rsa_sign=$(wrk_rate /v1/transit/sign/rsa "{\"input\":\"$msg\"}")
http_rsa_verify=$(wrk_rate /v1/transit/verify/rsa "{\"input\":\"$msg\",\"signature\":\"$sig_rsa\"}")
http_jwt=$(wrk_rate /v1/rekey/jwt/ed '{"claims":{"sub":"gateway","scope":"api"},"ttl":"15m"}')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "met" : "MISSED"}'; }
r_ed=$(ratio "$http_ed_sign" "$ossl_ed_sign")
r_rsa=$(ratio "$http_rsa_sign" "$ossl_rsa_sign")
cat <<EOF
| figure | over HTTP (median of 3) | openssl speed -multi 2 | ratio | target |
|---|---:|---:|---:|---|
| ed25519 sign/s | $http_ed_sign | $ossl_ed_sign | $r_ed | >= 0.6: $(verdict "$r_ed" 0.6) |
| ed25519 verify/s | $http_ed_verify | $ossl_ed_verify | $(ratio "$http_ed_verify" "$ossl_ed_verify") | — |
| rsa-4096 sign/s | $http_rsa_sign | $ossl_rsa_sign | $r_rsa | >= 0.9: $(verdict "$r_rsa" 0.9) |
| rsa-4096 verify/s | $http_rsa_verify | $ossl_rsa_verify | $(ratio "$http_rsa_verify" "$ossl_rsa_verify") | — |
| JWT issue/s (ed25519) | $http_jwt | — | — | — |
EOF
