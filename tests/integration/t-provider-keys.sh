# Kind provider-key end to end against tests/provider-server.py (a local stand-in speaking the
# OpenAI, Anthropic and xAI endpoint shapes, on loopback only):
# - a valid key a person made is promoted; realistic keys (sk-proj-, sk-svcacct-, legacy sk-,
#   sk-ant-api03-, xai-; with '-' and '_', 100..200 characters) are accepted;
# - wrong prefixes, admin keys, another provider's key, spaces, line breaks, control characters
#   and empty input are refused before anything is stored (no version, no request to the
#   provider), with the fingerprint and without the value;
# - a key the provider rejects (401) leaves current untouched;
# - the provider down (refused connection, timeout, 503, 429) keeps the candidate pending, and a
#   later run promotes it without asking again;
# - OpenAI's admin API: a service account per key, promoted, the previous one deleted after grace
#   (exactly that one), a refused candidate's account deleted again, a person's old key handed to
#   a person (action-required);
# - xAI's management API: the new key is waited for until it has propagated, the old one deleted;
# - Anthropic with an admin key: the old key is found by its partial hint (across pages) and set
#   inactive;
# - revoke retires the old key at once (API, or action-required with the console URL);
# - through the API (the CLI as a client): needs_input per entry, a key in the rotate body
#   checked and promoted;
# - no key appears in any output, log, the provider's state, a process's argv (ps while a
#   rotation waits, and from a hook) or a hook's environment.
source "$REKEY_TOP/tests/integration/lib.sh"
SRV=$REKEY_TOP/tests/provider-server.py
dir=$PWD
port=$(free_port)
base=http://127.0.0.1:$port

start_server() {
  $PY "$SRV" serve "$port" "$dir/provider-state.json" 2>>"$dir/provider.log" &
  server=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the provider server did not start"
}
stop_server() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
start_server
trap 'stop_server' EXIT

# ctl OP [NAME=VALUE…] [key=@FILE]: a control request; a key is read from its file.
ctl() { $PY "$SRV" ctl "$port" "$@"; }
# state EXPR: a Python expression over the server's state S, printed.
state() { $PY "$SRV" query "$port" "$1"; }
# known FILE FIELD: what the server knows of the key in FILE ("status", "id", "origin").
known() { $PY "$SRV" ctl "$port" check key=@"$1" | $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }
# mkkey PREFIX N FILE: a realistic key (PREFIX + N characters of [A-Za-z0-9_-]) into FILE.
mkkey() {
  $PY -c 'import secrets,sys; a="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
k=sys.argv[1]+"-_"+"".join(secrets.choice(a) for _ in range(int(sys.argv[2])-2)); open(sys.argv[3],"w").write(k)' "$1" "$2" "$3"
}
# run NAME CMD…: runs CMD with its output in NAME.out/NAME.err (both searched for keys at the end);
# sets rc.
run() {
  local name=$1; shift
  set +e
  "$@" >"$name.out" 2>"$name.err"
  rc=$?
  set -e
}
current() { "$REKEY" kv metadata -format=json "$1" | $PY -c 'import json,sys; print(json.load(sys.stdin)["current_version"])'; }
value_is() { "$REKEY" kv get -field=api_key "$1" >cur.secret; cmp -s cur.secret "$2" || fail "$1 does not hold $2"; }
state_of() { "$REKEY" status --json | $PY -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["path"]==sys.argv[1]][0]["state"])' "$1"; }

# A hook that records what a child of rekey sees: its environment and every process's argv.
cat >probe.sh <<'SH'
env >"$PROBE_DIR/hook-env.$$.out" 2>&1 || true
ps -eo args >"$PROBE_DIR/hook-ps.$$.out" 2>&1 || true
SH
sed -i "1i PROBE_DIR=$dir" probe.sh

