# docs/runbook.md as written: every `sh` block of the runbook runs, in order, against the example
# inventory (examples/ai-gateway.yaml) with its consumers made local by scripts/dev/inventory
# (kubectl and LiteLLM stand-ins; the LiteLLM one with --models-in-db, so the master key's
# /key/regenerate must run before the restart), the providers' APIs served by
# tests/provider-server.py, and a real Redis and PostgreSQL on loopback (scripts/services). A
# `<!-- t-runbook: … -->` comment before a block says what the world does meanwhile (8 days
# pass, the provider answers 503, a person answers at a terminal: then each line runs on a pty
# and the prompts are answered); the YAML blocks of "Letting rekey make the keys" replace the
# example's entries. Then the claims around the blocks are checked (the console URL shown before
# the prompt, pending then promoted, the action items, the admin APIs deleting exactly the old
# keys, "8 rotated, 0 failed, 0 pending, 0 skipped"), and no key or password appears in any
# output, log or transcript of the run.
source "$REKEY_TOP/tests/integration/lib.sh"
SRV=$REKEY_TOP/tests/provider-server.py
SVC=$REKEY_TOP/scripts/services
PGBIN=/usr/lib/postgresql/15/bin
command -v redis-server >/dev/null || fail "redis-server is not installed (scripts/deps)"
[ -x $PGBIN/postgres ] || fail "PostgreSQL 15 is not installed (scripts/deps)"
dir=$PWD
pport=$(free_port) gport=$(free_port) rport=$(free_port) pgport=$(free_port)
mkdir -p bin
ln -s "$REKEY" bin/rekey
export PATH=$dir/bin:$PATH
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$SVC" stop redis "$dir/redis" 2>/dev/null || true
  "$SVC" stop postgres "$dir/pg" 2>/dev/null || true
}
trap 'rc=$?; cleanup; [ $rc -eq 0 ] || show_block; exit $rc' EXIT
block=""
show_block() {
  [ -n "$block" ] || return 0
  echo "--- while running $block:"; cat "$block"
  echo "--- its output:"; cat "$block.out" "$block.err" 2>/dev/null | tail -40
}

# ---- the keys and passwords of the run (files named as in the runbook) ----
$PY "$SRV" serve "$pport" "$dir/provider-state.json" 2>>"$dir/provider.log" &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && break; sleep 0.1; done
ctl() { $PY "$SRV" ctl "$pport" "$@"; }
state() { $PY "$SRV" query "$pport" "$1"; }
mkkey() {
  $PY -c 'import secrets,sys; a="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
k=sys.argv[1]+"".join(secrets.choice(a) for _ in range(int(sys.argv[2]))); open(sys.argv[3],"w").write(k+"\n")' "$1" "$2" "$3"
  cp "$3" "keys/$3.$(date +%s%N).secret"   # every value of the run, for the search at the end
}
mkhex() { $PY -c 'import secrets,sys; open(sys.argv[2],"w").write(sys.argv[1]+secrets.token_hex(32)+"\n")' "$1" "$2"; cp "$2" "keys/$2.$(date +%s%N).secret"; }
mkdir -p keys
# provider: the key a person makes at the console, registered with the stand-in provider
person_key() { mkkey "$2" "$3" "$4"; ctl add_key provider="$1" key=@"$4" >/dev/null; }
person_key openai sk-proj- 156 current-openai-key
person_key anthropic sk-ant-api03- 95 current-anthropic-key
person_key xai xai- 80 current-xai-key
person_key openai sk-proj- 140 tty-openai-key
person_key anthropic sk-ant-api03- 108 new-anthropic-key
person_key xai xai- 120 new-xai-key
person_key openai sk-svcacct- 130 new-openai-key
mkhex sk-litellm- current-master-key
$PY -c 'import sys; v=open("current-master-key").read().strip(); open("current-master-key","w").write(v[:11+48]+"\n")'
cp current-master-key keys/current-master-key.trimmed.secret
mkhex "" current-redis-password
mkhex "" redis-rekey-password

