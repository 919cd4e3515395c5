#!/bin/sh
# bench/pki.sh: certificates, in one run:
#   - the internal CA's issuance rate (bench_pki: pki_issue with an ecdsa-p256 leaf and CA: key
#     generation, the CA key read from the barrier, signing, PEM) against openssl in the same
#     run: `openssl speed ecdsap256` (signatures alone, the ceiling) and a loop of
#     `openssl req -newkey ec | openssl x509 -req -CA` (the same work as one issuance, with the
#     cost of starting the two processes);
#   - a full ACME renewal against pebble (scripts/services start pebble): `rekey rotate` of a
#     certificate with http-01, the account already registered (directory, nonce, order,
#     challenge, validation, CSR, finalize, download, the rotation's own steps).
# Medians of 3 runs (issuance) and 5 renewals. Single-threaded figures.
# Usage: bench/pki.sh [seconds per issuance run, default 2]   (BUILD_DIR: a release build dir)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-2}
bench_build src/cli/rekey bench/bench_pki
rekey=$build/src/cli/rekey
bench_need pebble
bench_tmpdir /tmp/rekey-bench-pki-XXXXXX
dir=$bench_dir
bench_on_exit() { "$top/scripts/services" stop pebble "$dir/pb" >/dev/null 2>&1; }

# ---- issuance ----
for i in 1 2 3; do
    "$build/bench/bench_pki" "$dir" "$secs" | sed 's/.* = \([0-9]*\) certificates.*/\1/'
done >"$dir/rekey.txt"
for i in 1 2 3; do
    openssl speed -seconds "$secs" ecdsap256 2>/dev/null |
        awk '/256 bits ecdsa \(nistp256\)/ { print int($(NF - 1)) }'
done >"$dir/speed.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
printf 'subjectAltName=DNS:bench.test,DNS:www.bench.test\n' >"$dir/ext"
tool_n=20
for i in 1 2 3; do
    start=$(date +%s.%N)
    n=0
    while [ "$n" -lt "$tool_n" ]; do
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.test \
            -keyout "$dir/leaf.key" 2>/dev/null |
            openssl x509 -req -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$n" -days 1 \
                -extfile "$dir/ext" -out "$dir/leaf.pem" 2>/dev/null
        n=$((n + 1))
    done
    echo "$tool_n / ($(date +%s.%N) - $start)" | bc -l | cut -d. -f1
done >"$dir/tool.txt"
r=$(bench_median <"$dir/rekey.txt")
s=$(bench_median <"$dir/speed.txt")
t=$(bench_median <"$dir/tool.txt")
echo "internal CA issuance, ecdsa-p256 (median of 3 x ${secs} s, 1 thread):"
printf '  rekey pki_issue:                    %8d certificates/s\n' "$r"
printf '  openssl req | openssl x509 -req:    %8d certificates/s  (rekey = %.1fx; %d pairs of processes)\n' "$t" \
    "$(echo "$r / $t" | bc -l)" "$tool_n"
printf '  openssl speed ecdsap256 (sign only):%8d signatures/s    (rekey = %.3fx)\n' "$s" \
    "$(echo "$r / $s" | bc -l)"

# ---- ACME renewal against pebble ----
port=$((20000 + $$ % 10000))
"$top/scripts/services" start pebble "$dir/pb" "$port" $((port + 10))
cd "$dir"
cat >rekey.yaml <<YAML
version: 1
store: { path: store.db }
secrets:
  - path: pki/bench
    kind: certificate
    common_name: bench.test
    alt_names: [bench.test, www.bench.test]
    issuer: acme
    acme_directory: $(cat pb/directory)
    acme_ca_file: pb/ca.pem
    acme_http01_listen: 127.0.0.1:$((port + 10))
    grace: 0s
YAML
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key" REKEY_LOG=warn
"$rekey" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
unset REKEY_STORE
start=$(date +%s.%N)
"$rekey" rotate pki/bench >/dev/null
first=$(echo "($(date +%s.%N) - $start) * 1000" | bc | cut -d. -f1)
for i in 1 2 3 4 5; do
    start=$(date +%s.%N)
    "$rekey" rotate pki/bench >/dev/null
    echo "($(date +%s.%N) - $start) * 1000" | bc | cut -d. -f1
done >acme.txt
echo "ACME renewal against pebble (http-01, 2 names, rekey rotate end to end):"
printf '  first issuance (account registered): %d ms\n' "$first"
printf '  renewal, median of 5:                %d ms (min %d, max %d)\n' "$(bench_median <acme.txt)" \
    "$(sort -n acme.txt | head -1)" "$(sort -n acme.txt | tail -1)"
