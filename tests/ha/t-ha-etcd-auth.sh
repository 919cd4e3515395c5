#!/usr/bin/env bash
# etcd with user/password auth and TLS: the store is initialised, written and read, and a server
# leads, as user root with the password from REKEY_ETCD_PASSWORD_FILE, over https with
# REKEY_ETCD_CA_FILE; a missing or wrong password and a missing CA fail clearly; the password
# appears in no output or log.
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
# a server on it leads and serves
EP=$E
PA=$(free_port)
server_conf a "$PA"
server_start a
wait_log a.log "is the leader now" 10
req "http://127.0.0.1:$PA" GET /v1/secret/data/app/db
expect 200
# the password is in no output, log or etcd's log
for f in last.out last.err a.log etcd.log; do
  ! grep -qF -- "$PW" "$f" || fail "the etcd password appears in $f"
done
echo ok
