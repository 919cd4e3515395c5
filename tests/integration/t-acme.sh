# kind: certificate with issuer acme against Debian's pebble (scripts/services start pebble):
# http-01 answered by rekey's own listener, dns-01 through a hook that sets and clears the TXT
# record at pebble-challtestsrv, the account registered once and reused by later renewals, the
# daemon renewing on its own when the window opens; a CA that refuses (a failed challenge), one
# that rate-limits (429) and one that is down: unavailable, the current certificate stays, the
# daemon retries after a backoff; a restarted CA that forgot the account, kill -9 inside the ACME
# exchange and after every engine step, and the private key in no output, log, argv or child
# environment. pebble is required: without it this test fails (scripts/deps installs it).
. "$REKEY_TOP/tests/integration/lib.sh"
command -v pebble >/dev/null || fail "pebble is not installed (run scripts/deps)"
command -v pebble-challtestsrv >/dev/null || fail "pebble-challtestsrv is not installed (scripts/deps)"
SVC="$REKEY_TOP/scripts/services"
BASE=$(free_ports 14)
H01=$((BASE + 10))
W=$PWD
run_to() { # run_to FILE WANT CMD…
  local f=$1 want=$2 got; shift 2
  set +e; "$@" >"$f" 2>&1; got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$f"; fail "expected exit $want, got $got: $*"; }
}
limited_pid=
cleanup() {
  [ -z "$limited_pid" ] || kill "$limited_pid" 2>/dev/null || true
  "$SVC" stop pebble "$W/pb" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$SVC" start pebble pb $BASE $H01
DIRURL=$(cat pb/directory)
MGMT=$(cat pb/challtestsrv)
curl -sf --cacert pb/ca.pem "https://127.0.0.1:$((BASE + 1))/roots/0" >root.pem
curl -sf --cacert pb/ca.pem "https://127.0.0.1:$((BASE + 1))/intermediates/0" >inter.pem

# The dns-01 hook: records its argv and environment (to prove no key reaches them), then sets
# or clears the TXT record through challtestsrv's management API.
cat >dns-hook.sh <<SH
#!/bin/sh
read -r txt
echo "argv: \$0 \$*" >>$W/hook-argv.log
env >>$W/hook-env.log
[ "\$txt" = "\$REKEY_ACME_TXT" ] || exit 3
case \$1 in
set) curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$txt\"}" $MGMT/set-txt ;;
clear) curl -sf -X POST -d "{\"host\":\"\$2.\"}" $MGMT/clear-txt ;;
*) exit 2 ;;
esac
SH
chmod +x dns-hook.sh

{ echo "version: 1"; store_yaml store.db; cat <<YAML
hooks:
  cert-file: { type: file, path: tls.crt, template: "{{new.chain}}" }
  key-file: { type: file, path: tls-key.secret, template: "{{new.private_key}}" }
secrets:
  - path: pki/web
    kind: certificate
    common_name: web.test
    alt_names: [web.test, www.web.test]
    issuer: acme
    acme_directory: $DIRURL
    acme_ca_file: pb/ca.pem
    acme_email: ops@web.test
    acme_http01_listen: 127.0.0.1:$H01
    acme_timeout: 20s
    grace: 0s
    auto: true
    apply: [cert-file, key-file]
  - path: pki/wild
    kind: certificate
    common_name: wild.test
    alt_names: [wild.test, "*.wild.test"]
    issuer: acme
    acme_directory: $DIRURL
    acme_ca_file: pb/ca.pem
    acme_challenge: dns-01
    acme_dns01_hook: dns-hook.sh
    acme_timeout: 20s
    grace: 0s
  - path: pki/limited
    kind: certificate
    common_name: limited.test
    issuer: acme
    acme_directory: http://127.0.0.1:$((BASE + 12))/dir
    acme_http01_listen: 127.0.0.1:$((BASE + 13))
    grace: 0s
  - path: pki/refused
    kind: certificate
    common_name: refused.test
    issuer: acme
    acme_directory: $DIRURL
    acme_ca_file: pb/ca.pem
    acme_http01_listen: 127.0.0.1:$((BASE + 11))
    acme_timeout: 10s
    grace: 0s
YAML
} >rekey.yaml
init_store
unset REKEY_STORE
run_to lint.out 0 "$REKEY" lint

accounts() { grep -c "POST /sign-me-up" pb/pebble.log || true; }

