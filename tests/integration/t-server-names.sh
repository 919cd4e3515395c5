#!/usr/bin/env bash
# Names in paths (docs/server.md "Names in paths"), against `rekey server -dev`: the exploit of
# issue 11 (a token denied sys/policies/acl/selfpol rewrote its own policy through
# sys/policies/acl/SelfPol) is refused in every spelling, on both policy route families and
# for every verb; a policy written in any case is stored lowercase; names with control
# characters or other invalid bytes get 400. Tokens travel in header files, never on a command
# line. (tests/unit/test_routes_names.c walks every route of the table.)
. "$REKEY_TOP/tests/integration/lib.sh"


expect() { [ "$STATUS" = "$1" ] || { cat resp.json; echo; fail "$2: expected HTTP $1, got $STATUS"; }; }

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
PORT=$(free_port)
A="http://127.0.0.1:$PORT"
printf 'version: 1\n' >dev.yaml
"$REKEY" server -dev -config "$PWD/dev.yaml" -dev-listen-address "127.0.0.1:$PORT" \
    >server.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$A/v1/sys/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log; fail "the server exited"; }
    sleep 0.1
done
# The dev root token, from the banner (a file, not a command line).
sed -n "s/^.*export VAULT_TOKEN='\(.*\)'.*$/X-Vault-Token: \1/p" server.log | head -1 >root.hdr.secret
[ -s root.hdr.secret ] || { cat server.log; fail "no root token in the banner"; }

# The reproduction, as the issue gives it.
req PUT /v1/sys/policies/acl/selfpol '{"policy":"path \"sys/policies/acl/*\" { capabilities = [\"create\", \"update\"] }\npath \"sys/policies/acl/selfpol\" { capabilities = [\"deny\"] }\npath \"sys/policy/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\"] }\npath \"sys/policy/selfpol\" { capabilities = [\"deny\"] }"}'
expect 204 "writing selfpol"
req GET /v1/sys/policies/acl/selfpol
before=$(j 'd["data"]["policy"]')
req POST /v1/auth/token/create '{"policies":["selfpol"],"no_default_policy":true}'
expect 200 "creating the token"
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >self.hdr.secret
# A policy name in a token request is case-insensitive too (Vault lowercases it): lowercased
# before any check, for the root token and for a parent that holds the policy.
req POST /v1/auth/token/create '{"policies":["SelfPol"],"no_default_policy":true}'
expect 200 "creating a token with SelfPol"
[ "$(j 'd["auth"]["policies"]')" = "['selfpol']" ] || { cat resp.json; fail "SelfPol not stored as selfpol"; }
req PUT /v1/sys/policies/acl/minter '{"policy":"path \"auth/token/create\" { capabilities = [\"update\"] }"}'
expect 204 "writing minter"
req POST /v1/auth/token/create '{"policies":["selfpol","minter"],"no_default_policy":true}'
expect 200 "creating the minter token"
printf 'X-Vault-Token: %s\n' "$(j 'd["auth"]["client_token"]')" >minter.hdr.secret
req POST /v1/auth/token/create '{"policies":["SelfPol","MINTER"]}' minter.hdr.secret
expect 200 "a child with SelfPol from a parent with selfpol"
[ "$(j 'd["auth"]["policies"]')" = "['minter', 'selfpol']" ] || { cat resp.json; fail "the child's policies"; }
req POST /v1/auth/token/create '{"policies":["Self Pol"]}'
expect 400 "an invalid policy name"
expect_in resp.json "invalid policy name"

widen='{"policy":"path \"*\" { capabilities = [\"read\",\"sudo\",\"update\"] }","rules":"path \"*\" { capabilities = [\"read\",\"sudo\",\"update\"] }"}'
for name in selfpol SelfPol SELFPOL sELFpOL selfpoL; do
    for m in PUT POST; do
        req $m "/v1/sys/policies/acl/$name" "$widen" self.hdr.secret
        expect 403 "$m sys/policies/acl/$name"
        req $m "/v1/sys/policy/$name" "$widen" self.hdr.secret
        expect 403 "$m sys/policy/$name"
    done
    for m in GET DELETE; do
        req $m "/v1/sys/policy/$name" "" self.hdr.secret
        expect 403 "$m sys/policy/$name"
    done
done
req GET /v1/sys/policies/acl/selfpol
expect 200 "reading selfpol back"
[ "$(j 'd["data"]["policy"]')" = "$before" ] || fail "selfpol was rewritten"

# What the policy grants still works, in any case, and lands under the lowercase name.
req PUT /v1/sys/policies/acl/OtherPol "$widen" self.hdr.secret
expect 204 "PUT OtherPol"
req LIST /v1/sys/policies/acl
[ "$(j '"otherpol" in d["data"]["keys"] and "OtherPol" not in d["data"]["keys"]')" = True ] ||
    { cat resp.json; fail "OtherPol was not stored as otherpol"; }
req GET /v1/sys/policy/OTHERPOL "" self.hdr.secret
expect 200 "GET sys/policy/OTHERPOL"
[ "$(j 'd["name"]')" = otherpol ] || fail "the name is not read back lowercase"

# Invalid names: 400, for root too; nothing is written.
for bad in 'self%1Bpol' 'self%C2%85pol' 'self%20pol' 'self%25pol' 'self*' '%C3%A9'; do
    req PUT "/v1/sys/policies/acl/$bad" "$widen"
    expect 400 "PUT sys/policies/acl/$bad"
    req GET "/v1/sys/policy/$bad"
    expect 400 "GET sys/policy/$bad"
done
! grep -q $'\x1b' server.log || fail "an escape byte reached the log"

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
