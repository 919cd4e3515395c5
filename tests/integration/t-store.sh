# Damaged stores: corrupted, truncated, garbage, newer format, tampered ciphertext. Each gives a
# clear error, a nonzero exit, and leaves the file as it was.
. "$REKEY_TOP/tests/integration/lib.sh"
logstore() { /usr/bin/python3 "$REKEY_TOP/tests/integration/logstore.py" "$@"; }
init_store
for i in $(seq 1 40); do
    printf 'value-%02d-%s\n' "$i" "$(head -c 300 /dev/zero | tr '\0' x)" >v.secret
    "$REKEY" kv put "secret/load/k$i" v=@v.secret >/dev/null || fail "loading k$i"
done
expect_exit 0 "$REKEY" kv get -field=v secret/load/k7
cp store.db pristine.db
if [ "$TEST_BACKEND" = sqlite ]; then
    size=$(stat -c %s store.db)
else
    # A log store is records, then zeros written ahead up to the file's size (whole chunks):
    # what counts here is where the records end.
    size=$(logstore pristine.db end)
fi
[ "$size" -ge 16384 ] || fail "test bug: store is only $size bytes"

# store_sum FILE: the bytes of a store, FILE and any -wal/-shm of SQLite's. (A log store's
# FILE-shm only tells other processes where the records end; it is never synced, and whatever
# opens the store makes it.)
store_sum() {
    if [ "$TEST_BACKEND" = sqlite ]; then sha256sum "$1"*; else sha256sum "$1"; fi
}

# try_store FILE REGEX: kv get, kv put and operator init against FILE all fail with a message
# matching REGEX (grep -E, case-insensitive), and FILE's bytes (and any -wal/-shm) are unchanged.
try_store() {
    local f=$1 words=$2 before
    before=$(store_sum "$f")
    expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/$f")" "$REKEY" kv get secret/load/k7
    grep -qiE -- "$words" last.err || fail "kv get on $f: '$words' not in: $(cat last.err)"
    expect_in last.err "$f"
    expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/$f")" "$REKEY" kv put secret/load/k7 v=new
    grep -qiE -- "$words" last.err || fail "kv put on $f: '$words' not in: $(cat last.err)"
    expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/$f")" "$REKEY" operator init -key-file="$PWD/$f.key"
    [ ! -e "$f.key" ] || fail "operator init on a damaged store wrote a key file"
    [ "$(store_sum "$f")" = "$before" ] || fail "a command changed the damaged store $f"
}

if [ "$TEST_BACKEND" = sqlite ]; then
    notstore="corrupted or not a rekey store" half=$notstore cut="corrupted" mid="corrupted|malformed"
else
    notstore="not a rekey log store" half="truncated|damaged" cut=$half mid="damaged"
fi
# Garbage in a new file.
head -c 65536 /dev/urandom >garbage.db
try_store garbage.db "$notstore"
# A text file.
echo "hello, I am not a database" >text.db
try_store text.db "$notstore"
# Truncated: half of the store, and a tail cut off at an odd length.
head -c $((size / 2)) pristine.db >half.db
try_store half.db "$half"
head -c $((size - 1000)) pristine.db >cut.db
try_store cut.db "$cut"
# Bytes overwritten in the middle (every page from the second on).
cp pristine.db mid.db
dd if=/dev/urandom of=mid.db bs=1 seek=$((size / 2)) count=4096 conv=notrunc 2>/dev/null
# (A write that meets the damaged page says "database disk image is malformed".)
try_store mid.db "$mid"
if [ "$TEST_BACKEND" = log ]; then
    # The log: cut inside the header; and the last record (the last commit, which was
    # acknowledged: kv put exited 0) damaged in place, its tail overwritten.
    head -c 100 pristine.db >hdr.db
    try_store hdr.db "truncated"
    cp pristine.db last.db
    printf 'garbage' | dd of=last.db bs=1 seek=$((size - 7)) conv=notrunc 2>/dev/null
    try_store last.db "$mid"
