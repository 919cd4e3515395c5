# kv put/get/list/metadata end to end, then no value may be found in plaintext on disk.
. "$REKEY_TOP/tests/integration/lib.sh"
init_store

# Values shaped like the real ones, and awkward ones. Each is unique so a find means a leak.
OPENAI='sk-proj-Ab3_dE-fG7_hIjK-lMnO_pQ9rS'
ANTHROPIC='sk-ant-api03-xYz_1234-ABCD_efgh-5678_ijkl-AA'
XAI='xai-QwErTy123456-uiop_ASDF'
EQ='a=b==c=d-eq-value'
SPACES='pass word with   spaces inside'
UNICODE='пароль-秘密-🔑-clé'
DASH='-starts-with-dash'
STDIN_VAL='from-stdin-9f8e7d6c5b4a'
FILE_VAL='from-file-0a1b2c3d4e5f'

# Round trip of one field, and -field prints the raw value.
expect_exit 0 "$REKEY" kv put secret/ai-gateway/providers/openai api_key="$OPENAI"
expect_in last.out "secret/ai-gateway/providers/openai"
expect_in last.out "hmac:"
expect_not_in last.out "$OPENAI" # put never prints values
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/openai
[ "$(cat last.out)" = "$OPENAI" ] || fail "kv get -field returned '$(cat last.out)'"
expect_exit 0 "$REKEY" kv get secret/ai-gateway/providers/openai
expect_in last.out "$OPENAI"
expect_in last.out "api_key"

# field=- reads stdin (one trailing newline dropped).
echo "$STDIN_VAL" | expect_exit 0 "$REKEY" kv put secret/ai-gateway/providers/anthropic api_key=-
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/anthropic
[ "$(cat last.out)" = "$STDIN_VAL" ] || fail "field=- stored '$(cat last.out)'"
# field=@file.
printf '%s\n' "$FILE_VAL" >v.secret
expect_exit 0 "$REKEY" kv put secret/ai-gateway/providers/xai api_key=@v.secret
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/xai
[ "$(cat last.out)" = "$FILE_VAL" ] || fail "field=@file stored '$(cat last.out)'"
expect_exit 3 "$REKEY" kv put secret/ai-gateway/providers/xai api_key=@missing.secret
expect_in last.err "missing.secret"

# Versions: a second put makes version 2; -version reads either.
expect_exit 0 "$REKEY" kv put secret/ai-gateway/providers/anthropic api_key="$ANTHROPIC"
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/anthropic
[ "$(cat last.out)" = "$ANTHROPIC" ] || fail "current version is not the latest put"
expect_exit 0 "$REKEY" kv get -version=1 -field=api_key secret/ai-gateway/providers/anthropic
[ "$(cat last.out)" = "$STDIN_VAL" ] || fail "-version=1 returned '$(cat last.out)'"
expect_exit 0 "$REKEY" kv get -version 2 -field=api_key secret/ai-gateway/providers/anthropic
[ "$(cat last.out)" = "$ANTHROPIC" ] || fail "-version 2 returned '$(cat last.out)'"
expect_exit 3 "$REKEY" kv get -version=7 secret/ai-gateway/providers/anthropic
expect_exit 2 "$REKEY" kv get -version=abc secret/ai-gateway/providers/anthropic

# Several fields, with '-', '_', '=', spaces, unicode and a leading dash.
expect_exit 0 "$REKEY" kv put secret/ai-gateway/misc a="$EQ" b="$SPACES" c="$UNICODE" \
    d="$DASH" e="$XAI"
for f in a:"$EQ" b:"$SPACES" c:"$UNICODE" d:"$DASH" e:"$XAI"; do
    expect_exit 0 "$REKEY" kv get -field="${f%%:*}" secret/ai-gateway/misc
    [ "$(cat last.out)" = "${f#*:}" ] || fail "field ${f%%:*}: got '$(cat last.out)', want '${f#*:}'"
done
expect_exit 0 "$REKEY" kv get -format=json secret/ai-gateway/misc
python3 -c '
import json, sys
d = json.load(open("last.out"))["data"]
want = dict(zip("abcde", sys.argv[1:]))
assert d["data"] == want, (d["data"], want)
assert d["metadata"]["version"] == 1, d["metadata"]
' "$EQ" "$SPACES" "$UNICODE" "$DASH" "$XAI" || fail "kv get -format=json does not round-trip"
expect_exit 3 "$REKEY" kv get -field=nope secret/ai-gateway/misc
expect_exit 2 "$REKEY" kv put secret/ai-gateway/misc a=1 a=2
expect_in last.err "twice"
expect_exit 2 "$REKEY" kv put secret/ai-gateway/misc novalue
expect_in last.err "field=value"

