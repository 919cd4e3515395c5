#!/usr/bin/env bash
# A secret typed by a person (cli/secret-input.c), on a real pseudo-terminal: `rekey rotate` of a
# manual secret and `rekey kv put field=-` store exactly what was typed, also a 10,000-byte value
# (the terminal's own line editing would cut it at 4,095 bytes); nothing typed is echoed; two
# different values are refused; a value over the limit is refused, not cut, and its bytes do not
# reach the shell; and after Ctrl-C, SIGTERM or SIGHUP at the prompt the terminal's settings (echo
# on, canonical mode) are as before, while Ctrl-Z restores them, stops, and prompts again on
# SIGCONT. The rotator takes the value from the CLI and never opens the terminal itself.
. "$REKEY_TOP/tests/integration/lib.sh"
P=secret/app/typed-key
{ echo "version: 1"; store_yaml store.db; cat <<YAML
secrets:
  - path: $P
    kind: manual
    every: 90d
YAML
} > rekey.yaml
export REKEY_CONFIG=$PWD/rekey.yaml
init_store

cat >drive.py <<'PY'
# drive.py SCENARIO REKEY ARGS…: runs rekey on a new pseudo-terminal (its controlling terminal)
# and plays SCENARIO; exits 0 when every check holds. Values come from the environment (V1, V2),
# never from the command line.
#
# As a shell does, a session leader ("hold", this script again) holds the terminal and runs rekey
# as the foreground job in a process group of its own; without one, the kernel would discard
# Ctrl-Z (a stop signal to an orphaned process group). It writes rekey's pid to rekey.pid and
# exits with rekey's status (128 + the signal when a signal ended it).
import os, select, signal, subprocess, sys, termios, time, fcntl

if sys.argv[1] == "hold":
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.setpgid(0, 0)
        os.tcsetpgrp(0, os.getpid())
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        os.execv(sys.argv[2], sys.argv[2:])
    with open("rekey.pid.tmp", "w") as f:
        f.write(str(pid))
    os.rename("rekey.pid.tmp", "rekey.pid")
    _, st = os.waitpid(pid, 0)
    os._exit(128 + os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))

scenario, argv = sys.argv[1], sys.argv[2:]
master, slave = os.openpty()
before = termios.tcgetattr(slave)
seen = b""

def fail(msg):
    sys.stderr.write("FAIL: %s\n--- terminal (%d bytes)\n%r\n" % (msg, len(seen), seen[-600:]))
    sys.exit(1)

def ctty():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)

if os.path.exists("rekey.pid"):
    os.unlink("rekey.pid")
proc = subprocess.Popen([sys.executable, sys.argv[0], "hold"] + argv, stdin=slave, stdout=slave,
                        stderr=slave, start_new_session=True, preexec_fn=ctty, close_fds=True)
end = time.time() + 10
while not os.path.exists("rekey.pid"):
    if time.time() > end:
        fail("rekey did not start")
    time.sleep(0.01)
rekey_pid = int(open("rekey.pid").read())

def pump(timeout=0.2):
    global seen
    r, _, _ = select.select([master], [], [], timeout)
    if r:
        try:
            d = os.read(master, 65536)
        except OSError:
            return False
        seen += d
        return len(d) > 0
    return False

def wait_for(text, timeout=10):
    end = time.time() + timeout
    while text.encode() not in seen:
        if time.time() > end:
            fail("no %r on the terminal" % text)
        pump()

def type_(data):
    data = data.encode() if isinstance(data, str) else data
    off = 0
    while off < len(data):
        _, w, _ = select.select([], [master], [], 5)
        if not w:
            fail("the terminal does not take input")
        off += os.write(master, data[off:off + 1024])
        pump(0)

def finish(timeout=20):
    end = time.time() + timeout
    while proc.poll() is None:
        if time.time() > end:
            proc.kill()
            fail("rekey did not exit")
        pump()
    while pump(0.05):
        pass
    with open("term.log", "wb") as f:  # what the terminal showed (checked: no value in it)
        f.write(seen)
    return proc.returncode

def lflag(attrs):
    return attrs[3]

