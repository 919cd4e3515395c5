# Bad paths, options and commands: exit 2 with a clear message, and nothing written.
. "$REKEY_TOP/tests/integration/lib.sh"
init_store
expect_exit 0 "$REKEY" kv put secret/good/path k=v
sum=$(sha256sum store.db*)
unchanged() { [ "$(sha256sum store.db*)" = "$sum" ] || fail "store changed after: $*"; }

long=secret/$(printf 'x%.0s' $(seq 1 520))
ctrl=$(printf 'secret/a\001b')
esc=$(printf 'secret/a\033[31mb')
# Each bad path with the words its message must contain.
check_path() {
    local p=$1 want=$2
    expect_exit 2 "$REKEY" kv put "$p" k=v
    expect_in last.err "$want"
    expect_in last.err "Usage:"
    unchanged "kv put '$p'"
    expect_exit 2 "$REKEY" kv get "$p"
    expect_in last.err "$want"
    expect_exit 2 "$REKEY" kv metadata "$p"
    expect_in last.err "$want"
}
check_path 'secret/../etc/passwd' "'..'"
check_path 'secret/./x' "'.'"
check_path 'secret//b' "empty segment"
check_path '/secret/b' "must not start with '/'"
check_path 'secret/b/' "must not end with '/'"
check_path '' "empty path"
check_path "$long" "longer than 512 bytes"
check_path "$ctrl" "non-printable byte 0x01"
check_path "$esc" "non-printable byte 0x1b"
check_path 'secret/with space' "0x20"
# NUL cannot be passed in argv; the config loader's path check is covered in t-config.sh.
# 512 bytes exactly is allowed.
ok512=secret/$(printf 'y%.0s' $(seq 1 505))
[ ${#ok512} -eq 512 ] || fail "test bug: ok512 is ${#ok512} bytes"
expect_exit 0 "$REKEY" kv put "$ok512" k=v
sum=$(sha256sum store.db*)
expect_exit 2 "$REKEY" kv list 'secret//x'
expect_in last.err "empty segment"
expect_exit 2 "$REKEY" kv put -mount='sec/../ret' a/b k=v
expect_in last.err "'..'"
unchanged "kv put -mount with .."

# Bad option values.
expect_exit 2 "$REKEY" kv put -cas=-1 secret/good/path k=v
expect_in last.err "-cas must be"
expect_exit 2 "$REKEY" kv put -cas=1x secret/good/path k=v
expect_exit 2 "$REKEY" kv put -format=xml secret/good/path k=v
expect_in last.err "-format must be"
expect_exit 2 "$REKEY" kv put secret/good/path =v
expect_in last.err "field=value"
expect_exit 2 "$REKEY" kv get -version secret/good/path
expect_exit 2 "$REKEY" kv get
expect_in last.err "missing argument"
expect_exit 2 "$REKEY" kv get a b
expect_in last.err "too many arguments"
unchanged "bad options"

# Unknown commands and options: exit 2 with a message naming them.
expect_exit 2 "$REKEY" frobnicate
expect_in last.err "unknown command 'frobnicate'"
expect_exit 2 "$REKEY" kv frobnicate
expect_in last.err "unknown command"
expect_exit 2 "$REKEY" kv get -frob secret/good/path
expect_in last.err "unknown option '-frob'"
expect_exit 2 "$REKEY" --frob status
expect_in last.err "unknown global option '--frob'"
expect_exit 2 "$REKEY" lint -json
expect_in last.err "unknown option"
expect_exit 2 "$REKEY" status -json=maybe
expect_in last.err "takes no value"
expect_exit 2 "$REKEY"
expect_in last.err "Usage:"
unchanged "unknown commands"

# --help for the main command and for every command in the help's list.
expect_exit 0 "$REKEY" --help
expect_in last.out "Commands:"
expect_exit 0 "$REKEY" --version
expect_in last.out "rekey "
expect_exit 0 "$REKEY" help
expect_in last.out "Commands:"
cp last.out main-help.txt
n=0
while IFS= read -r cmd; do
    # shellcheck disable=SC2086 # a command name is one or two words
    expect_exit 0 "$REKEY" $cmd --help
    expect_in last.out "rekey $cmd"
    expect_in last.out "Usage:"
    expect_exit 0 "$REKEY" help $cmd
    expect_in last.out "rekey $cmd"
    expect_exit 0 "$REKEY" $cmd -h
    n=$((n + 1))
done < <(sed -n '/^Commands:/,/^$/p' main-help.txt | sed -nE 's/^  ([a-z][a-z -]*[a-z])  +.*/\1/p')
[ "$n" -ge 9 ] || fail "expected at least 9 commands in --help, found $n"
expect_exit 0 "$REKEY" kv put --help
expect_in last.out "field=-"
expect_in last.out "-cas=N"
# --help wins over a missing store or config.
expect_exit 0 env REKEY_STORE= "$REKEY" status --help
unchanged "help"
echo "badinput: ok"