O=secret/gw/openai
A=secret/gw/anthropic
X=secret/gw/xai
XP=secret/gw/xai-person
OA=secret/gw/openai-admin
{ echo "version: 1"; store_yaml store.db; cat <<YAML
hooks:
  consumer-openai:
    type: file
    path: $dir/consumer-openai.secret
    template: "OPENAI_API_KEY={{new}}\n"
  probe:
    type: exec
    command: [sh, $dir/probe.sh]
secrets:
  - path: $O
    kind: provider-key
    provider: openai
    base_url: $base
    timeout: 2s
    every: 90d
    grace: 0s
    apply: [consumer-openai]
    reload: [probe]
  - path: $A
    kind: provider-key
    provider: anthropic
    base_url: $base
    admin_key_path: secret/admin/anthropic
    timeout: 2s
    every: 90d
    grace: 0s
  - path: $X
    kind: provider-key
    provider: xai
    base_url: $base
    management_base_url: $base
    management_key_path: secret/admin/xai
    team_id: team-1
    acls: [api-key:model:grok-4, api-key:endpoint:chat]
    propagation_timeout: 20s
    timeout: 2s
    every: 30d
    auto: true
    grace: 0s
    reload: [probe]
  - path: $XP
    kind: provider-key
    provider: xai
    base_url: $base
    timeout: 2s
    every: 90d
  - path: $OA
    kind: provider-key
    provider: openai
    base_url: $base
    admin_key_path: secret/admin/openai
    project_id: proj_test
    timeout: 2s
    every: 30d
    auto: true
    grace: 1h
YAML
} >rekey.yaml
export REKEY_CONFIG=$dir/rekey.yaml REKEY_LOG=debug
init_store
expect_exit 0 "$REKEY" lint

# ---- a person's keys: realistic ones are accepted and promoted ----
mkkey sk-proj- 164 k1.secret
mkkey sk-svcacct- 120 k2.secret
mkkey sk- 100 k3.secret
for k in k1 k2 k3; do ctl add_key provider=openai key=@$k.secret >/dev/null; done
run rot-k1 "$REKEY" rotate $O --from-stdin <k1.secret
[ $rc -eq 0 ] || { cat rot-k1.out rot-k1.err; fail "a valid OpenAI key was not promoted"; }
value_is $O k1.secret
[ "$(cat consumer-openai.secret)" = "OPENAI_API_KEY=$(cat k1.secret)" ] || fail "the consumer did not get the key"
# The provider was asked with the key: GET /v1/models, nothing that spends tokens.
[ "$(state 'sum(1 for r in S["requests"] if r.startswith("GET /v1/models -> 200"))')" -ge 1 ] || fail "no GET /v1/models"
[ "$(state 'len([r for r in S["requests"] if "completions" in r or "messages" in r])')" -eq 0 ] || fail "a call that spends tokens"
run rot-k2 "$REKEY" rotate $O --from-file k2.secret
[ $rc -eq 0 ] || { cat rot-k2.err; fail "an sk-svcacct- key was not promoted"; }
# A person made the old key: after grace (0s) an action item says where to revoke it.
[ "$(state_of $O)" = action-required ] || { "$REKEY" status; fail "no action item for the old OpenAI key"; }
run status-o "$REKEY" status
grep -q "revoke the old OpenAI key at https://platform.openai.com/api-keys" status-o.out || { cat status-o.out; fail "the action item does not name the console"; }
run done-o "$REKEY" done $O
[ $rc -eq 0 ] || fail "rekey done"
printf '%s\n' "$(cat k3.secret)" >k3nl.secret   # a trailing newline, as echo adds, is dropped
run rot-k3 "$REKEY" rotate $O --from-stdin <k3nl.secret
[ $rc -eq 0 ] || { cat rot-k3.err; fail "a legacy sk- key was not promoted"; }
value_is $O k3.secret
"$REKEY" done $O >/dev/null

