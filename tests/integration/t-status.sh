# status and schedule with the reference inventory and a crafted one; exit 1 when overdue.
. "$REKEY_TOP/tests/integration/lib.sh"
init_store
EX="$REKEY_TOP/examples/ai-gateway.yaml"

# The example: exit 0, every path listed, not-implemented kinds say so.
expect_exit 0 "$REKEY" -c "$EX" status
paths=$(sed -n 's/^  - path: //p' "$EX")
[ "$(echo "$paths" | wc -l)" -eq 9 ] || fail "test bug: expected 9 paths in the example"
for p in $paths; do
    grep -qE "^$p " last.out || fail "status does not list $p"
done
# (no kind of the example is left without a rotator: no "not-implemented" row to expect)
expect_not_in last.out "overdue"
expect_exit 0 "$REKEY" -c "$EX" status --json
python3 - "$paths" <<'EOF' || fail "status --json: $(head -c 2000 last.out)"
import json, sys
rows = json.load(open("last.out"))
want = sys.argv[1].split()
assert [r["path"] for r in rows] == want, [r["path"] for r in rows]
for r in rows:
    for k in ("path", "kind", "version", "fingerprint", "last_rotated", "next_due", "state",
              "auto", "detail"):
        assert k in r, (k, r)
    assert r["state"] in ("ok", "due", "overdue", "rotating", "failed", "action-required",
                          "not-implemented"), r
# Kinds without a rotator yet must say so (the list shrinks as rotators land).
ni = [r for r in rows if r["state"] == "not-implemented"]
assert all("not implemented" in r["detail"] for r in ni), ni
assert all(r["version"] == 0 for r in rows), "a fresh store has no versions"
EOF
# -json and --json=true are the same flag.
expect_exit 0 "$REKEY" -c "$EX" status -json=true
python3 -c 'import json; json.load(open("last.out"))' || fail "status -json=true"

# Overdue: a manual secret written now, looked at 100 days later (REKEY_NOW, seconds).
cat >m.yaml <<'EOF'
version: 1
secrets:
  - path: secret/team/manual-one
    kind: manual
    every: 30d
  - path: secret/team/manual-two
    kind: manual
    every: 365d
EOF
expect_exit 0 "$REKEY" kv put secret/team/manual-one value=written-now
expect_exit 0 "$REKEY" kv put secret/team/manual-two value=written-now-too
expect_exit 0 "$REKEY" -c m.yaml status
grep -qE '^secret/team/manual-one .* ok$' last.out || fail "fresh manual secret not ok: $(cat last.out)"
expect_in last.out "hmac:"
expect_not_in last.out "written-now"
later=$(($(date +%s) + 100 * 86400))
expect_exit 1 env REKEY_NOW=$later "$REKEY" -c m.yaml status
grep -qE '^secret/team/manual-one .*overdue' last.out || fail "not overdue: $(cat last.out)"
grep -qE '^secret/team/manual-two .* ok$' last.out || fail "manual-two should be ok: $(cat last.out)"
expect_in last.out "1 secret is overdue"
expect_exit 1 env REKEY_NOW=$later "$REKEY" -c m.yaml status --json
python3 -c '
import json
rows = {r["path"]: r for r in json.load(open("last.out"))}
assert rows["secret/team/manual-one"]["state"] == "overdue", rows
assert rows["secret/team/manual-two"]["state"] == "ok", rows
assert rows["secret/team/manual-one"]["version"] == 1, rows
assert rows["secret/team/manual-one"]["fingerprint"].startswith("hmac:"), rows
' || fail "status --json when overdue: $(cat last.out)"
# A new version fixes it (at that later time).
expect_exit 0 env REKEY_NOW=$later "$REKEY" kv put secret/team/manual-one value=rotated-later
expect_exit 0 env REKEY_NOW=$later "$REKEY" -c m.yaml status
# Store-wide: status needs a store; a missing one is a clear error.
expect_exit 3 env REKEY_STORE="$(store_loc "$PWD/none.db")" "$REKEY" -c m.yaml status
expect_in last.err "operator init"

# ---- schedule ----
expect_exit 0 "$REKEY" -c "$EX" schedule --from 2027-01 --months 3
expect_in last.out "Jan 2027"
expect_in last.out "Mar 2027"
expect_not_in last.out "Apr 2027"
for p in $paths; do
    grep -qE "^$p " last.out || fail "schedule does not list $p"
done
# The master key rotates every 30 days: 3 marks in 3 months.
n=$(grep '^secret/ai-gateway/litellm/master-key ' last.out | grep -o ' A' | wc -l)
[ "$n" -ge 2 ] && [ "$n" -le 4 ] || fail "master key: $n rotations in 3 months: $(cat last.out)"
expect_exit 0 "$REKEY" -c "$EX" schedule -from=2027-01 -months=3 --json
python3 -c '
import json
d = json.load(open("last.out"))
assert d["from"] == "2027-01" and d["months"] == 3, d
s = {x["path"]: x for x in d["secrets"]}
assert len(s) == 9, list(s)
mk = s["secret/ai-gateway/litellm/master-key"]
assert 2 <= mk["rotations"] <= 4 and mk["every"] == "30d", mk
assert all(k.startswith("2027-0") for k in mk["weeks"]), mk["weeks"]
' || fail "schedule --json: $(head -c 2000 last.out)"
expect_exit 0 "$REKEY" -c "$EX" schedule --months 24
for bad in 2027-13 2027-1 27-01 2027/01 2027-01x abc ""; do
    expect_exit 2 "$REKEY" -c "$EX" schedule --from "$bad"
    expect_in last.err "--from must be YYYY-MM"
done
for bad in 0 25 x -1; do
    expect_exit 2 "$REKEY" -c "$EX" schedule --months "$bad"
    expect_in last.err "--months must be"
done
echo "status: ok"
