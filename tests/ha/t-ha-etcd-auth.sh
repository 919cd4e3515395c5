#!/usr/bin/env bash
# etcd with user/password auth and TLS: the store is initialised, written and read, and a server
# leads, as user root with the password from REKEY_ETCD_PASSWORD_FILE, over https with
# REKEY_ETCD_CA_FILE; a missing or wrong password and a missing CA fail clearly; the password
# appears in no output or log. Servers on https: a standby forwards the lease routes to the leader
# after verifying its certificate (REKEY_CACERT); one without the CA answers 503, sends nothing.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/ha/lib-ha.sh"

# A CA and a certificate for 127.0.0.1 (P-256: quick).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
  -keyout ca.key -out ca.pem >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout etcd.key -out etcd.csr >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
openssl x509 -req -in etcd.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
  -out etcd.pem >/dev/null 2>&1
P=$(free_port); PP=$(free_port)
E="https://127.0.0.1:$P"
setsid etcd --name solo --data-dir "$dir/etcd-data" --listen-client-urls "$E" \
  --advertise-client-urls "$E" --listen-peer-urls "http://127.0.0.1:$PP" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PP" --initial-cluster "solo=http://127.0.0.1:$PP" \
  --cert-file etcd.pem --key-file etcd.key >etcd.log 2>&1 </dev/null &
ETCD_PID=$!
trap 'kill -KILL "$ETCD_PID" 2>/dev/null || true; ha_cleanup' EXIT
for ((i = 0; i < 100; i++)); do
  curl -s --cacert ca.pem -o /dev/null "$E/version" && break
  sleep 0.1
done
# Auth on, through the gateway (the password only ever in files).
PW="pw-$RANDOM$RANDOM$RANDOM"
printf '%s\n' "$PW" >pw.secret
printf '{"name":"root","password":"%s"}' "$PW" >add.secret
g() { curl -sf --cacert ca.pem -X POST "$E/v3/auth/$1" --data-binary "$2" >/dev/null || fail "etcd auth/$1"; }
g user/add @add.secret
g role/add '{"name":"root"}'
g user/grant '{"user":"root","role":"root"}'
g enable '{}'

# expect_fail cmd…: cmd must fail (output in last.out / last.err).
expect_fail() { if "$@" >last.out 2>last.err; then fail "expected a failure: $*"; fi; }

export REKEY_STORE="etcd:$E" REKEY_KEY_FILE="$dir/root.key" REKEY_ETCD_CA_FILE="$dir/ca.pem"
export REKEY_ETCD_USER=root
# no password: refused before any request
expect_fail "$REKEY" operator init -key-file="$REKEY_KEY_FILE"
expect_in last.err "REKEY_ETCD_PASSWORD_FILE"
# a wrong one: etcd's refusal
printf 'wrong\n' >bad.secret
REKEY_ETCD_PASSWORD_FILE=$dir/bad.secret expect_fail "$REKEY" operator init -key-file="$REKEY_KEY_FILE"
grep -qi "auth" last.err || { cat last.err; fail "a wrong etcd password does not say auth"; }
export REKEY_ETCD_PASSWORD_FILE="$dir/pw.secret"
# no CA: the certificate is refused
REKEY_ETCD_CA_FILE= expect_fail "$REKEY" operator init -key-file="$REKEY_KEY_FILE"
expect_in last.err "TLS"
expect_exit 0 "$REKEY" operator init -key-file="$REKEY_KEY_FILE"
printf 'X-Vault-Token: %s\n' "$(sed -n 's/^Initial Root Token: //p' last.out)" >root.hdr.secret
expect_exit 0 "$REKEY" kv put secret/app/db password=hunter-"$RANDOM"
expect_exit 0 "$REKEY" kv get -field=password secret/app/db
grep -q '^hunter-' last.out || fail "the value does not read back through etcd with auth and TLS"
# a server on it leads and serves, with proxies set in its environment that nothing may use
# (one would see etcd's auth password and every value): they point at a closed port
NOPROXY=(http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
  ALL_PROXY=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 no_proxy= NO_PROXY=)
