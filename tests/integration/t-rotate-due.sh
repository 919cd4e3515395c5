#!/usr/bin/env bash
# `rekey rotate --due/--all` covers the entries defined in the store through the API
# (rekey/entries), not only the configuration's: a store entry that is due is rotated by a local
# `rotate --due --yes`; one whose target is unavailable (its test hook exits 75) is reported
# pending in the summary, not failed, and the exit code is 0. The same through the API (client
# mode), where the server answers 503 with "pending": true.
. "$REKEY_TOP/tests/integration/lib.sh"

dir=$PWD

req() {
    STATUS=$(curl -s -o resp.json -w '%{http_code}' -X "$1" -H @root.hdr.secret \
        ${3:+--data-binary "$3"} "$A$2")
}
kill_server_at_exit

kf_init
cat >rekey.yaml <<EOF
$(kf_yaml)
hooks:
  render:
    type: file
    path: $dir/api.secret
    template: "TOKEN={{new}}"
    mode: "0600"
  probe:
    type: exec
    # 75 (EX_TEMPFAIL): the target is unavailable.
    command: [sh, -c, 'exit 75']
secrets:
  - path: secret/app/cfg
    kind: generated
    format: "cf-{hex:16}"
    every: 30d
EOF
: >server.log
start_server
# Two store entries rotated by a person (auto: false, so the server's scheduler leaves them):
# one whose target answers, one whose target is down.
req PUT /v1/rekey/entries/secret/api/due '{"kind":"generated","format":"tk-{hex:32}","field":"key","every":"30d","auto":false,"reload":["render"]}'
expect 200
req PUT /v1/rekey/entries/secret/api/down '{"kind":"generated","format":"dn-{hex:32}","field":"key","every":"30d","auto":false,"test":["probe"]}'
expect 200
stop_server

# ---- locally: both are picked; one rotated, one pending; exit 0 ----
export REKEY_KEY_FILE="$dir/kf.key" REKEY_CONFIG="$dir/rekey.yaml"
expect_exit 0 "$REKEY" rotate --due --yes
expect_in last.out "secret/api/due: rotated v0 -> v1"
expect_in last.err "secret/api/down: target unavailable"
expect_in last.out "rotated, 0 failed, 1 pending, 0 skipped"
expect_not_in last.err "rolled back"
[ -s api.secret ] || fail "the store entry's reload hook did not run"
"$REKEY" status --json >status.json || true
$PY - <<'PY' || fail "status after rotate --due"
import json
s = {e["path"]: e for e in json.load(open("status.json"))}
assert s["secret/api/due"]["version"] == 1 and s["secret/api/due"]["state"] == "ok", s
assert s["secret/api/down"]["state"] == "pending", s
PY
# --all picks the store entries too (the pending one is taken up again, still pending).
expect_exit 0 "$REKEY" rotate --all --yes
expect_in last.out "secret/api/due: rotated v1 -> v2"
expect_in last.out "rotated, 0 failed, 1 pending, 0 skipped"

# ---- in client mode: the server's 503 with "pending": true counts as pending, exit 0 ----
start_server
(
    export REKEY_ADDR="$A" REKEY_TOKEN="$ROOT"
    unset REKEY_CONFIG REKEY_STORE REKEY_KEY_FILE
    expect_exit 0 "$REKEY" rotate --due --yes
    expect_in last.err "secret/api/down"
    expect_in last.out "0 failed, 1 pending, 0 skipped"
)
stop_server
echo ok