# http-01: issued, rendered, chains to pebble's root, covers the names, matches its key.
run_to web1.out 0 "$REKEY" rotate pki/web
openssl verify -CAfile root.pem -untrusted inter.pem tls.crt >verify.out 2>&1 || { cat verify.out; fail "http-01 certificate does not verify"; }
openssl x509 -in tls.crt -noout -ext subjectAltName >san.out
expect_in san.out "DNS:web.test"
expect_in san.out "DNS:www.web.test"
[ "$(openssl pkey -in tls-key.secret -pubout | sha256sum)" = "$(openssl x509 -in tls.crt -noout -pubkey | sha256sum)" ] ||
  fail "the key file does not match the certificate"
openssl x509 -in tls.crt -noout -text | grep -q "id-ecPublicKey" || fail "not ecdsa-p256 by default"
"$REKEY" kv get -field=ca pki/web >ca-field.out 2>/dev/null
[ "$(openssl x509 -in ca-field.out -noout -subject)" = "$(openssl x509 -in inter.pem -noout -subject)" ] ||
  fail "the ca field is not pebble's intermediate"
serial1=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$(accounts)" = 1 ] || fail "expected one account registration, saw $(accounts)"
# Status: the due time comes from the certificate (notAfter - renew_before).
"$REKEY" status --json >status.json 2>/dev/null
notafter=$(date -u -d "$(openssl x509 -in tls.crt -noout -enddate | cut -d= -f2)" +%s)
/usr/bin/python3 - "$notafter" <<'PY' || fail "status does not show the ACME certificate's expiry"
import json, sys, datetime
na = int(sys.argv[1])
s = [e for e in json.load(open("status.json")) if e["path"] == "pki/web"][0]
ts = lambda t: int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
assert ts(s["expires_at"]) == na and ts(s["next_due"]) == na - 30 * 86400, s
PY

# A forced renewal and a second one: new serials, the same account (no new registration).
run_to web2.out 0 "$REKEY" rotate pki/web
serial2=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$serial2" != "$serial1" ] || fail "forced renewal kept serial $serial1"
run_to web3.out 0 "$REKEY" rotate pki/web
serial3=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$(accounts)" = 1 ] || fail "the account was registered again ($(accounts) registrations)"
openssl verify -CAfile root.pem -untrusted inter.pem tls.crt >/dev/null 2>&1 || fail "renewed certificate does not verify"

# The daemon renews on its own once the renewal window opens (fake clock: 29 days before
# notAfter), and not before.
run_to once1.out 0 "$REKEY" run -once
expect_in once1.out "0 rotated"
notafter=$(date -u -d "$(openssl x509 -in tls.crt -noout -enddate | cut -d= -f2)" +%s)
REKEY_NOW=$((notafter - 29 * 86400)) run_to once2.out 0 "$REKEY" run -once
expect_in once2.out "1 rotated, 0 failed"
serial3=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$(accounts)" = 1 ] || fail "the daemon registered another account"

# dns-01 (with a wildcard): the hook set and cleared the records, got the value on stdin and in
# REKEY_ACME_TXT, and the same account served (one directory, one account).
run_to wild.out 0 "$REKEY" rotate pki/wild
"$REKEY" kv get -field=certificate pki/wild >wild.pem 2>/dev/null
openssl x509 -in wild.pem -noout -ext subjectAltName >wsan.out
expect_in wsan.out "DNS:*.wild.test"
expect_in wsan.out "DNS:wild.test"
openssl verify -CAfile root.pem -untrusted inter.pem wild.pem >/dev/null 2>&1 || fail "dns-01 certificate does not verify"
[ "$(grep -c 'argv: .* set _acme-challenge.wild.test$' hook-argv.log)" = 2 ] || { cat hook-argv.log; fail "the hook did not set two records"; }
[ "$(grep -c 'argv: .* clear _acme-challenge.wild.test$' hook-argv.log)" = 2 ] || { cat hook-argv.log; fail "the hook did not clear the records"; }
[ "$(accounts)" = 1 ] || fail "dns-01 registered another account"

# A CA that refuses: the http-01 check reaches no listener, the challenge is invalid. The
# rotation is "unavailable": nothing is stored, the CA's reason is shown.
run_to refused.out 3 "$REKEY" rotate pki/refused
expect_in refused.out "ACME CA unavailable, the current certificate stays"
expect_in refused.out "refused.test is invalid"
expect_exit 3 "$REKEY" kv get pki/refused
expect_in last.err "no secret at pki/refused"