EP=$E
PA=$(free_port)
server_conf a "$PA"
server_start a "${NOPROXY[@]}"
wait_log a.log "is the leader now" 10
req "http://127.0.0.1:$PA" GET /v1/secret/data/app/db
expect 200

# ---- servers on https: a standby forwards the lease routes to the leader, verifying it ----
# t1 leads over https (etcd's certificate: 127.0.0.1, this CA); t2 trusts the CA (REKEY_CACERT),
# t3 has only the system's store: its forward is refused, never sent unverified.
tls_start() { # NAME PORT [ENV=VAL…]
  local name=$1 port=$2 i
  shift 2
  printf 'version: 1\nstore: { backend: etcd, endpoints: "%s" }\nserver:\n  listen: "127.0.0.1:%s"\n  tls_cert: %s\n  tls_key: %s\n' \
    "$EP" "$port" "$dir/etcd.pem" "$dir/etcd.key" >"$name.yaml"
  env "$@" "$REKEY" server -config "$dir/$name.yaml" >>"$name.log" 2>&1 &
  SERVERS+=($!)
  for ((i = 0; i < 100; i++)); do
    curl -s --cacert ca.pem -o /dev/null "https://127.0.0.1:$port/v1/sys/health" && return 0
    sleep 0.1
  done
  cat "$name.log"; fail "server $name did not come up"
}
kill -TERM "$PID_a"
wait "$PID_a" || fail "server a did not exit 0 on SIGTERM"
P1=$(free_port); P2=$(free_port); P3=$(free_port)
T1="https://127.0.0.1:$P1"
tls_start t1 "$P1"
wait_log t1.log "is the leader now" 10
tls_start t2 "$P2" REKEY_CACERT="$dir/ca.pem" "${NOPROXY[@]}"
tls_start t3 "$P3" REKEY_CACERT= VAULT_CACERT=
for p in "$P2" "$P3"; do
  for ((i = 0; i < 50; i++)); do
    curl -s --cacert ca.pem "https://127.0.0.1:$p/v1/sys/leader" >resp.json
    [ "$(j 'd["is_self"], d["leader_address"]')" = "(False, '$T1')" ] && break
    sleep 0.1
  done
  [ "$(j 'd["is_self"], d["leader_address"]')" = "(False, '$T1')" ] || { cat resp.json; fail "127.0.0.1:$p does not see t1 lead"; }
done
# t2: the leader's own answer comes back (an unknown lease: 400 "invalid lease").
code=$(curl -s --cacert ca.pem -o resp.json -w '%{http_code}' -X PUT -H @root.hdr.secret \
  --data-binary '{"lease_id":"database/creds/none/x"}' "https://127.0.0.1:$P2/v1/sys/leases/lookup")
[ "$code" = 400 ] || { cat resp.json; fail "lookup through the standby trusting the CA: $code, not 400"; }
expect_in resp.json "invalid lease"
grep -qF "sys/leases/lookup forwarded to the leader at $T1: 400" t2.log || { cat t2.log; fail "t2 did not forward"; }
# t3: the leader's certificate is not trusted: 503 naming it, nothing forwarded.
code=$(curl -s --cacert ca.pem -o resp.json -w '%{http_code}' -X PUT -H @root.hdr.secret \
  --data-binary '{"lease_id":"database/creds/none/x"}' "https://127.0.0.1:$P3/v1/sys/leases/lookup")
[ "$code" = 503 ] || { cat resp.json; fail "lookup through the standby without the CA: $code, not 503"; }
expect_in resp.json "$T1"
grep -qi "certificate" resp.json || { cat resp.json; fail "the 503 does not say the certificate was refused"; }
grep -qF "no answer from the leader at $T1" t3.log && ! grep -q "forwarded to the leader" t3.log ||
  { cat t3.log; fail "t3 did not log the refused forward, or forwarded"; }

# the password is in no output, log or etcd's log
for f in last.out last.err a.log t1.log t2.log t3.log etcd.log; do
  ! grep -qF -- "$PW" "$f" || fail "the etcd password appears in $f"
done
echo ok