# ---- the world: provider APIs, LiteLLM, Redis, PostgreSQL ----
"$REKEY_TOP/scripts/dev/inventory" "$REKEY_TOP/examples/ai-gateway.yaml" "$dir/example.yaml" "$dir" "$gport"
# The LiteLLM stand-in runs with today's master key, its credentials encrypted under it.
printf 'LITELLM_MASTER_KEY=%s\n' "$(cat current-master-key)" >etc/litellm/master-key.env
chmod 600 etc/litellm/master-key.env
$PY "$REKEY_TOP/scripts/dev/litellm" --models-in-db etc/litellm/master-key.env "$gport" \
  "$dir/kubectl.log" 2>>"$dir/litellm.log" &
pids+=($!)
mkdir -p redis
$PY - "$dir/redis/users.acl" <<'PY'
import hashlib, sys
h = lambda f: hashlib.sha256(open(f).read().strip().encode()).hexdigest()
open(sys.argv[1], "w").write(
    "user default on nopass ~* &* +@all\n"
    "user rekey on #%s ~* &* +@all\n"
    "user litellm on #%s ~* &* +@all\n" % (h("redis-rekey-password"), h("current-redis-password")))
PY
"$SVC" start redis "$dir/redis" "$rport" --aclfile "$dir/redis/users.acl" >/dev/null
export PG_ADMIN_PASSWORD_FILE=$dir/postgres-rekey-password
"$SVC" start postgres "$dir/pg" "$pgport" >/dev/null
cp postgres-rekey-password keys/postgres-rekey-password.secret
$PGBIN/psql -X -q -At -h "$dir/pg/pg/run" -p "$pgport" -U rekey_admin -d postgres \
  -c "CREATE DATABASE litellm" -c "CREATE ROLE litellm_rw NOLOGIN" -c "CREATE ROLE litellm_ro NOLOGIN"
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break
  sleep 0.1
done

# inventory [RUNBOOK]: ai-gateway.yaml from example.yaml, its services on loopback; with RUNBOOK,
# the runbook's YAML entries replace the example's of the same path.
inventory() {
  $PY - "$dir/example.yaml" "$dir/ai-gateway.yaml" "$pport" "$rport" "$pgport" "${1:-}" <<'PY'
import re, sys
src, dest, pport, rport, pgport, runbook = sys.argv[1:7]
text = open(src).read()
text = text.replace('address: "127.0.0.1:1"', 'address: "127.0.0.1:%s"' % rport)
text = text.replace("host=127.0.0.1 port=1 ", "host=127.0.0.1 port=%s " % pgport)
if runbook:
    blocks = re.findall(r"```yaml\n(.*?)```", open(runbook).read(), re.S)
    for b in blocks:
        path = re.match(r"- path: (\S+)", b).group(1)
        entry = "".join("  " + l + "\n" for l in b.rstrip("\n").split("\n"))
        pat = re.compile(r"  - path: %s\n(?:    .*\n|\n)*?(?=\n|  #|  - path:)" % re.escape(path))
        assert pat.search(text), path
        text = pat.sub(lambda m: entry, text, count=1)
# The providers' APIs: the stand-in on loopback.
out = []
for line in text.split("\n"):
    out.append(line)
    m = re.match(r"(\s+)provider: (\w+)$", line)
    if m:
        out.append("%sbase_url: http://127.0.0.1:%s" % (m.group(1), pport))
        if m.group(2) == "xai":
            out.append("%smanagement_base_url: http://127.0.0.1:%s" % (m.group(1), pport))
open(dest, "w").write("\n".join(out))
PY
}
inventory

# ---- the runbook's blocks, in order ----
$PY - "$REKEY_TOP/docs/runbook.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
n = 0
for m in re.finditer(r"(?:<!-- t-runbook: (.*?) -->\n)?```sh\n(.*?)```", text, re.S):
    n += 1
    open("block-%02d.sh" % n, "w").write(m.group(2))
    open("block-%02d.note" % n, "w").write(m.group(1) or "")