# A CA that rate-limits (429, a problem document, Retry-After): unavailable, its words shown.
cat >limited.py <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders"}'
        self.send_response(429)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", "60")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
/usr/bin/python3 limited.py $((BASE + 12)) &
limited_pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$((BASE + 12))/dir && break; sleep 0.1; done
run_to limited.out 3 "$REKEY" rotate pki/limited
expect_in limited.out "ACME CA unavailable, the current certificate stays"
expect_in limited.out "429 (rateLimited: too many new orders), retry after 60 s"
# The daemon waits as long as the CA asked (Retry-After: 60 s), not its own first backoff (1 s).
{ sed -n '1,/^secrets:/p' rekey.yaml; cat <<YAML
  - path: pki/limited
    kind: certificate
    common_name: limited.test
    issuer: acme
    acme_directory: http://127.0.0.1:$((BASE + 12))/dir
    acme_http01_listen: 127.0.0.1:$((BASE + 13))
    grace: 0s
    auto: true
YAML
} >limited.yaml
set +e; REKEY_CONFIG=$PWD/limited.yaml "$REKEY" run -once >limited-run.out 2>&1; set -e
expect_in limited-run.out "pki/limited: the candidate stays pending, retry in 1m"
kill $limited_pid
limited_pid=

# The CA down: unavailable, the current certificate stays (store and file).
"$SVC" stop pebble pb
run_to down.out 3 "$REKEY" rotate pki/web
expect_in down.out "ACME CA unavailable, the current certificate stays"
expect_in down.out "unreachable"
cur=$("$REKEY" kv get -field=certificate pki/web 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2)
served=$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)
[ "$cur" = "$served" ] && [ "$cur" = "$serial3" ] || fail "the current certificate changed while the CA was down"
# The daemon in the window with the CA down: the renewal waits for a retry after a backoff, the
# run ends (no loop), nothing changes.
REKEY_NOW=$((notafter - 29 * 86400)) run_to once3.out 0 "$REKEY" run -once
expect_in once3.out "retry in"
expect_in once3.out "ACME CA unavailable"
[ "$(openssl x509 -in tls.crt -noout -serial | cut -d= -f2)" = "$serial3" ] || fail "the daemon changed the certificate while the CA was down"

# The CA back, with no memory of the account (pebble keeps none): the same key registers again.
"$SVC" start pebble pb $BASE $H01
curl -sf --cacert pb/ca.pem "https://127.0.0.1:$((BASE + 1))/roots/0" >root.pem
curl -sf --cacert pb/ca.pem "https://127.0.0.1:$((BASE + 1))/intermediates/0" >inter.pem
run_to back.out 0 "$REKEY" rotate pki/web
openssl verify -CAfile root.pem -untrusted inter.pem tls.crt >/dev/null 2>&1 || fail "no valid certificate after the CA came back"

# kill -9 inside the ACME exchange (account ready; challenges valid, nothing finalized) and after
# every engine step: the next rotation or recover leaves one current version matching the files.
for step in acme-account acme-validated create apply test promote reload finish; do
  set +e
  REKEY_CRASH_AT=$step "$REKEY" rotate pki/web >crash.out 2>&1
  rc=$?
  set -e
  [ $rc -eq 137 ] || { cat crash.out; fail "REKEY_CRASH_AT=$step: expected 137, got $rc"; }
  case $step in
    acme-*) run_to recover.out 0 "$REKEY" rotate pki/web ;;
    *) run_to recover.out 0 "$REKEY" recover ;;
  esac
  check_rotation_invariants pki/web chain tls.crt
  openssl verify -CAfile root.pem -untrusted inter.pem tls.crt >/dev/null 2>&1 || fail "after a crash at $step: no valid certificate"
done
[ "$(grep -c 'POST /sign-me-up' pb/pebble.log)" -le 3 ] || fail "the account was registered on every renewal"

# The private key (and its PEM header) appears in no output, log, argv or child environment,
# and not in plaintext in the store.
key_line=$(sed -n 2p tls-key.secret)
[ -n "$key_line" ] || fail "no key line"
for f in *.out *.log pb/*.log; do
  [ -f "$f" ] || continue
  ! grep -qF -- "$key_line" "$f" || fail "the private key appears in $f"
  ! grep -q "PRIVATE KEY" "$f" || fail "a private key appears in $f"
done
assert_no_plaintext "$key_line"
exit 0
