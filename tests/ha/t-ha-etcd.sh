#!/usr/bin/env bash
# etcd members die under two rekey servers: kill -9 of the etcd leader during a stream of writes
# through both servers loses no acknowledged write (each is read back through both); with every
# member down, requests fail with a clear 503 naming etcd and the leader steps down; once the
# members are back the servers serve and elect a leader again by themselves, no restart.
. "$REKEY_TOP/tests/integration/lib.sh"
. "$REKEY_TOP/tests/ha/lib-ha.sh"

etcd_up
PA=$(free_port); PB=$(free_port)
A="http://127.0.0.1:$PA"; B="http://127.0.0.1:$PB"
server_conf a "$PA"
server_conf b "$PB"
server_start a
wait_log a.log "is the leader now" 10
server_start b
CLUSTER="m0=http://127.0.0.1:$((ETCD_BASE + 1)),m1=http://127.0.0.1:$((ETCD_BASE + 3)),m2=http://127.0.0.1:$((ETCD_BASE + 5))"

# etcd_leader: the index (0..2) of the etcd member that leads.
etcd_leader() {
  local i st
  for i in 0 1 2; do
    st=$(curl -s --max-time 2 -X POST "http://127.0.0.1:$((ETCD_BASE + 2 * i))/v3/maintenance/status" -d '{}') || continue
    echo "$st" | $PY -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["leader"]==d["header"]["member_id"] else 1)' &&
      { echo "$i"; return 0; }
  done
  return 1
}

# writer N: N writes of secret/w/K = K through A and B in turn; "K CODE" lines in acks.txt.
writer() {
  local k code url
  for ((k = 1; k <= $1; k++)); do
    if [ $((k % 2)) = 0 ]; then url=$A; else url=$B; fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST -H @root.hdr.secret \
      --data-binary "{\"data\":{\"k\":\"$k\"}}" "$url/v1/secret/data/w/$k") || code=000
    echo "$k $code" >>acks.txt
  done
}

# ---- SIGSTOP of a member for 10 s during writes: nothing acknowledged lost, one leader ----
: >acks.txt
writer 30 &
wpid=$!
while [ "$(wc -l <acks.txt)" -lt 5 ]; do sleep 0.05; done
kill -STOP "$(cat "$dir/etcd/m0/etcd.pid")"
sleep 10
kill -CONT "$(cat "$dir/etcd/m0/etcd.pid")"
wait "$wpid"
echo "SIGSTOP of m0 for 10 s: $(awk '$2 == 200' acks.txt | wc -l) of 30 writes acknowledged"
check_acks() {
  $PY - "$A" "$B" <<'P' || fail "an acknowledged write was lost"
import json, sys, urllib.request
tok = open("root.hdr.secret").read().split(": ", 1)[1].strip()
for line in open("acks.txt"):
    k, code = line.split()
    if code != "200":
        continue
    for url in sys.argv[1:]:
        rq = urllib.request.Request(url + "/v1/secret/data/w/" + k, headers={"X-Vault-Token": tok})
        got = json.load(urllib.request.urlopen(rq, timeout=20))["data"]["data"]["k"]
        assert got == k, "write %s reads %r through %s" % (k, got, url)
P
}
check_acks
one_leader() {
  for ((i = 0; i < 100; i++)); do
    ca=$(health "$A"); cb=$(health "$B")
    [ "$ca $cb" = "200 429" ] || [ "$ca $cb" = "429 200" ] && return 0
    sleep 0.1
  done
  fail "no single leader ($ca $cb)"
}
one_leader

# ---- kill -9 of the etcd leader during writes ----
: >acks.txt
writer 60 &
wpid=$!
while [ "$(wc -l <acks.txt)" -lt 20 ]; do sleep 0.05; done
L=$(etcd_leader) || fail "no etcd member leads"
kill -KILL "$(cat "$dir/etcd/m$L/etcd.pid")"
rm -f "$dir/etcd/m$L/etcd.pid" # (a killed member may stay a zombie here, which kill -0 finds)
echo "killed etcd member m$L (the leader) after $(wc -l <acks.txt) writes"
wait "$wpid"
acked=$(awk '$2 == 200' acks.txt | wc -l)
echo "acknowledged: $acked of 60 ($(awk '$2 != 200 {print $2}' acks.txt | sort | uniq -c | tr '\n' ' '))"
[ "$acked" -ge 40 ] || fail "too few writes were acknowledged while one member was down"
$PY - "$A" "$B" <<'P' || fail "an acknowledged write was lost"
import json, sys, urllib.request
tok = open("root.hdr.secret").read().split(": ", 1)[1].strip()
for line in open("acks.txt"):
    k, code = line.split()
    if code != "200":
        continue
    for url in sys.argv[1:]:
        rq = urllib.request.Request(url + "/v1/secret/data/w/" + k, headers={"X-Vault-Token": tok})
        got = json.load(urllib.request.urlopen(rq, timeout=20))["data"]["data"]["k"]
        assert got == k, "write %s reads %r through %s" % (k, got, url)
P
echo "every acknowledged write reads back through both servers"

# ---- every member down: a clear 503, the leader steps down ----
for i in 0 1 2; do
  [ -s "$dir/etcd/m$i/etcd.pid" ] && kill -KILL "$(cat "$dir/etcd/m$i/etcd.pid")" 2>/dev/null || true
  rm -f "$dir/etcd/m$i/etcd.pid"
done
req "$A" POST /v1/secret/data/down '{"data":{"x":"1"}}'
expect 503 "a write with etcd down"
grep -q 'etcd is unreachable: none of its 3 endpoints answered (last: etcd at http://127.0.0.1:' resp.json ||
  { cat resp.json; fail "the 503 does not say etcd is unreachable and the last member's error"; }
req "$B" GET /v1/secret/data/w/1
expect 503 "a read with etcd down"
for ((i = 0; i < 60; i++)); do grep -q "not the leader any more" a.log && break; sleep 0.1; done
grep -q "not the leader any more" a.log || { cat a.log; fail "the leader did not step down without etcd"; }

# ---- the members come back: the servers recover by themselves ----
# (at once: a member answers clients only once a quorum has it published)
spids=()
for i in 0 1 2; do
  "$REKEY_TOP/scripts/services" start etcd "$dir/etcd/m$i" $((ETCD_BASE + 2 * i)) "m$i" "$CLUSTER" >/dev/null &
  spids+=($!)
done
for p in "${spids[@]}"; do wait "$p" || fail "an etcd member did not restart"; done
t0=$(date +%s.%N)
for ((i = 0; i < 200; i++)); do
  req "$B" POST /v1/secret/data/back '{"data":{"x":"2"}}'
  [ "$STATUS" = 200 ] && break
  sleep 0.1
done
expect 200 "a write once etcd is back"
req "$A" GET /v1/secret/data/back
expect 200
[ "$(j 'd["data"]["data"]["x"]')" = 2 ] || fail "the write after recovery does not read back"
for ((i = 0; i < 100; i++)); do
  ca=$(health "$A"); cb=$(health "$B")
  [ "$ca $cb" = "200 429" ] || [ "$ca $cb" = "429 200" ] && break
  sleep 0.1
done
[ "$ca $cb" = "200 429" ] || [ "$ca $cb" = "429 200" ] || fail "no single leader after etcd came back ($ca $cb)"
echo "served again $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s after the members restarted; one leader"
echo ok
