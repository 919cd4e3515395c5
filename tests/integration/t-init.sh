# operator init: key-file mode, Shamir shares mode, unsealing on a terminal, wrong keys.
. "$REKEY_TOP/tests/integration/lib.sh"

# The bytes of the store and of any WAL/SHM file beside it: equal before and after = no write.
# (A log store is one file.)
store_sum() { sha256sum "$1"* 2>/dev/null; }

# ---- key-file mode ----
export REKEY_STORE=$(store_loc "$PWD/store.db")
expect_exit 0 "$REKEY" operator init -key-file="$PWD/root.key"
expect_in last.out "root key is in $PWD/root.key"
[ -f root.key ] || fail "init did not write the key file"
mode=$(stat -c %a root.key)
[ "$mode" = 600 ] || fail "key file has mode $mode, want 600"
[ "$(tr -d '\n' <root.key | wc -c)" -eq 64 ] || fail "key file does not hold 64 hex characters"
grep -qE '^[0-9a-f]{64}$' root.key || fail "key file is not one line of lowercase hex"
key_before=$(sha256sum root.key)
sum_before=$(store_sum store.db)

# Second init of the same store: refused, nothing changed (key file and store bytes).
expect_exit 3 "$REKEY" operator init -key-file="$PWD/root.key"
expect_in last.err "already initialised"
[ "$(sha256sum root.key)" = "$key_before" ] || fail "second init changed the key file"
[ "$(store_sum store.db)" = "$sum_before" ] || fail "second init changed the store"
# … also with a different key file: no new key file appears.
expect_exit 3 "$REKEY" operator init -key-file="$PWD/other.key"
expect_in last.err "already initialised"
[ ! -e other.key ] || fail "a refused init left other.key behind"
[ "$(store_sum store.db)" = "$sum_before" ] || fail "refused init changed the store"
# … and in shares mode: no shares printed.
expect_exit 3 "$REKEY" operator init -key-shares=5 -key-threshold=3
expect_in last.err "already initialised"
expect_not_in last.out "Unseal Share"

# init refuses to overwrite an existing key file (a new store).
echo "keep me" >existing.key
chmod 600 existing.key
expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/fresh.db")" "$REKEY" operator init \
    -key-file="$PWD/existing.key"
expect_in last.err "existing.key"
expect_in last.err "exists"
[ "$(cat existing.key)" = "keep me" ] || fail "init overwrote an existing key file"

# The key file works, and a round trip proves it.
export REKEY_KEY_FILE="$PWD/root.key"
expect_exit 0 "$REKEY" kv put secret/t/one value=first
sum_before=$(store_sum store.db)

# A wrong key (well-formed, 0600): clear error, nonzero, nothing written.
openssl rand -hex 32 >wrong.key
chmod 600 wrong.key
expect_exit 3 env REKEY_KEY_FILE="$PWD/wrong.key" "$REKEY" kv put secret/t/one value=second
expect_in last.err "does not open this store"
[ "$(store_sum store.db)" = "$sum_before" ] || fail "a put with a wrong key changed the store"

# A malformed key file.
echo "not-a-key" >short.key
chmod 600 short.key
expect_exit 3 env REKEY_KEY_FILE="$PWD/short.key" "$REKEY" kv get secret/t/one
expect_in last.err "does not hold a root key"

# The right key with mode 0644: refused (the file leaks the key), nothing written.
cp root.key open.key
chmod 644 open.key
expect_exit 3 env REKEY_KEY_FILE="$PWD/open.key" "$REKEY" kv put secret/t/one value=third
expect_in last.err "readable by others"
expect_in last.err "chmod 600"
[ "$(store_sum store.db)" = "$sum_before" ] || fail "a put with a 0644 key file changed the store"
# A missing key file.
expect_exit 3 env REKEY_KEY_FILE="$PWD/nope.key" "$REKEY" kv get secret/t/one
expect_in last.err "nope.key"

expect_exit 0 "$REKEY" kv get -field=value secret/t/one
[ "$(cat last.out)" = first ] || fail "the value changed after refused writes: $(cat last.out)"
unset REKEY_KEY_FILE

# ---- bad init options ----
export REKEY_STORE=$(store_loc "$PWD/opts.db")
expect_exit 2 "$REKEY" operator init -key-shares=3 -key-threshold=5
expect_in last.err "cannot exceed"
expect_exit 2 "$REKEY" operator init -key-shares=0
expect_in last.err "-key-shares must be"
expect_exit 2 "$REKEY" operator init -key-shares=5 -key-threshold=1
expect_in last.err "threshold 1"
expect_exit 2 "$REKEY" operator init -key-file="$PWD/x.key" -key-shares=5
expect_in last.err "cannot be combined"
[ ! -e x.key ] || fail "a usage error wrote a key file"