PY
# A person at a terminal: each line on a pty, prompts answered from files (never echoed back).
cat >ptydrive.py <<'PY'
import os, pty, re, select, sys, time
transcript, rest = sys.argv[1], sys.argv[2:]
i = rest.index("--")
rules = [(re.compile(r.split("=>")[0]), r.split("=>")[1]) for r in rest[:i]]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(rest[i + 1], rest[i + 1:])
buf, pos, out, deadline = b"", 0, open(transcript, "ab"), time.time() + 600
while time.time() < deadline:
    if not select.select([fd], [], [], 1)[0]:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out.write(data)
    out.flush()
    buf += data
    for pat, ans in rules:
        if pat.search(buf[pos:].decode("utf-8", "replace")):
            value = ans[1:] if ans.startswith(":") else open(ans).read().strip()
            time.sleep(0.3)  # the reader drops what was typed before its prompt
            os.write(fd, value.encode() + b"\n")
            pos = len(buf)
            break
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
PY
# at_terminal BLOCK RULE…: runs each line of BLOCK at a terminal.
at_terminal() {
  local b=$1 line
  shift
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    echo "\$ $line" >>"$b.out"
    $PY ptydrive.py "$b.out" "$@" -- bash -c "$line" || return 1
  done <"$b"
}
export REKEY_NOW=$(date +%s)
days_later() { REKEY_NOW=$((REKEY_NOW + $1 * 86400)); export REKEY_NOW; }
P=secret/ai-gateway/providers
for note in block-*.note; do
  block=${note%.note}.sh
  what=$(cat "$note")
  code=$(cat "$block"; echo .)
  code=${code%.}
  # What happens in the world around this block.
  case $what in
    *"8 days later"*) days_later 8 ;;
    *"everything is due"*) days_later 100 ;;
  esac
  case $what in
    *"answers 503"*) ctl mode mode=503 only=/v1/api-key count=1 >/dev/null ;;
    *"replace the example's"*)
      inventory "$REKEY_TOP/docs/runbook.md"
      mkkey sk-admin- 140 openai-admin-key
      mkkey xai- 100 xai-management-key
      mkkey sk-ant-admin01- 120 anthropic-admin-key
      ctl add_admin provider=openai key=@openai-admin-key >/dev/null
      ctl add_admin provider=xai key=@xai-management-key >/dev/null
      ctl add_admin provider=anthropic key=@anthropic-admin-key >/dev/null
      ctl set propagation=2 >/dev/null
      ;;
  esac
  case $code in
    # The second use of new-anthropic-key is a new key from the console.
    *"revoke $P/anthropic --from-file new-anthropic-key"*) person_key anthropic sk-ant-api03- 140 new-anthropic-key ;;
  esac
  if [[ $what == *"at a terminal"* ]]; then
    person_key anthropic sk-ant-api03- 120 tty-anthropic-key
    at_terminal "$block" 'Rotate [0-9]+ secrets? now\?=>:y' \
      "New value for $P/openai \(not echoed\)=>tty-openai-key" \
      "Repeat the new value for $P/openai=>tty-openai-key" \
      "New value for $P/anthropic \(not echoed\)=>tty-anthropic-key" \
      "Repeat the new value for $P/anthropic=>tty-anthropic-key" 2>"$block.err"
  else
    source "$block" >"$block.out" 2>"$block.err"
  fi
  # What the text around the block says, checked.
  case $code in
    "rekey rotate $P/openai"$'\n')
      expect_in "$block.out" "create a new OpenAI API key at https://platform.openai.com/api-keys"
      expect_in "$block.out" "New value for $P/openai (not echoed)"
      expect_in "$block.out" "rotated v1 -> v2"
      [ "$(rekey kv get -field=api_key $P/openai)" = "$(cat tty-openai-key)" ] || fail "the typed key is not current"
      ;;
    *"$P/xai --from-file new-xai-key || rekey status"*)
      expect_in "$block.err" "stays pending"
      expect_in "$block.out" "target unavailable"
      [ "$(rekey kv get -field=api_key $P/xai)" = "$(cat new-xai-key)" ] || fail "the pending xAI key was not promoted later"
      ;;
    *"rekey revoke $P/openai --from-file new-openai-key"*)
      expect_in "$block.out" "revoke the old OpenAI key at https://platform.openai.com/api-keys"
      expect_in "$block.out" "revoke"
      ;;
    *"rekey rotate $P/xai"$'\n'*)
      sa1=$(state 'S["created"][0]')
      ;;
    *"rekey revoke $P/openai"$'\n'*)
      [ "$(state '[d for d in S["deleted"] if d.startswith("svc_acct_")]')" = "['$sa1']" ] || { state 'S["deleted"]'; fail "the revoke did not delete exactly the old service account"; }
      [ "$(state 'len([d for d in S["deleted"] if not d.startswith("svc_acct_")])')" = 1 ] || fail "the revoke did not delete the old xAI key"
      [ "$(state 'len(S["deactivated"])')" = 1 ] || fail "the revoke did not set the old Anthropic key inactive"
      ;;
    "rekey rotate --due"$'\n'*)
      expect_in "$block.out" "Rotate 8 secrets now? [y/N]"
      expect_in "$block.out" "create a new Anthropic API key at https://console.anthropic.com/settings/keys"
      expect_in "$block.out" "8 rotated, 0 failed, 0 pending, 0 skipped"
      ! grep -q "New value for $P/openai\|New value for $P/xai" "$block.out" || fail "an admin-API entry asked a person"
      ;;
  esac