# ---- refused before anything is stored: no version, no request, no echo ----
v0=$(current $O)
n0=$(state 'len(S["requests"])')
mkkey pk-live- 120 bad-prefix.secret
mkkey sk-admin- 140 bad-admin.secret
mkkey sk-ant-admin01- 140 bad-antadmin.secret
mkkey sk-ant-api03- 150 bad-anthropic.secret
mkkey xai- 120 bad-xai.secret
$PY - <<'PY'
import secrets
a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
k = "sk-proj-" + "".join(secrets.choice(a) for _ in range(120))
open("bad-space.secret", "w").write(k[:50] + " " + k[50:])
open("bad-newline.secret", "w").write(k[:50] + "\n" + k[50:])
open("bad-two-newlines.secret", "w").write(k + "\n\n")
open("bad-tab.secret", "w").write(k[:50] + "\t" + k[50:])
open("bad-escape.secret", "w").write(k[:50] + "\x1b[2J" + k[50:])
open("bad-ctrl.secret", "w").write(k[:50] + "\x01" + k[50:])
open("bad-empty.secret", "w").write("")
PY
for b in prefix:"does not look like an OpenAI API key" admin:"OpenAI admin key" \
         antadmin:"Anthropic admin key" anthropic:"looks like an Anthropic key" \
         xai:"looks like an xAI key" space:"a space" newline:"a line break" \
         two-newlines:"a line break" tab:"a tab" escape:"a control character" \
         ctrl:"a control character" empty:"empty"; do
  name=${b%%:*} want=${b#*:}
  run refused-$name "$REKEY" rotate $O --from-stdin <bad-$name.secret
  [ $rc -ne 0 ] || fail "$name: a bad key was accepted"
  grep -qF -- "$want" refused-$name.err || { cat refused-$name.err; fail "$name: the refusal does not say '$want'"; }
  if [ "$name" != empty ]; then
    grep -q "nothing was stored" refused-$name.err || { cat refused-$name.err; fail "$name: no 'nothing was stored'"; }
    grep -q "hmac:[0-9a-f]\{12\}" refused-$name.err || { cat refused-$name.err; fail "$name: no fingerprint"; }
  fi
done
[ "$(current $O)" = "$v0" ] || fail "a refused key made a version"
[ "$(state 'len(S["requests"])')" = "$n0" ] || fail "a refused key reached the provider"
[ "$(state_of $O)" != failed ] || fail "a refused key left the entry failed"

# ---- rejected by the provider: current stays ----
mkkey sk-proj- 150 k4.secret   # never registered: the provider answers 401, quoting the key
run rot-k4 "$REKEY" rotate $O --from-stdin <k4.secret
[ $rc -ne 0 ] || fail "a key the provider rejects was promoted"
grep -q "OpenAI refused the new key" rot-k4.err || { cat rot-k4.err; fail "no 'refused' message"; }
grep -q "HTTP 401" rot-k4.err || fail "the status is not shown"
value_is $O k3.secret
[ "$(state_of $O)" = failed ] || fail "state after a rejection"

# ---- the provider down: the candidate stays pending, a later run promotes it ----
expect_cur=k3.secret
for mode in refuse timeout 503 429; do
  mkkey sk-proj- 130 k5-$mode.secret
  ctl add_key provider=openai key=@k5-$mode.secret >/dev/null
  case $mode in
    refuse) stop_server ;;
    *) ctl mode mode=$mode only=/v1/models delay=4 >/dev/null ;;
  esac
  if [ $mode = timeout ]; then
    # While the rotation waits for the provider: no key on any command line.
    "$REKEY" rotate $O --from-stdin <k5-$mode.secret >rot-k5-$mode.out 2>rot-k5-$mode.err &
    rp=$!
    sleep 1
    ps -eo args >ps-while-waiting.out
    set +e; wait $rp; rc=$?; set -e
    grep -q "rotate $O" ps-while-waiting.out || fail "ps did not see the waiting rotation"
  else
    run rot-k5-$mode "$REKEY" rotate $O --from-stdin <k5-$mode.secret
  fi
  [ $rc -ne 0 ] || fail "$mode: a rotation whose provider is down reported success"
  grep -q "stays pending" rot-k5-$mode.err || { cat rot-k5-$mode.err; fail "$mode: not pending"; }
  [ "$(state_of $O)" = pending ] || fail "$mode: status is not pending"
  run status-$mode "$REKEY" status
  grep -q "target unavailable" status-$mode.out || { cat status-$mode.out; fail "$mode: status does not say unavailable"; }
  value_is $O $expect_cur
  case $mode in
    refuse) start_server ;;
    *) ctl mode mode=ok >/dev/null ;;
  esac
  # No value given and no terminal: the pending candidate is tried again, nothing is asked.
  run resume-$mode "$REKEY" rotate $O </dev/null
  [ $rc -eq 0 ] || { cat resume-$mode.err; fail "$mode: the pending key was not promoted later"; }
  value_is $O k5-$mode.secret
  expect_cur=k5-$mode.secret
  "$REKEY" done $O >/dev/null 2>&1 || true
