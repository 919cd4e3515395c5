# Damaged stores: corrupted, truncated, garbage, newer format, tampered ciphertext. Each gives a
# clear error, a nonzero exit, and leaves the file as it was.
. "$REKEY_TOP/tests/integration/lib.sh"
init_store
for i in $(seq 1 40); do
    printf 'value-%02d-%s\n' "$i" "$(head -c 300 /dev/zero | tr '\0' x)" >v.secret
    "$REKEY" kv put "secret/load/k$i" v=@v.secret >/dev/null || fail "loading k$i"
done
expect_exit 0 "$REKEY" kv get -field=v secret/load/k7
size=$(stat -c %s store.db)
[ "$size" -ge 16384 ] || fail "test bug: store is only $size bytes"
cp store.db pristine.db

# try_store FILE REGEX: kv get, kv put and operator init against FILE all fail with a message
# matching REGEX (grep -E, case-insensitive), and FILE's bytes (and any -wal/-shm) are unchanged.
try_store() {
    local f=$1 words=$2 before
    before=$(sha256sum "$f"*)
    expect_exit 3 env REKEY_STORE="sqlite:$PWD/$f" "$REKEY" kv get secret/load/k7
    grep -qiE -- "$words" last.err || fail "kv get on $f: '$words' not in: $(cat last.err)"
    expect_in last.err "$f"
    expect_exit 3 env REKEY_STORE="sqlite:$PWD/$f" "$REKEY" kv put secret/load/k7 v=new
    grep -qiE -- "$words" last.err || fail "kv put on $f: '$words' not in: $(cat last.err)"
    expect_exit 3 env REKEY_STORE="sqlite:$PWD/$f" "$REKEY" operator init -key-file="$PWD/$f.key"
    [ ! -e "$f.key" ] || fail "operator init on a damaged store wrote a key file"
    [ "$(sha256sum "$f"*)" = "$before" ] || fail "a command changed the damaged store $f"
}

# Garbage in a new file.
head -c 65536 /dev/urandom >garbage.db
try_store garbage.db "corrupted or not a rekey store"
# A text file.
echo "hello, I am not a database" >text.db
try_store text.db "corrupted or not a rekey store"
# Truncated: half of the store, and a tail cut off at an odd length.
head -c $((size / 2)) pristine.db >half.db
try_store half.db "corrupted or not a rekey store"
head -c $((size - 1000)) pristine.db >cut.db
try_store cut.db "corrupted"
# Bytes overwritten in the middle (every page from the second on).
cp pristine.db mid.db
dd if=/dev/urandom of=mid.db bs=1 seek=$((size / 2)) count=4096 conv=notrunc 2>/dev/null
# (A write that meets the damaged page says "database disk image is malformed".)
try_store mid.db "corrupted|malformed"
# An empty file is a new store: init works on it (not an error), and it was not a store before.
: >empty.db
expect_exit 0 env REKEY_STORE="sqlite:$PWD/empty.db" "$REKEY" operator init -key-file="$PWD/e.key"

# A store written by a newer format version: core/format is the only plaintext row.
cp pristine.db newer.db
command -v sqlite3 >/dev/null || fail "sqlite3 (the CLI) is needed"
[ "$(sqlite3 newer.db "SELECT CAST(value AS TEXT) FROM kv WHERE key = 'core/format'")" = \
    '{"format":1}' ] || fail "test bug: core/format is not {\"format\":1}"
sqlite3 newer.db "UPDATE kv SET value = CAST('{\"format\":99}' AS BLOB) WHERE key = 'core/format'"
try_store newer.db "upgrade rekey"
expect_in last.err "format 99"
# A format record that does not parse.
cp pristine.db badfmt.db
sqlite3 badfmt.db "UPDATE kv SET value = CAST('{\"format\":\"x\"' AS BLOB) WHERE key = 'core/format'"
try_store badfmt.db "core/format does not parse"

# Tampered ciphertext of one secret: that read fails authentication, others still work.
cp pristine.db tamper.db
sqlite3 tamper.db "UPDATE kv SET value = CAST(substr(value, 1, 20) || zeroblob(8) || substr(value, 29) AS BLOB) WHERE key LIKE 'kv/data/secret/load/k7@%'"
before=$(sha256sum tamper.db*)
expect_exit 3 env REKEY_STORE="sqlite:$PWD/tamper.db" "$REKEY" kv get secret/load/k7
grep -qiE 'corrupt|authentic|tamper' last.err || fail "tampered value: unclear error: $(cat last.err)"
expect_exit 0 env REKEY_STORE="sqlite:$PWD/tamper.db" "$REKEY" kv get -field=v secret/load/k8
expect_in last.out "value-08-"
[ "$(sha256sum tamper.db*)" = "$before" ] || fail "reads changed the tampered store"
# A value moved to another key (AAD = storage key): refused too.
cp pristine.db swap.db
sqlite3 swap.db "UPDATE kv SET value = (SELECT value FROM kv WHERE key LIKE 'kv/data/secret/load/k8@%') WHERE key LIKE 'kv/data/secret/load/k7@%'"
expect_exit 3 env REKEY_STORE="sqlite:$PWD/swap.db" "$REKEY" kv get secret/load/k7
grep -qiE 'corrupt|authentic|tamper' last.err || fail "swapped value: unclear error: $(cat last.err)"
# The keyring itself tampered: the unseal fails clearly.
cp pristine.db keyring.db
sqlite3 keyring.db "UPDATE kv SET value = CAST(substr(value, 1, 30) || zeroblob(4) || substr(value, 35) AS BLOB) WHERE key = 'core/keyring'"
expect_exit 3 env REKEY_STORE="sqlite:$PWD/keyring.db" "$REKEY" kv get secret/load/k8
grep -qiE 'corrupt|authentic|does not open' last.err || fail "keyring: unclear error: $(cat last.err)"

# The original still works after all this.
expect_exit 0 "$REKEY" kv get -field=v secret/load/k40
expect_in last.out "value-40-"
echo "store: ok"