fi
# An empty file is a new store: init works on it (not an error), and it was not a store before.
: >empty.db
expect_exit 0 env REKEY_STORE="$(store_loc "$PWD/empty.db")" "$REKEY" operator init -key-file="$PWD/e.key"

# Edits of one record, made with the sqlite3 CLI or tests/integration/logstore.py.
if [ "$TEST_BACKEND" = sqlite ]; then
    command -v sqlite3 >/dev/null || fail "sqlite3 (the CLI) is needed"
    get_format() { sqlite3 "$1" "SELECT CAST(value AS TEXT) FROM kv WHERE key = 'core/format'"; }
    set_format() { sqlite3 "$1" "UPDATE kv SET value = CAST('$2' AS BLOB) WHERE key = 'core/format'"; }
    # zero_value FILE KEY-PREFIX OFFSET LENGTH: zeros bytes of every value whose key has PREFIX.
    zero_value() {
        sqlite3 "$1" "UPDATE kv SET value = CAST(substr(value, 1, $3) || zeroblob($4) || substr(value, $(($3 + $4 + 1))) AS BLOB) WHERE key LIKE '$2%'"
    }
    # swap_value FILE: the first value of secret/load/k8 (its version 1) put under every key of
    # secret/load/k7.
    swap_value() {
        sqlite3 "$1" "UPDATE kv SET value = (SELECT value FROM kv WHERE key LIKE 'kv/data/secret/load/k8@%') WHERE key LIKE 'kv/data/secret/load/k7@%'"
    }
else
    get_format() { logstore "$1" get core/format; }
    set_format() { logstore "$1" set core/format "$2"; }
    zero_value() { logstore "$1" zero "$2" "$3" "$4"; }
    swap_value() { logstore "$1" copy kv/data/secret/load/k7@ kv/data/secret/load/k8@1; }
    # A newer log format (the header's version).
    cp pristine.db newlog.db
    logstore newlog.db header version 99
    try_store newlog.db "upgrade rekey"
    expect_in last.err "log format 99"
fi

# A store written by a newer format version: core/format is the only plaintext entry.
cp pristine.db newer.db
[ "$(get_format newer.db)" = '{"format":1}' ] || fail "test bug: core/format is not {\"format\":1}"
set_format newer.db '{"format":99}'
try_store newer.db "upgrade rekey"
expect_in last.err "format 99"
# A format record that does not parse.
cp pristine.db badfmt.db
set_format badfmt.db '{"format":"x"'
try_store badfmt.db "core/format does not parse"

# Tampered ciphertext of one secret: that read fails authentication, others still work.
cp pristine.db tamper.db
zero_value tamper.db kv/data/secret/load/k7@ 20 8
before=$(store_sum tamper.db)
expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/tamper.db")" "$REKEY" kv get secret/load/k7
grep -qiE 'corrupt|authentic|tamper' last.err || fail "tampered value: unclear error: $(cat last.err)"
expect_exit 0 env REKEY_STORE="$(store_loc "$PWD/tamper.db")" "$REKEY" kv get -field=v secret/load/k8
expect_in last.out "value-08-"
[ "$(store_sum tamper.db)" = "$before" ] || fail "reads changed the tampered store"
# A value moved to another key (AAD = storage key): refused too.
cp pristine.db swap.db
swap_value swap.db
expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/swap.db")" "$REKEY" kv get secret/load/k7
grep -qiE 'corrupt|authentic|tamper' last.err || fail "swapped value: unclear error: $(cat last.err)"
# The keyring itself tampered: the unseal fails clearly.
cp pristine.db keyring.db
zero_value keyring.db core/keyring 30 4
expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/keyring.db")" "$REKEY" kv get secret/load/k8
grep -qiE 'corrupt|authentic|does not open' last.err || fail "keyring: unclear error: $(cat last.err)"

# The original still works after all this.
expect_exit 0 "$REKEY" kv get -field=v secret/load/k40
expect_in last.out "value-40-"
echo "store: ok"