done

# ---- OpenAI's admin API: service accounts ----
mkkey sk-admin- 150 adm-openai.secret
ctl add_admin provider=openai key=@adm-openai.secret >/dev/null
"$REKEY" kv put secret/admin/openai key=- <adm-openai.secret >/dev/null
# The key the entry holds first was made by a person (no service account behind it).
mkkey sk-proj- 140 oa-person.secret
ctl add_key provider=openai key=@oa-person.secret >/dev/null
"$REKEY" kv put $OA api_key=- <oa-person.secret >/dev/null
run rot-oa1 "$REKEY" rotate $OA </dev/null
[ $rc -eq 0 ] || { cat rot-oa1.out rot-oa1.err; fail "the admin API rotation failed"; }
sa1=$(state 'S["created"][-1]')
[ "$(state 'len(S["created"])')" = 1 ] || fail "expected one service account"
[ "$(state 'S["deleted"]')" = "[]" ] || fail "something was deleted before grace"
"$REKEY" kv get -field=api_key $OA >oa-v2.secret
[ "$(known oa-v2.secret origin)" = admin ] || fail "the new key is not the admin API's"
# After grace: the old key has no service account (a person made it): an action item.
export REKEY_NOW=$(( $(date +%s) + 7200 ))
run recover-oa1 "$REKEY" recover
unset REKEY_NOW
[ "$(state_of $OA)" = action-required ] || { cat recover-oa1.out recover-oa1.err; fail "a person's old key did not go to a person"; }
run status-oa "$REKEY" status
grep -q "revoke the old OpenAI key (hmac:[0-9a-f]\{12\}) at https://platform.openai.com/api-keys" status-oa.out || { cat status-oa.out; fail "the item does not say what to revoke where"; }
"$REKEY" done $OA >/dev/null
run rot-oa2 "$REKEY" rotate $OA </dev/null
[ $rc -eq 0 ] || { cat rot-oa2.err; fail "the second admin API rotation failed"; }
sa2=$(state 'S["created"][-1]')
export REKEY_NOW=$(( $(date +%s) + 7200 ))
run recover-oa2 "$REKEY" recover
unset REKEY_NOW
[ "$(state 'S["deleted"]')" = "['$sa1']" ] || { state 'S["deleted"]'; fail "not exactly the previous service account was deleted"; }
# A candidate the provider refuses is deleted again; current stays.
ctl mode mode=401 only=/v1/models count=1 >/dev/null
run rot-oa3 "$REKEY" rotate $OA </dev/null
[ $rc -ne 0 ] || fail "a refused admin-made key was promoted"
sa3=$(state 'S["created"][-1]')
[ "$(state 'S["deleted"]')" = "['$sa1', '$sa3']" ] || { state 'S["deleted"]'; fail "the refused candidate's account was not deleted"; }
"$REKEY" kv get -field=api_key $OA >oa-cur.secret
[ "$(known oa-cur.secret status)" = active ] || fail "current is not the live key"

