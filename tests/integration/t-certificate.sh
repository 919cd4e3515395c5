# kind: certificate with the internal CA: init-ca, issuance rendered by file hooks, openssl
# verify against the CA, SAN coverage, status with expiry and due date, forced renewal (a new
# serial), a live consumer (openssl s_server restarted by an exec reload hook) proven by the tls
# hook to serve the new serial, a consumer that keeps the old certificate (rotation undone, old
# files rendered back), kill -9 at every step, and the private key in no output, log or argv.
. "$REKEY_TOP/tests/integration/lib.sh"
P=pki/web
PORT=$(free_ports 1)
W=$PWD
# run_to FILE WANT CMD…: runs CMD with stdout and stderr into FILE; fails unless it exits WANT.
run_to() {
  local f=$1 want=$2 got; shift 2
  set +e; "$@" >"$f" 2>&1; got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$f"; fail "expected exit $want, got $got: $*"; }
}
cleanup() { [ -f srv.pid ] && kill "$(cat srv.pid)" 2>/dev/null; true; }
trap cleanup EXIT

# The consumer: serves tls.crt (the chain) and the key, restarted by the reload hook.
cat >restart.sh <<SH
#!/bin/sh
[ -f $W/srv.pid ] && kill \$(cat $W/srv.pid) 2>/dev/null
sleep 0.1
openssl s_server -accept 127.0.0.1:$PORT -cert $W/tls.crt -key $W/tls-key.secret -www -quiet \
  >$W/srv.log 2>&1 </dev/null &
echo \$! >$W/srv.pid
SH
chmod +x restart.sh

write_config() { # $1: the reload list
  { echo "version: 1"; store_yaml store.db; cat <<YAML
hooks:
  cert-file:
    type: file
    path: tls.crt
    template: "{{new.chain}}"
  key-file:
    type: file
    path: tls-key.secret
    template: "{{new.private_key}}"
  restart:
    type: exec
    command: [$W/restart.sh]
  keep-old:
    type: exec
    command: ["true"]
  live:
    type: tls
    address: 127.0.0.1:$PORT
    server_name: web.test
    wait: { interval: 1s, timeout: 5s }
secrets:
  - path: $P
    kind: certificate
    common_name: web.test
    alt_names: [web.test, www.web.test, 127.0.0.1, "::1"]
    ttl: 90d
    renew_before: 30d
    grace: 0s
    apply: [cert-file, key-file]
    reload: $1
YAML
  } >rekey.yaml
}

write_config "[]"
init_store
unset REKEY_STORE
expect_exit 0 "$REKEY" lint

# No CA yet: the rotation fails and says how to make one.
run_to noca.out 3 "$REKEY" rotate $P
grep -q "rekey pki init-ca" noca.out || { cat noca.out; fail "no hint to run pki init-ca"; }

run_to initca.out 0 "$REKEY" pki init-ca
expect_in initca.out "Internal CA created"
run_to initca2.out 3 "$REKEY" pki init-ca
expect_in initca2.out "internal CA already"
"$REKEY" pki ca >ca.pem
openssl x509 -in ca.pem -noout -ext basicConstraints | grep -q "CA:TRUE" || fail "the CA is not a CA"

run_to rot1.out 0 "$REKEY" rotate $P
openssl verify -CAfile ca.pem tls.crt >verify.out 2>&1 || { cat verify.out; fail "openssl verify"; }
openssl x509 -in tls.crt -noout -ext subjectAltName >san.out
for n in DNS:web.test DNS:www.web.test "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"; do
  expect_in san.out "$n"
done
for n in web.test www.web.test; do
  openssl verify -CAfile ca.pem -verify_hostname $n tls.crt >/dev/null 2>&1 || fail "does not cover $n"
done
openssl verify -CAfile ca.pem -verify_ip 127.0.0.1 tls.crt >/dev/null 2>&1 || fail "does not cover 127.0.0.1"
openssl x509 -in tls.crt -noout -ext extendedKeyUsage | grep -q "TLS Web Server Authentication" || fail "no serverAuth"
openssl x509 -in tls.crt -noout -ext keyUsage | grep -q "critical" || fail "keyUsage not critical"
openssl x509 -in tls.crt -noout -ext authorityKeyIdentifier | grep -q . || fail "no AKI"
openssl x509 -in tls.crt -noout -ext subjectKeyIdentifier | grep -q . || fail "no SKI"
openssl x509 -in tls.crt -noout -text | grep -q "id-ecPublicKey" || fail "not ecdsa-p256 by default"
# The key on disk matches the certificate and is 0600.
[ "$(stat -c %a tls-key.secret)" = 600 ] || fail "the key file is not 0600"
[ "$(openssl pkey -in tls-key.secret -pubout | sha256sum)" = "$(openssl x509 -in tls.crt -noout -pubkey | sha256sum)" ] ||
  fail "the key file does not match the certificate"
