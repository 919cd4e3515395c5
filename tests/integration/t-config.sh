# The configuration: errors name file:line:col; lint reports what a reviewer would catch.
. "$REKEY_TOP/tests/integration/lib.sh"
init_store
sum=$(sha256sum store.db*)
unchanged() { [ "$(sha256sum store.db*)" = "$sum" ] || fail "store changed after: $*"; }

good_head='version: 1
secrets:
  - path: secret/app/one
    kind: manual
    every: 30d'

# bad_config NAME 'yaml' 'file:line:col' 'words': lint and a store command both refuse it
# with a message naming the place; a kv put with that config writes nothing.
bad_config() {
    local name=$1 yaml=$2 where=$3 words=$4
    printf '%s\n' "$yaml" >"$name.yaml"
    expect_exit 3 "$REKEY" -c "$name.yaml" lint
    expect_in last.err "$name.yaml:$where"
    expect_in last.err "$words"
    expect_exit 3 "$REKEY" -c "$name.yaml" status
    expect_in last.err "$name.yaml:$where"
    expect_exit 3 "$REKEY" -c "$name.yaml" kv put secret/app/one value=not-written
    unchanged "kv put with $name.yaml"
    expect_exit 3 env REKEY_CONFIG="$name.yaml" "$REKEY" lint
    expect_in last.err "$name.yaml:$where"
}

bad_config malformed "$good_head
  - path: secret/app/two
    kind: [manual" 8:1 "YAML"
bad_config tabs "version: 1
secrets:
	- path: secret/app/one" 3:1 "tab"
bad_config unknown-key "$good_head
    colour: red" 6:5 "unknown key 'colour'"
bad_config unknown-top "$good_head
storage:
  path: x.db" 6:1 "storage"
bad_config bad-duration "version: 1
secrets:
  - path: secret/app/one
    kind: manual
    every: 30x" 5:12 "bad duration '30x'"
bad_config neg-duration "version: 1
secrets:
  - path: secret/app/one
    kind: manual
    every: -5d" 5:12 "-5d"
bad_config bad-path "version: 1
secrets:
  - path: secret/../one
    kind: manual
    every: 30d" 3: "'..'"
bad_config unknown-kind "version: 1
secrets:
  - path: secret/app/one
    kind: quantum
    every: 30d" 4: "quantum"
bad_config no-kind "version: 1
secrets:
  - path: secret/app/one
    every: 30d" 3: "kind"
bad_config unknown-hook "$good_head
    reload: [nope]" 6: "nope"
# A duplicate path is refused by the loader already (lint never sees the file).
bad_config duplicate "$good_head
  - path: secret/app/two
    kind: manual
    every: 30d
  - path: secret/app/one
    kind: manual
    every: 60d" 9:5 "duplicate path 'secret/app/one' (first defined at line 3)"
bad_config bad-version "version: 7
secrets: []" 1: "version"

# A NUL byte inside a path (it cannot be given in argv, but a file can hold it).
printf 'version: 1\nsecrets:\n  - path: "secret/a\\0b"\n    kind: manual\n    every: 30d\n' \
    >nul.yaml
expect_exit 3 "$REKEY" -c nul.yaml lint
expect_in last.err "nul.yaml:3:"
# A missing file and a directory.
expect_exit 3 "$REKEY" -c missing.yaml lint
expect_in last.err "missing.yaml"
mkdir adir.yaml
expect_exit 3 "$REKEY" -c adir.yaml lint
expect_in last.err "adir.yaml"
# No config at all for a command that needs one.
expect_exit 3 "$REKEY" status
expect_in last.err "rekey.yaml"
unchanged "bad configs"

# ---- lint ----
expect_exit 0 "$REKEY" -c "$REKEY_TOP/examples/ai-gateway.yaml" lint
expect_in last.out "0 errors"
expect_in last.out "9 secrets"
expect_exit 0 "$REKEY" -c "$REKEY_TOP/examples/minimal.yaml" lint

cat >lintme.yaml <<'EOF'
version: 1
hooks:
  never-used:
    type: exec
    command: [/bin/true]
  leaky-file:
    type: file
    path: /tmp/x.env
    template: "X={{new}}\n"
    mode: "0644"
secrets:
  - path: secret/app/one
    kind: manual
    every: 30d
    reload: [leaky-file]
  - path: pki/short
    kind: certificate
    common_name: a.example.com
    ttl: 30d
    renew_before: 40d
    every: 20d
  - path: secret/app/graceless
    kind: manual
    every: 1d
    grace: 2d
EOF
expect_exit 1 "$REKEY" -c lintme.yaml lint
expect_in last.out "hook 'never-used' is defined but no secret uses it"
expect_in last.out "warning"
expect_in last.out "renew_before 40d is not shorter than ttl 30d"
expect_in last.out "mode 0644"
expect_in last.out "grace 2d is not shorter than every 1d"
grep -qE 'lintme.yaml: 3 secrets, 2 hooks: [3-9] errors, 1 warning' last.out ||
    fail "lint summary: $(tail -1 last.out)"

# Warnings alone exit 0.
cat >warn.yaml <<'EOF'
version: 1
hooks:
  spare:
    type: exec
    command: [/bin/true]
secrets:
  - path: secret/app/one
    kind: manual
    every: 30d
EOF
expect_exit 0 "$REKEY" -c warn.yaml lint
expect_in last.out "0 errors, 1 warning"
unchanged "lint"
echo "config: ok"
