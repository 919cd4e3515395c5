#!/usr/bin/env bash
# A token whose policy grants only `create` on a KV path cannot write a second version by racing
# (issue 11, finding 3): 16 parallel writes to one new path through `rekey server -dev` give
# exactly one version; the others get Vault's failed check-and-set answer. A token with create
# and update is not held to that. Tokens travel in header files, never on a command line.
. "$REKEY_TOP/tests/integration/lib.sh"

cat >dev.yaml <<EOF
version: 1
secrets:
  - path: secret/app/manual
    kind: manual
    field: value
    every: 90d
EOF

dev_server "$PWD/dev.yaml"

# token_for POLICY FILE: a token holding POLICY, as a header file.
token_for() {
    req POST /v1/auth/token/create "{\"policies\":[\"$1\"],\"ttl\":\"1h\"}"
    expect 200
    printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >"$2"
}

req PUT /v1/sys/policies/acl/creator \
    '{"policy":"path \"secret/data/race/*\" { capabilities = [\"create\"] }"}'
expect 204
req PUT /v1/sys/policies/acl/writer \
    '{"policy":"path \"secret/data/race/*\" { capabilities = [\"create\", \"update\"] }"}'
expect 204
token_for creator creator.hdr.secret
token_for writer writer.hdr.secret

# race HEADER-FILE PATH: 16 writes to secret/data/PATH at once (connections opened first, then
# released together); codes in code.N, bodies in out.N.
race() {
    rm -f code.* out.*
    $PY - "$1" "$PORT" "$2" <<'PY'
import http.client, sys, threading
token = open(sys.argv[1]).read().split(":", 1)[1].strip()
port, path = int(sys.argv[2]), "/v1/secret/data/" + sys.argv[3]
go = threading.Barrier(16)
def one(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    body = '{"data":{"v":"racer-%d"}}' % i
    go.wait()
    c.request("POST", path, body, {"X-Vault-Token": token, "Content-Type": "application/json"})
    r = c.getresponse()
    open("out.%d" % i, "wb").write(r.read())
    open("code.%d" % i, "w").write(str(r.status))
    c.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(1, 17)]
for t in ts: t.start()
for t in ts: t.join()
PY
}
# versions_of PATH: how many versions the root token sees at secret/metadata/PATH.
versions_of() {
    req GET "/v1/secret/metadata/$1"
    expect 200
    j 'len(d["data"]["versions"])'
}

# Create-only: one writer wins; a loser that checked before the path existed gets Vault's failed
# check-and-set (400), one that checked after it gets 403 (update needed); one version.
raced=0
for round in 1 2 3; do
    race creator.hdr.secret "race/new-$round"
    won=$(cat code.* | grep -o 200 | wc -l)
    [ "$won" -eq 1 ] || { cat code.*; echo; fail "round $round: $won create-only writes succeeded, want 1"; }
    for i in $(seq 1 16); do
        case $(cat "code.$i") in
        200 | 403) ;;
        400)
            raced=$((raced + 1))
            grep -qF '{"errors":["check-and-set parameter did not match the current version"]}' \
                "out.$i" || { cat "out.$i"; fail "round $round: a 400 that is not the failed check-and-set"; } ;;
        *) cat "out.$i"; fail "round $round: a losing write got HTTP $(cat "code.$i")" ;;
        esac
    done
    [ "$(versions_of "race/new-$round")" = 1 ] || fail "round $round: more than one version written"
done
echo "create-only losers refused by the check-and-set: $raced of 45"

# The same token on the path now that it exists: update is needed (403); on a new path a cas
# other than 0 cannot match, and cas 0 is what it gets anyway.
req POST /v1/secret/data/race/new-1 '{"data":{"v":"again"}}' creator.hdr.secret
expect 403
req POST /v1/secret/data/race/cas '{"options":{"cas":1},"data":{"v":"x"}}' creator.hdr.secret
expect 400
jis 'd["errors"]' "['check-and-set parameter did not match the current version']"
req POST /v1/secret/data/race/cas '{"options":{"cas":0},"data":{"v":"x"}}' creator.hdr.secret
expect 200
jis 'd["data"]["version"]' 1

# With update as well, the writes are not held to creating the path: every one lands.
race writer.hdr.secret race/both
[ "$(cat code.* | grep -o 200 | wc -l)" -eq 16 ] ||
    { grep -v '"data"' out.* || true; fail "create+update writes were refused"; }
req GET /v1/secret/metadata/race/both
expect 200
jis 'd["data"]["current_version"]' 16

# The mount's settings still reach a path a create-only write makes (now in the same write).
req POST /v1/secret/config '{"max_versions":3}'
expect 204
race creator.hdr.secret race/configured
[ "$(cat code.* | grep -o 200 | wc -l)" -eq 1 ] || fail "configured: not exactly one create"
req GET /v1/secret/metadata/race/configured
expect 200
jis 'd["data"]["max_versions"], len(d["data"]["versions"])' "(3, 1)"