# list: folders end with '/'.
expect_exit 0 "$REKEY" kv list secret/ai-gateway
expect_in last.out "providers/"
expect_in last.out "misc"
expect_exit 0 "$REKEY" kv list -format=json secret/ai-gateway/providers
python3 -c 'import json; assert json.load(open("last.out")) == ["anthropic", "openai", "xai"]' ||
    fail "kv list -format=json: $(cat last.out)"
expect_exit 0 "$REKEY" kv list secret/ai-gateway/providers/
expect_in last.out "openai"
expect_exit 1 "$REKEY" kv list secret/nothing-here
expect_in last.err "No value found"

# metadata: versions and stages.
expect_exit 0 "$REKEY" kv metadata secret/ai-gateway/providers/anthropic
expect_in last.out "current_version        2"
expect_in last.out "previous"
expect_in last.out "current"
expect_exit 0 "$REKEY" kv metadata get -format=json secret/ai-gateway/providers/anthropic
python3 -c '
import json
m = json.load(open("last.out"))
assert m["latest_version"] == 2 and m["current_version"] == 2, m
assert sorted(m["versions"]) == ["1", "2"], m["versions"]
' || fail "kv metadata -format=json: $(cat last.out)"
expect_exit 3 "$REKEY" kv metadata secret/ai-gateway/none

# cas: 0 on an existing path conflicts and writes nothing; the right version succeeds.
sum=$(sha256sum store.db*)
expect_exit 3 "$REKEY" kv put -cas=0 secret/ai-gateway/providers/openai api_key=cas-lost-value
expect_in last.err "check-and-set"
[ "$(sha256sum store.db*)" = "$sum" ] || fail "a failed cas changed the store"
expect_exit 3 "$REKEY" kv put -cas=5 secret/ai-gateway/providers/openai api_key=cas-lost-value
expect_exit 0 "$REKEY" kv put -cas=1 -reason="quarterly rotation" secret/ai-gateway/providers/openai \
    api_key="$OPENAI-v2"
expect_exit 0 "$REKEY" kv put -cas=0 secret/ai-gateway/new-path k=cas-new-value
expect_exit 0 "$REKEY" kv metadata secret/ai-gateway/providers/openai
expect_in last.out "quarterly rotation"

# rotate-keyring: old entries stay readable, new writes work.
expect_exit 0 "$REKEY" operator rotate-keyring
expect_in last.out "term 2"
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/xai
[ "$(cat last.out)" = "$FILE_VAL" ] || fail "a value written before rotate-keyring is lost"
expect_exit 0 "$REKEY" kv put secret/after/keyring k=after-keyring-value
expect_exit 0 "$REKEY" kv get -field=k secret/after/keyring
[ "$(cat last.out)" = after-keyring-value ] || fail "write after rotate-keyring"

# Nothing above may be readable in the store, its WAL or SHM, or any other file left here (the
# log backend keeps every value ever written, overwritten ones too, in its file).
: >last.out
ls store.db* >/dev/null || fail "no store file"
assert_no_plaintext "$OPENAI" "$ANTHROPIC" "$XAI" "$EQ" "$SPACES" "$UNICODE" "$DASH" \
    "$STDIN_VAL" "$FILE_VAL" "$OPENAI-v2" cas-new-value after-keyring-value
# Also while a WAL is around: a sqlite3 reader holding a read transaction stops the last writer
# from checkpointing and removing store.db-wal, so the new version sits in the WAL when we look.
# (The log backend has no WAL: its one file, searched above, holds every record.)
if sqlite_only "no WAL file to search" && command -v sqlite3 >/dev/null; then
    mkfifo hold
    sqlite3 store.db <hold >/dev/null 2>&1 &
    holder=$!
    exec 9>hold
    echo 'BEGIN; SELECT count(*) FROM kv;' >&9
    sleep 0.2
    expect_exit 0 "$REKEY" kv put secret/wal/check k=wal-phase-value-77
    [ -s store.db-wal ] || echo "note: no WAL file to search (it was checkpointed)"
    assert_no_plaintext wal-phase-value-77
    exec 9>&-
    wait "$holder" || true
fi
echo "kv: ok"