def settings_restored():
    now = termios.tcgetattr(slave)
    if not lflag(now) & termios.ECHO:
        fail("the terminal's echo is still off")
    if not lflag(now) & termios.ICANON:
        fail("the terminal is left out of canonical mode")
    if now != before:
        fail("the terminal's settings differ from before: %r vs %r" % (now, before))

def not_echoed(*values):
    for v in values:
        if v and v.encode() in seen:
            fail("a typed value was echoed")

v1, v2 = os.environ.get("V1", ""), os.environ.get("V2", "")
if scenario == "type":            # type V1 at every prompt (one or two), expect success
    prompts = int(os.environ.get("PROMPTS", "2"))
    wait_for("(not echoed): ")
    type_(v1 + "\r")
    if prompts == 2:
        wait_for("Repeat the ")
        type_(v1 + "\r")
    rc = finish()
    not_echoed(v1)
    settings_restored()
    if rc != 0:
        fail("rekey exited %d" % rc)
elif scenario == "differ":        # V1, then V2: refused
    wait_for("(not echoed): ")
    type_(v1 + "\r")
    wait_for("Repeat the ")
    type_(v2 + "\r")
    rc = finish()
    not_echoed(v1, v2)
    settings_restored()
    if rc == 0 or b"differ" not in seen:
        fail("two different values were not refused (exit %d)" % rc)
elif scenario == "toolong":       # V1 is over the limit: refused, and none of it reaches a shell
    wait_for("(not echoed): ")
    type_(v1 + "\r")
    rc = finish()
    not_echoed(v1)
    settings_restored()
    if rc == 0 or b"longer than" not in seen:
        fail("an overlong value was not refused (exit %d)" % rc)
    # Nothing of the line is left to read on the terminal (a shell would run it).
    os.set_blocking(slave, False)
    try:
        left = os.read(slave, 65536)
    except BlockingIOError:
        left = b""
    if left:
        fail("%d bytes of the refused line were left on the terminal" % len(left))
elif scenario in ("ctrl-c", "sigterm", "sighup"):   # interrupted at the prompt
    wait_for("(not echoed): ")
    type_(v1[:5])                 # half a value typed
    if scenario == "ctrl-c":
        type_("\x03")
        sig = signal.SIGINT
    elif scenario == "sigterm":
        sig = signal.SIGTERM
        os.kill(rekey_pid, sig)
    else:
        sig = signal.SIGHUP
        os.kill(rekey_pid, sig)
    rc = finish()
    settings_restored()
    if rc != 128 + sig:
        fail("expected rekey to end by signal %d, got status %d" % (sig, rc))
elif scenario == "ctrl-z":        # stop at the prompt: the terminal is restored while stopped
    wait_for("(not echoed): ")
    type_("partial")
    type_("\x1a")
    end = time.time() + 10
    while True:
        st = open("/proc/%d/stat" % rekey_pid).read().rsplit(")", 1)[1].split()[0]
        if st == "T":
            break
        if time.time() > end:
            fail("Ctrl-Z did not stop rekey")
        pump()
    now = termios.tcgetattr(slave)
    if not lflag(now) & termios.ECHO:
        fail("the echo is off while rekey is stopped")
    n = seen.count(b"(not echoed): ")
    os.kill(rekey_pid, signal.SIGCONT)
    end = time.time() + 10
    while seen.count(b"(not echoed): ") <= n:  # prompted again, echo off again
        if time.time() > end:
            fail("no new prompt after SIGCONT")
        pump()
    type_(v1 + "\r")
    wait_for("Repeat the ")
    type_(v1 + "\r")
    rc = finish()
    not_echoed(v1, "partial")
    settings_restored()
    if rc != 0:
        fail("rekey exited %d after the stop" % rc)
else:
    fail("unknown scenario " + scenario)
PY

drive() { /usr/bin/python3 drive.py "$@" >drive.out 2>&1 || { cat drive.out; fail "scenario $1: $*"; }; }
stored() { "$REKEY" kv get -field="$2" "$1"; }
# A value of N bytes, printable ASCII (no newline); the same for the same seed.
mkval() { /usr/bin/python3 -c "import random,string,sys; r=random.Random(sys.argv[2]); print(''.join(r.choice(string.ascii_letters+string.digits+'-_.~!@#%^&*()+=[]{}:;,<>?/|') for _ in range(int(sys.argv[1]))), end='')" "$1" "$2"; }