# ---- shares mode ----
export REKEY_STORE=$(store_loc "$PWD/shamir.db")
expect_exit 0 "$REKEY" operator init -key-shares=5 -key-threshold=3
[ "$(grep -c '^Unseal Share [1-5]: ' last.out)" -eq 5 ] || fail "expected 5 unseal shares"
expect_in last.out "3 of them unseal it"
mapfile -t S < <(awk '/^Unseal Share/ { print $4 }' last.out)
[ "${#S[@]}" -eq 5 ] || fail "could not read 5 shares"
[ "$(printf '%s\n' "${S[@]}" | sort -u | wc -l)" -eq 5 ] || fail "the shares are not distinct"
cp last.out shares.secret

# Without a terminal the store cannot be unsealed with shares: clear message, no hang.
expect_exit 3 "$REKEY" kv get secret/x </dev/null
expect_in last.err "sealed"

# drive.py SHARE… -- ARGV…: runs ARGV on a pseudo-terminal and answers each no-echo prompt
# "Unseal share N of K: " with the next SHARE; prints what the terminal showed; exits with ARGV's
# code (a SIGKILL after 20 s or when it asks for more shares than given).
cat >drive.py <<'EOF'
import os, pty, re, select, signal, sys, time
i = sys.argv.index('--')
shares, argv = sys.argv[1:i], sys.argv[i + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, sent, deadline, stuck = b'', 0, time.time() + 20, False
while True:
    if time.time() > deadline:
        stuck = True
        break
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if len(re.findall(rb'Unseal share \d+ of \d+: ', out)) > sent:
        if sent >= len(shares):
            stuck = True
            break
        os.write(fd, shares[sent].encode() + b'\n')
        sent += 1
if stuck:
    os.kill(pid, signal.SIGKILL)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
[ -x "$PY" ] || PY=python3
drive() { "$PY" drive.py "$@"; }

# Three of the shares unseal; the value goes in through stdin… the terminal is stdin here, so
# use field=@file for the value.
printf 'shamir-value' >value.secret
expect_exit 0 drive "${S[0]}" "${S[2]}" "${S[4]}" -- "$REKEY" kv put secret/x value=@value.secret
expect_in last.out "Unseal share 3 of 3"
for s in "${S[@]}"; do
    expect_not_in last.out "$s" # no echo of a share
done
expect_exit 0 drive "${S[1]}" "${S[3]}" "${S[0]}" -- "$REKEY" kv get -field=value secret/x
expect_in last.out "shamir-value"

# A wrong share (one hex digit of a real share changed): clear error, store bytes unchanged.
sum_before=$(store_sum shamir.db)
bad=${S[4]}
last=${bad: -1}
[ "$last" = 0 ] && repl=1 || repl=0
bad=${bad:0:${#bad}-1}$repl
expect_exit 3 drive "${S[0]}" "${S[2]}" "$bad" -- "$REKEY" kv put secret/x value=@value.secret
expect_in last.out "wrong share or key"
[ "$(store_sum shamir.db)" = "$sum_before" ] || fail "a put with a wrong share changed the store"

# The same share twice: refused by name.
expect_exit 2 drive "${S[0]}" "${S[0]}" "${S[1]}" -- "$REKEY" kv put secret/x value=@value.secret
expect_in last.out "same share"
# A malformed share.
expect_exit 2 drive "zz-not-hex" "${S[0]}" "${S[1]}" -- "$REKEY" kv put secret/x value=@value.secret
expect_in last.out "malformed"
[ "$(store_sum shamir.db)" = "$sum_before" ] || fail "refused unseals changed the store"

# A key file does not open a shares store, and vice versa the message names the right remedy.
expect_exit 3 env REKEY_KEY_FILE="$PWD/root.key" "$REKEY" kv get secret/x
expect_in last.err "does not open this store"

assert_no_plaintext shamir-value first
for s in "${S[@]}"; do
    assert_no_plaintext "$s"
done
# A failed init (its key file already exists) leaves no store file behind.
mkdir fresh && touch fresh/taken.key && chmod 600 fresh/taken.key
REKEY_STORE="$(store_loc "$PWD/fresh/s.db")" expect_exit 3 "$REKEY" operator init -key-file="$PWD/fresh/taken.key"
expect_in last.err "File exists"
[ ! -e fresh/s.db ] || fail "a failed init left a store file behind"
echo "init: ok"