done
[ "$(ls block-*.sh | wc -l)" -ge 10 ] || fail "the runbook's blocks were not found"
block=""

# The cron form the runbook names: the automatic ones, the person's listed.
days_later 100
expect_exit 0 rekey rotate --due --yes
expect_in last.out "$P/anthropic: skipped"
cp last.out cron.out

# ---- no key or password anywhere but in the store (encrypted), the consumers and the files
# that hand them over ----
vals=()
for f in keys/*.secret; do vals+=("$(tr -d '\n' <"$f")"); done
for p in $P/openai $P/xai; do
  n=$(rekey kv metadata -format=json "$p" | $PY -c 'import json,sys; print(json.load(sys.stdin)["current_version"])')
  for v in $(seq 1 "$n"); do vals+=("$(rekey kv get -version=$v -field=api_key $p)"); done
done
for v in $(seq 1 "$(rekey kv metadata -format=json secret/ai-gateway/litellm/master-key | $PY -c 'import json,sys; print(json.load(sys.stdin)["current_version"])')"); do
  vals+=("$(rekey kv get -version=$v -field=key secret/ai-gateway/litellm/master-key)")
done
n=$(rekey kv metadata -format=json secret/ai-gateway/redis/auth | $PY -c 'import json,sys; print(json.load(sys.stdin)["current_version"])')
for v in $(seq 1 "$n"); do vals+=("$(rekey kv get -version=$v -field=password secret/ai-gateway/redis/auth)"); done
[ ${#vals[@]} -ge 25 ] || fail "too few values to search for (${#vals[@]})"
for v in "${vals[@]}"; do
  [ ${#v} -ge 16 ] || fail "a value to search for is too short"
  hits=$(grep -rlaF --exclude='*.secret' --exclude='last.out' --exclude-dir=etc \
    --exclude-dir=keys --exclude='*-key' --exclude='*-password' --exclude=users.acl -- "$v" . \
    2>/dev/null || true)
  [ -z "$hits" ] || { echo "$hits"; fail "a key or password was found in plaintext"; }
done
echo ok