# ---- xAI's management API: wait for propagation ----
mkkey xai- 100 mgmt-xai.secret
ctl add_admin provider=xai key=@mgmt-xai.secret >/dev/null
"$REKEY" kv put secret/admin/xai key=- <mgmt-xai.secret >/dev/null
ctl set propagation=3 >/dev/null
run rot-x1 "$REKEY" rotate $X </dev/null
[ $rc -eq 0 ] || { cat rot-x1.err; fail "the xAI management rotation failed"; }
x1=$(state 'S["created"][-1]')
[ "$(state "S['checks']['$x1']")" -ge 4 ] || fail "the propagation was not waited for"
grep -q "is live after 4 checks" rot-x1.err || { cat rot-x1.err; fail "no propagation log line"; }
run rot-x2 "$REKEY" rotate $X </dev/null
[ $rc -eq 0 ] || { cat rot-x2.err; fail "the second xAI rotation failed"; }
x2=$(state 'S["created"][-1]')
[ "$(state 'S["deleted"][-1]')" = "$x1" ] || fail "the old xAI key was not deleted"
[ "$(state "[r for r in S['keys'].values() if r['id']=='$x2'][0]['status']")" = active ] || fail "the new xAI key is not active"
# A person's xAI key that xAI says is blocked is refused.
mkkey xai- 130 xp1.secret
ctl add_key provider=xai key=@xp1.secret >/dev/null
ctl block key=@xp1.secret >/dev/null
run rot-xp1 "$REKEY" rotate $XP --from-stdin <xp1.secret
[ $rc -ne 0 ] || fail "a blocked xAI key was promoted"
grep -q "says the key is blocked" rot-xp1.err || { cat rot-xp1.err; fail "no 'blocked'"; }

# ---- Anthropic with an admin key: the old key is set inactive ----
mkkey sk-ant-admin01- 120 adm-anthropic.secret
ctl add_admin provider=anthropic key=@adm-anthropic.secret >/dev/null
"$REKEY" kv put secret/admin/anthropic key=- <adm-anthropic.secret >/dev/null
for k in a0 a1 a2 a3; do mkkey sk-ant-api03- 180 $k.secret; ctl add_key provider=anthropic key=@$k.secret >/dev/null; done
run rot-a1 "$REKEY" rotate $A --from-stdin <a1.secret
[ $rc -eq 0 ] || { cat rot-a1.err; fail "a valid Anthropic key was not promoted"; }
run rot-a2 "$REKEY" rotate $A --from-stdin <a2.secret
[ $rc -eq 0 ] || { cat rot-a2.err; fail "the second Anthropic key was not promoted"; }
a1id=$(known a1.secret id)
[ "$(state 'S["deactivated"]')" = "['$a1id']" ] || { state 'S["deactivated"]'; fail "not exactly the old Anthropic key was set inactive"; }
[ "$(state_of $A)" != action-required ] || fail "an Anthropic entry with an admin key asked a person"
grep -q "GET /v1/organizations/api_keys -> 200" provider.log || fail "the keys were not listed"

# ---- revoke: the old key goes at once ----
ndel=$(state 'len(S["deleted"])')
run revoke-oa "$REKEY" revoke $OA </dev/null
[ $rc -eq 0 ] || { cat revoke-oa.out revoke-oa.err; fail "revoke of the admin API entry"; }
[ "$(state 'len(S["deleted"])')" = $((ndel + 1)) ] || fail "revoke did not delete the old service account at once"
[ "$(state 'S["deleted"][-1]')" = "$sa2" ] || fail "revoke deleted another account than the old one"
run hist-oa "$REKEY" history $OA
grep -q revoke hist-oa.out && grep -q finish hist-oa.out || { cat hist-oa.out; fail "the history lacks the revoke"; }
mkkey sk-proj- 170 k6.secret
ctl add_key provider=openai key=@k6.secret >/dev/null
run revoke-o "$REKEY" revoke $O --from-stdin <k6.secret
[ $rc -eq 0 ] || { cat revoke-o.err; fail "revoke of a person's key"; }
[ "$(state_of $O)" = action-required ] || fail "revoke of a person's key opened no item at once"
run status-rv "$REKEY" status
grep -q "https://platform.openai.com/api-keys" status-rv.out || fail "the revoke's item does not name the console"
run revoke-a "$REKEY" revoke $A --from-stdin <a3.secret
[ $rc -eq 0 ] || { cat revoke-a.err; fail "revoke of the Anthropic key"; }
a2id=$(known a2.secret id)
[ "$(state 'S["deactivated"][-1]')" = "$a2id" ] || fail "revoke did not set the old Anthropic key inactive at once"