# ---- rekey rotate of a manual secret: prompted twice, stored exactly ----
V1=$(mkval 40 a) drive type "$REKEY" rotate $P
[ "$(stored $P value)" = "$(mkval 40 a)" ] || fail "rotate: the typed value was not stored exactly"

# ---- 10,000 bytes: past the 4,095 bytes a canonical terminal line holds ----
BIG=$(mkval 10000 b)
V1=$BIG drive type "$REKEY" rotate $P
got=$(stored $P value)
[ "${#got}" -eq 10000 ] || fail "rotate: a 10,000-byte value was stored as ${#got} bytes"
[ "$got" = "$BIG" ] || fail "rotate: the 10,000-byte value was not stored exactly"

# ---- kv put field=-: typed twice at the terminal, stored exactly (also 10,000 bytes) ----
V1=$(mkval 33 c) drive type "$REKEY" kv put secret/app/db password=- user=app
[ "$(stored secret/app/db password)" = "$(mkval 33 c)" ] || fail "kv put field=-: not stored exactly"
[ "$(stored secret/app/db user)" = app ] || fail "kv put: the other field"
V1=$BIG drive type "$REKEY" kv put secret/app/db password=-
[ "$(stored secret/app/db password)" = "$BIG" ] || fail "kv put field=-: 10,000 bytes not stored exactly"

# ---- rekey fingerprint reads one line (no confirmation): that of the version typed above ----
V1=$(mkval 40 a) PROMPTS=1 drive type "$REKEY" fingerprint
"$REKEY" kv metadata -format=json $P >meta.json
/usr/bin/python3 - <<'PY' || fail "rekey fingerprint of a typed value differs from the stored one"
import json
fp = json.load(open("meta.json"))["versions"]["1"]["fingerprint"]
assert fp and fp in open("term.log", errors="replace").read(), fp
PY

# ---- two different values, and a value over 64 KiB: refused, nothing stored ----
before=$(stored $P value | sha256sum)
V1=$(mkval 40 d) V2=$(mkval 40 e) drive differ "$REKEY" rotate $P
V1=$(mkval 70000 f) drive toolong "$REKEY" rotate $P
[ "$(stored $P value | sha256sum)" = "$before" ] || fail "a refused value changed the secret"

# ---- signals at the prompt: the terminal comes back as it was ----
for sc in ctrl-c sigterm sighup; do
  V1=$(mkval 20 g) drive $sc "$REKEY" rotate $P
  V1=$(mkval 20 g) drive $sc "$REKEY" kv put secret/app/db password=-
done
[ "$(stored $P value | sha256sum)" = "$before" ] || fail "an interrupted prompt changed the secret"
# (Ctrl-C and Ctrl-Z flush the terminal's input: rekey reads a non-blocking descriptor, so a byte
# ppoll saw and the flush took cannot leave it asleep in read with the signal blocked.)
V1=$(mkval 24 h) drive ctrl-z "$REKEY" rotate $P
[ "$(stored $P value)" = "$(mkval 24 h)" ] || fail "after Ctrl-Z and SIGCONT: not stored exactly"

# ---- stdin and files (not a terminal) still work, one trailing newline dropped ----
printf '%s\n' "piped-value-Xy7" | "$REKEY" rotate --from-stdin $P >/dev/null
[ "$(stored $P value)" = piped-value-Xy7 ] || fail "rotate --from-stdin"
printf '%s\r\n' "file-value-Qw3" >v.secret
"$REKEY" rotate --from-file v.secret $P >/dev/null
[ "$(stored $P value)" = file-value-Qw3 ] || fail "rotate --from-file"
expect_exit 3 "$REKEY" rotate --from-file missing.secret $P
expect_in last.err "missing.secret"
head -c 70000 /dev/zero | tr '\0' a | expect_exit 3 "$REKEY" rotate --from-stdin $P
expect_in last.err "longer than 65536 bytes"
# No terminal and no value: refused by the rotator, which reads nothing itself.
expect_exit 2 "$REKEY" rotate $P </dev/null
expect_in last.err "kind manual needs a value"
assert_no_plaintext "$(mkval 40 a)" "$(mkval 33 c)" "$(mkval 24 h)"
echo ok
