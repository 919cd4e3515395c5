#!/usr/bin/env bash
# Two rekey servers on one 3-member etcd cluster: a write through one is read through the other
# at once (20 rounds, a new value each); concurrent check-and-set writes to one path from both:
# exactly one wins each round; one leader (sys/leader, sys/ha-status, sys/health 200 / 429, 200
# with ?standbyok=true); SIGTERM of the leader hands over at once (it resigns its lease).
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

# ---- one leader ----
[ "$(health "$A")" = 200 ] || fail "the leader's sys/health is not 200"
[ "$(health "$B")" = 429 ] || fail "the standby's sys/health is not 429"
code=$(curl -s -o /dev/null -w '%{http_code}' "$B/v1/sys/health?standbyok=true")
[ "$code" = 200 ] || fail "the standby's sys/health?standbyok=true is $code, not 200"
curl -s "$B/v1/sys/leader" >resp.json
[ "$(j 'd["ha_enabled"], d["is_self"], d["leader_address"]')" = "(True, False, '$A')" ] ||
  { cat resp.json; fail "sys/leader on the standby"; }
curl -s "$A/v1/sys/leader" >resp.json
[ "$(j 'd["is_self"]')" = True ] || { cat resp.json; fail "sys/leader on the leader"; }
# One cluster: both servers give the same cluster_id and cluster_name (made from the store).
curl -s "$A/v1/sys/health" >resp.json
ida=$(j 'd["cluster_id"], d["cluster_name"]')
curl -s "$B/v1/sys/health?standbyok=true" >resp.json
idb=$(j 'd["cluster_id"], d["cluster_name"]')
[ "$ida" = "$idb" ] || fail "the two servers report different clusters: $ida / $idb"
req "$B" GET /v1/sys/ha-status
expect 200
[ "$(j 'sorted((n["api_address"], n["active_node"]) for n in d["nodes"])')" = \
  "$(/usr/bin/python3 -c "print(sorted([('$A', True), ('$B', False)]))")" ] ||
  { cat resp.json; fail "sys/ha-status does not list both servers with A active"; }
grep -q "scheduler started" b.log && fail "the standby runs a scheduler"

# ---- read your writes across servers ----
for i in $(seq 1 20); do
  if [ $((i % 2)) = 0 ]; then W=$A R=$B; else W=$B R=$A; fi
  req "$W" POST /v1/secret/data/app/rw "{\"data\":{\"n\":\"v$i\"}}"
  expect 200 "write $i"
  req "$R" GET /v1/secret/data/app/rw
  expect 200 "read $i"
  [ "$(j 'd["data"]["data"]["n"]')" = "v$i" ] || { cat resp.json; fail "round $i: the other server read an older value"; }
done

# ---- check-and-set from both at once: one wins ----
for i in $(seq 1 10); do
  req "$A" GET /v1/secret/data/app/cas
  if [ "$STATUS" = 404 ]; then ver=0; else ver=$(j 'd["data"]["metadata"]["version"]'); fi
  curl -s -o a.out -w '%{http_code}' -X POST -H @root.hdr.secret \
    --data-binary "{\"options\":{\"cas\":$ver},\"data\":{\"who\":\"a$i\"}}" "$A/v1/secret/data/app/cas" >a.code &
  cpid=$!
  curl -s -o b.out -w '%{http_code}' -X POST -H @root.hdr.secret \
    --data-binary "{\"options\":{\"cas\":$ver},\"data\":{\"who\":\"b$i\"}}" "$B/v1/secret/data/app/cas" >b.code
  wait "$cpid"
  codes="$(cat a.code) $(cat b.code)"
  case $codes in
    "200 400") want=a$i ;;
    "400 200") want=b$i ;;
    *) cat a.out b.out; fail "round $i: check-and-set from both answered $codes (want one 200, one 400)" ;;
  esac
  req "$B" GET /v1/secret/data/app/cas
  [ "$(j 'd["data"]["data"]["who"], d["data"]["metadata"]["version"]')" = "('$want', $((ver + 1)))" ] ||
    { cat resp.json; fail "round $i: the winner's value is not the one stored"; }
done

# ---- SIGTERM of the leader: the standby leads at once ----
kill -TERM "$PID_a"
wait "$PID_a" || fail "the leader did not exit 0 on SIGTERM"
wait_log b.log "is the leader now" 3
wait_log b.log "scheduler started" 3
[ "$(health "$B")" = 200 ] || fail "the new leader's sys/health is not 200"
req "$B" GET /v1/secret/data/app/rw
[ "$(j 'd["data"]["data"]["n"]')" = v20 ] || fail "the last write is lost"
echo ok
