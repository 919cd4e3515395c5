# Helpers of the HA tests (tests/ha/t-*.sh): a 3-member etcd cluster on loopback ports, a store
# initialised on it with a key file, rekey servers on it. Sourced after tests/integration/lib.sh;
# everything started here is stopped on exit (trap).
PY=/usr/bin/python3
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A base port with 6 free ports after it (the cluster's clients and peers).
free_base() {
  $PY - <<'P'
import random, socket
for _ in range(200):
    b = random.randrange(20000, 40000, 2)
    try:
        ss = []
        for p in range(b, b + 6):
            s = socket.socket(); s.bind(("127.0.0.1", p)); ss.append(s)
        print(b); break
    except OSError:
        pass
P
}
dir=$PWD
SERVERS=()
ha_cleanup() {
  local p
  for p in "${SERVERS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$REKEY_TOP/scripts/services" stop etcd-cluster "$dir/etcd" >/dev/null 2>&1 || true
}
trap ha_cleanup EXIT

# etcd_up: the cluster; sets EP (the endpoints), ETCD_BASE, REKEY_STORE and REKEY_KEY_FILE, and
# initialises the store (root token header in root.hdr.secret).
etcd_up() {
  ETCD_BASE=$(free_base)
  "$REKEY_TOP/scripts/services" start etcd-cluster "$dir/etcd" "$ETCD_BASE" >etcd.out 2>&1 ||
    { cat etcd.out; fail "the etcd cluster did not start"; }
  EP=$(cat "$dir/etcd/endpoints")
  export REKEY_STORE="etcd:$EP" REKEY_KEY_FILE="$dir/root.key"
  "$REKEY" operator init -key-file="$REKEY_KEY_FILE" >init.out 2>&1 || { cat init.out; fail "init"; }
  printf 'X-Vault-Token: %s\n' "$(sed -n 's/^Initial Root Token: //p' init.out)" >root.hdr.secret
  rm -f init.out
}

# server_conf NAME PORT [SECRETS-YAML]: writes NAME.yaml for a server on PORT.
server_conf() {
  cat >"$1.yaml" <<CONF
version: 1
store: { backend: etcd, endpoints: "$EP" }
server:
  listen: "127.0.0.1:$2"
${3-}
CONF
}

# server_start NAME [ENV=VAL…]: starts a server from NAME.yaml (log NAME.log); sets PID_<NAME>
# and waits until it answers.
server_start() {
  local name=$1 port i
  shift
  port=$(sed -n 's/^  listen: "127.0.0.1:\([0-9]*\)"/\1/p' "$name.yaml")
  if [ -n "${SERVER_HOST:-}" ]; then # as if on another machine: a UTS namespace of its own
    unshare --uts sh -c 'hostname "$0" && exec "$@"' "$SERVER_HOST" \
      env "$@" "$REKEY" server -config "$dir/$name.yaml" >>"$name.log" 2>&1 &
  else
    env "$@" "$REKEY" server -config "$dir/$name.yaml" >>"$name.log" 2>&1 &
  fi
  eval "PID_$name=$!"
  SERVERS+=($!)
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/sys/health" && return 0
    kill -0 "$(eval echo \$PID_$name)" 2>/dev/null || { cat "$name.log"; fail "server $name exited"; }
    sleep 0.1
  done
  cat "$name.log"; fail "server $name did not come up"
}

# req URL METHOD PATH [BODY]: answer in ./resp.json, status in $STATUS (root token).
req() {
  local args=(-s -o resp.json -w '%{http_code}' -X "$2" -H @root.hdr.secret)
  [ -n "${4-}" ] && args+=(--data-binary "$4")
  STATUS=$(curl "${args[@]}" "$1$3") || STATUS=000
}
expect() { [ "$STATUS" = "$1" ] || { cat resp.json 2>/dev/null; echo; fail "expected HTTP $1, got $STATUS${2:+ ($2)}"; }; }
j() { $PY -c 'import json,sys; d = json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }

# wait_log FILE TEXT SECONDS: waits until FILE holds TEXT.
wait_log() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" && return 0
    sleep 0.1
  done
  cat "$1"; fail "'$2' did not appear in $1 within $3 s"
}

# health URL: the HTTP status of sys/health.
health() { curl -s -o /dev/null -w '%{http_code}' "$1/v1/sys/health" || true; }