serial1=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ ${#serial1} -eq 32 ] || fail "serial $serial1 is not 128 bits"

# Status: expiry and due date (notAfter - 30d).
"$REKEY" status --json >status.json 2>/dev/null
notafter=$(date -u -d "$(openssl x509 -in tls.crt -noout -enddate | cut -d= -f2)" +%s)
/usr/bin/python3 - "$notafter" <<'PY' || fail "status does not show expiry and due date"
import json, sys, datetime
na = int(sys.argv[1])
s = [e for e in json.load(open("status.json")) if e["path"] == "pki/web"][0]
ts = lambda t: int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
assert ts(s["expires_at"]) == na, s
assert ts(s["next_due"]) == na - 30 * 86400, s
PY
"$REKEY" status >status.out 2>&1 || true
expect_in status.out "certificate expires"
# The calendar shows the expiry too, as status does (table and --json).
"$REKEY" schedule --json >schedule.json 2>/dev/null
/usr/bin/python3 - "$notafter" <<'PY' || fail "schedule --json does not show the expiry"
import json, sys, datetime
na = int(sys.argv[1])
s = [e for e in json.load(open("schedule.json"))["secrets"] if e["path"] == "pki/web"][0]
ts = lambda t: int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
assert ts(s["expires_at"]) == na, s
PY
"$REKEY" schedule >schedule.out 2>&1 || fail "rekey schedule"
expect_in schedule.out "expires $(date -u -d "@$notafter" '+%Y-%m-%d %H:%MZ')"
"$REKEY" metrics >metrics.out 2>/dev/null || true
grep -q "rekey_secret_expiry_timestamp_seconds{path=\"$P\".*} $notafter" metrics.out ||
  fail "metrics do not show the expiry"

# A forced renewal: a new serial, still verified.
run_to rot2.out 0 "$REKEY" rotate $P
serial2=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$serial2" != "$serial1" ] || fail "forced renewal kept serial $serial1"
openssl verify -CAfile ca.pem tls.crt >/dev/null || fail "renewed certificate does not verify"

# A live consumer: restarted by the reload hook, the tls hook sees the new serial.
./restart.sh
write_config "[restart, live]"
run_to rot3.out 0 "$REKEY" rotate $P
serial3=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
expect_in rot3.out "reload"
served=$(openssl s_client -connect 127.0.0.1:$PORT -servername web.test </dev/null 2>/dev/null |
  openssl x509 -noout -serial | cut -d= -f2)
[ "$served" = "$serial3" ] || fail "the consumer serves $served, not $serial3"

# A consumer that keeps the old certificate: the tls hook times out, the rotation is undone and
# the old files are rendered back.
write_config "[keep-old, live]"
run_to rot4.out 3 "$REKEY" rotate $P
grep -q "presents serial $serial3" rot4.out || { cat rot4.out; fail "tls hook did not report the old serial"; }
grep -qi "rolled back\|kept v" rot4.out || { cat rot4.out; fail "rotation not undone"; }
[ "$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)" = "$serial3" ] || fail "old certificate not rendered back"
[ "$(openssl pkey -in tls-key.secret -pubout | sha256sum)" = "$(openssl x509 -in tls.crt -noout -pubkey | sha256sum)" ] ||
  fail "old key not rendered back"
[ "$("$REKEY" kv get -field=certificate $P 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2)" = "$serial3" ] ||
  fail "current version is not the old certificate"
cleanup
rm -f srv.pid

# kill -9 after every step's commit, then recover: one current version, the files agree.
write_config "[]"
for step in create apply test promote reload finish; do
  set +e
  REKEY_CRASH_AT=$step "$REKEY" rotate $P >crash.out 2>&1
  rc=$?
  set -e
  [ $rc -eq 137 ] || { cat crash.out; fail "REKEY_CRASH_AT=$step: expected 137, got $rc"; }
  run_to recover.out 0 "$REKEY" recover
  check_rotation_invariants $P chain tls.crt
  openssl verify -CAfile ca.pem tls.crt >/dev/null || fail "after a crash at $step: no valid certificate"
done

# The private key appears in no output, log or the store in plaintext.
key_line=$(sed -n 2p tls-key.secret)
[ -n "$key_line" ] || fail "no key line"
for f in *.out *.log; do
  [ -f "$f" ] || continue
  ! grep -qF -- "$key_line" "$f" || fail "the private key appears in $f"
done
assert_no_plaintext "$key_line"
ca_line=$(sed -n 2p ca.pem)
exit 0
