# Vault's PKI API shapes over the internal CA: pki/ca/pem (no token), pki/roles/:name,
# pki/issue/:role for a stored role and for a role taken from a certificate entry of the
# inventory; a name outside the role is refused; the issued certificate verifies against the CA.
. "$REKEY_TOP/tests/integration/lib.sh"
PY=/usr/bin/python3
dir=$PWD
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
req() {
  local method=$1 path=$2 body=${3-}
  local args=(-s -o resp.json -w '%{http_code}' -X "$method" -H @root.hdr.secret)
  [ -n "$body" ] && args+=(--data-binary "$body")
  STATUS=$(curl "${args[@]}" "$A$path")
}
expect() { [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "expected HTTP $1, got $STATUS"; }; }
j() { $PY -c 'import json,sys; d = json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

PORT=$(free_port)
A="http://127.0.0.1:$PORT"
cat >rekey.yaml <<EOF
version: 1
$(store_yaml kf.db)
server:
  listen: "127.0.0.1:$PORT"
secrets:
  - path: pki/ai-gateway-tls
    kind: certificate
    common_name: gateway.example.com
    alt_names: [gateway.example.com, api.gateway.example.com]
    ttl: 90d
    renew_before: 30d
EOF
export REKEY_STORE=$(store_loc "$dir/kf.db") REKEY_KEY_FILE="$dir/kf.key"
expect_exit 0 "$REKEY" operator init -key-file="$dir/kf.key"
ROOT=$(sed -n 's/^Initial Root Token: //p' last.out)
printf 'X-Vault-Token: %s\n' "$ROOT" >root.hdr.secret
expect_exit 0 "$REKEY" pki init-ca
"$REKEY" pki ca >ca.pem
unset REKEY_STORE
"$REKEY" server -config "$dir/rekey.yaml" >>server.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$A/v1/sys/health" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
  sleep 0.1
done

# The CA, as Vault serves it: PEM text, no token needed.
STATUS=$(curl -s -o capem.out -w '%{http_code}' "$A/v1/pki/ca/pem")
[ "$STATUS" = 200 ] || fail "pki/ca/pem: HTTP $STATUS"
cmp -s capem.out ca.pem || fail "pki/ca/pem differs from rekey pki ca"

# A stored role.
req POST /v1/pki/roles/web '{"allowed_domains":["svc.test"],"allow_subdomains":true,"max_ttl":"72h"}'
expect 204
req GET /v1/pki/roles/web
expect 200
[ "$(j 'd["data"]["allow_subdomains"]')" = True ] || fail "role not stored"
req POST /v1/pki/issue/web '{"common_name":"a.svc.test","alt_names":"b.svc.test","ip_sans":"10.1.2.3","ttl":"720h"}'
expect 200
j 'd["data"]["certificate"]' >issued.crt
j 'd["data"]["private_key"]' >issued-key.secret
openssl verify -CAfile ca.pem issued.crt >/dev/null || fail "issued certificate does not verify"
openssl x509 -in issued.crt -noout -ext subjectAltName | grep -q "DNS:b.svc.test" || fail "alt name missing"
openssl x509 -in issued.crt -noout -ext subjectAltName | grep -q "IP Address:10.1.2.3" || fail "ip san missing"
[ "$(openssl pkey -in issued-key.secret -pubout | sha256sum)" = "$(openssl x509 -in issued.crt -noout -pubkey | sha256sum)" ] ||
  fail "the key does not match"
[ "$(j 'd["data"]["private_key_type"]')" = ec ] || fail "private_key_type"
serial=$(j 'd["data"]["serial_number"]')
[ "$serial" = "$(openssl x509 -in issued.crt -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/../&:/g; s/:$//')" ] ||
  fail "serial_number $serial is not Vault's form of the certificate's"
# max_ttl caps the ttl asked for
end=$(date -u -d "$(openssl x509 -in issued.crt -noout -enddate | cut -d= -f2)" +%s)
[ $((end - $(date +%s))) -le $((72 * 3600 + 60)) ] || fail "max_ttl not applied"
# a name outside the role
req POST /v1/pki/issue/web '{"common_name":"evil.example.com"}'
expect 400
grep -q "not allowed" resp.json || fail "no reason for the refusal"

# A role from the inventory entry: exactly its names.
req POST /v1/pki/issue/ai-gateway-tls '{"common_name":"api.gateway.example.com"}'
expect 200
req POST /v1/pki/issue/ai-gateway-tls '{"common_name":"x.gateway.example.com"}'
expect 400
req POST /v1/pki/issue/nosuch '{"common_name":"a.svc.test"}'
expect 400
# Without a token: refused.
STATUS=$(curl -s -o resp.json -w '%{http_code}' -X POST --data-binary '{"common_name":"a.svc.test"}' "$A/v1/pki/issue/web")
[ "$STATUS" = 403 ] || fail "issue without a token: HTTP $STATUS"
key_line=$(sed -n 2p issued-key.secret)
! grep -qF -- "$key_line" server.log || fail "the issued key is in the server log"
exit 0
