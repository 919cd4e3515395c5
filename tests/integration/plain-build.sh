# The plain build (build/, what `make run` ships) must not honour the test switches
# (util/testsw.h): with REKEY_NOW, REKEY_FAULT and REKEY_CRASH_AT set, timestamps are real, store
# writes succeed and a rotation is not killed. Run by scripts/test-all against build/; not a t-*.sh
# because the suite runs on the test build. Usage: REKEY=build/src/cli/rekey bash plain-build.sh
set -euo pipefail
: "${REKEY:?}"
dir=$(mktemp -d /tmp/rekey-plain.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
unset REKEY_ADDR VAULT_ADDR REKEY_TOKEN VAULT_TOKEN REKEY_CONFIG
fail() { echo "FAIL (plain build): $*" >&2; exit 1; }
if "$REKEY" --version | grep -q 'test build'; then fail "rekey --version says this is a test build"; fi
export REKEY_STORE="sqlite:$dir/store.db" REKEY_KEY_FILE="$dir/root.key"
"$REKEY" operator init -key-file="$REKEY_KEY_FILE" >/dev/null
cat >rekey.yaml <<YAML
version: 1
store: { path: $dir/store.db }
secrets:
  - path: secret/app/token
    kind: generated
    format: "tok-{hex:16}"
    every: 30d
YAML
export REKEY_CONFIG=$dir/rekey.yaml
# 2001-09-09: a plain build must keep the real clock.
export REKEY_NOW=1000000000 REKEY_FAULT=put:1 REKEY_CRASH_AT=created
printf 'v' | "$REKEY" kv put secret/app/plain value=- >/dev/null 2>&1 || fail "REKEY_FAULT=put:1 failed a put"
"$REKEY" rotate secret/app/token >rot.out 2>&1 || { cat rot.out; fail "REKEY_CRASH_AT or REKEY_FAULT stopped a rotation"; }
"$REKEY" kv metadata -format=json secret/app/plain >meta.json
year=$(date -u +%Y)
grep -q "\"created_time\": *\"$year-" meta.json || { cat meta.json; fail "REKEY_NOW moved the clock"; }
echo "plain build: test switches ignored"