# ---- through the API (the CLI as a client of a dev server): the key in the rotate body ----
aport=$(free_port)
TOK="pk-root-$$-$RANDOM$RANDOM"
(unset REKEY_STORE REKEY_KEY_FILE; REKEY_DEV_ROOT_TOKEN_ID="$TOK" exec "$REKEY" server -dev \
  -config "$dir/rekey.yaml" -dev-listen-address "127.0.0.1:$aport" >api-server.log 2>&1) &
api_pid=$!
trap 'kill $api_pid 2>/dev/null || true; stop_server' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$aport") 2>/dev/null && break
  sleep 0.1
done
mkkey sk-proj- 150 k7.secret
ctl add_key provider=openai key=@k7.secret >/dev/null
export REKEY_ADDR=http://127.0.0.1:$aport REKEY_TOKEN=$TOK
run api-status "$REKEY" status --json
$PY - <<'PY' || fail "needs_input per entry"
import json
st = {e["path"]: e for e in json.load(open("api-status.out"))}
assert st["secret/gw/openai"]["needs_input"] is True, st["secret/gw/openai"]
assert st["secret/gw/xai"]["needs_input"] is False, st["secret/gw/xai"]
PY
run api-refused "$REKEY" rotate $O --from-file bad-admin.secret
[ $rc -ne 0 ] || fail "the API accepted an admin key"
grep -q "OpenAI admin key" api-refused.err || { cat api-refused.err; fail "the API's refusal does not say why"; }
run api-rot "$REKEY" rotate $O --from-file k7.secret
[ $rc -eq 0 ] || { cat api-rot.out api-rot.err; fail "a key through the API was not promoted"; }
[ "$("$REKEY" kv get -field=api_key $O)" = "$(cat k7.secret)" ] || fail "the API did not store the key"
unset REKEY_ADDR REKEY_TOKEN
kill $api_pid 2>/dev/null || true
wait $api_pid 2>/dev/null || true
trap 'stop_server' EXIT

# ---- no key anywhere but in the store and the consumers ----
for p in $OA $X; do
  n=$(current $p)
  for v in $(seq 1 "$n"); do "$REKEY" kv get -version=$v -field=api_key $p >minted-${p//\//_}-$v.secret 2>/dev/null || true; done
done
ls hook-env.*.out hook-ps.*.out >/dev/null || fail "the probe hook did not run"
vals=()
for f in *.secret; do
  case $f in cur.secret | consumer-*.secret) continue ;; esac
  v=$(cat "$f")
  [ ${#v} -ge 20 ] && vals+=("${v//$'\n'/}")
done
for f in bad-space bad-newline bad-tab bad-escape bad-ctrl; do
  # the refused keys' halves around the bad byte
  $PY -c 'import sys; v=open(sys.argv[1]+".secret").read(); print(v[:50]); print(v[-60:])' $f >$f.parts.secret
  while IFS= read -r part; do vals+=("$part"); done <$f.parts.secret
done
[ ${#vals[@]} -ge 40 ] || fail "too few values to search for (${#vals[@]})"
for v in "${vals[@]}"; do
  hits=$(grep -rlaF --exclude='*.secret' --exclude=last.out -- "$v" . 2>/dev/null || true)
  [ -z "$hits" ] || { echo "$hits"; fail "a key was found in plaintext"; }
done
echo ok
