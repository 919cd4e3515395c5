# `make run` on a fresh state folder: scripts/run-example writes the make-run inventory from
# examples/ai-gateway.yaml, starts the stand-in gateway and `rekey server -dev`, whose first
# scheduled rotation (the master key) must succeed; then every command of the README's tour runs
# as printed against the state folder's store, and none prints the master key.
source "$REKEY_TOP/tests/integration/lib.sh"
# Three distinct free ports (the server, the stand-in gateway, the dev server's stand-in gateway),
# chosen while all three are held, so none is given twice.
read -r p_listen p_gw p_devgw < <($PY -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
export REKEY_RUN_DIR="$PWD/run" REKEY_RUN_LISTEN="127.0.0.1:$p_listen"
export REKEY_RUN_GATEWAY_PORT=$p_gw REKEY_RUN_DEV_GATEWAY_PORT=$p_devgw

setsid "$REKEY_TOP/scripts/run-example" "$REKEY" "$REKEY_TOP/examples/ai-gateway.yaml" >run.log 2>&1 &
runner=$!
trap 'kill -TERM -- -$runner 2>/dev/null || true; wait $runner 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q 'rotated secret/ai-gateway/litellm/master-key' run.log && break
  grep -q 'rolled back' run.log && break
  sleep 0.2
done
grep -q 'rotated secret/ai-gateway/litellm/master-key v0 -> v1 (' run.log || {
  cat run.log; tail -20 run/dev/litellm.log 2>/dev/null; fail "make run: no successful first rotation"; }
expect_not_in run.log "rolled back"
grep -q 'kubectl -n ai-gateway rollout restart deployment/litellm' run/kubectl.log || fail "the stand-in kubectl was not called"
kill -TERM -- -$runner; wait $runner || true
trap - EXIT

# The tour (README "A tour"), as printed, on the make-run store.
export REKEY_CONFIG=$REKEY_RUN_DIR/ai-gateway.yaml
export REKEY_STORE=sqlite:$REKEY_RUN_DIR/rekey.db
export REKEY_KEY_FILE=$REKEY_RUN_DIR/root.key
M=secret/ai-gateway/litellm/master-key
expect_exit 0 "$REKEY" lint
"$REKEY" status >status.out || true   # exits 1 while manual secrets are due
expect_in status.out "$M"
expect_exit 0 "$REKEY" schedule --months 3
expect_exit 0 "$REKEY" rotate $M --dry-run
# The stand-in gateway again, for the test hook of the rotations below.
$PY "$REKEY_TOP/scripts/dev/litellm" "$REKEY_RUN_DIR/etc/litellm/master-key.env" "$REKEY_RUN_GATEWAY_PORT" 2>/dev/null &
gw=$!
trap 'kill $gw 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do # until it listens (a loaded machine starts Python slowly)
  $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$REKEY_RUN_GATEWAY_PORT" 2>/dev/null && break
  kill -0 $gw 2>/dev/null || fail "the stand-in gateway exited"
  sleep 0.1
done
expect_exit 0 "$REKEY" rotate $M
expect_exit 0 "$REKEY" history $M
expect_in last.out rotate
expect_exit 0 "$REKEY" rollback $M
# No Redis runs in make run (scripts/dev/inventory points the entry at 127.0.0.1:1): its
# candidate waits for its target, which --due counts as pending, not failed: the tour's command
# succeeds as printed (exit 0); nothing rolls back.
expect_exit 0 "$REKEY" rotate --due --yes
expect_in last.err "secret/ai-gateway/redis/auth: target unavailable"
expect_in last.out " 0 failed, "
expect_not_in last.out " 0 pending, "
# Nor PostgreSQL (127.0.0.1:1): the held lease waits the same way; the role template is no rotation.
expect_in last.err "database/creds/litellm-app: target unavailable"
expect_not_in last.out "database/creds/litellm-readonly"
expect_not_in last.err "rolled back"
expect_exit 0 "$REKEY" recover
printf '%s' "sk-proj-Tour_Key-0123456789abcdefghijklmnop" >key.secret
expect_exit 0 "$REKEY" kv put secret/ai-gateway/providers/openai api_key=- <key.secret
expect_exit 0 "$REKEY" kv get -field=api_key secret/ai-gateway/providers/openai
[ "$(cat last.out)" = "$(cat key.secret)" ] || fail "kv get does not give back what kv put stored"
expect_exit 0 "$REKEY" kv list secret/ai-gateway
expect_exit 0 "$REKEY" kv metadata secret/ai-gateway/providers/openai
# The gateway's certificate (issuer internal, CA made by make run's first init) was issued and
# rendered, and verifies against the internal CA.
"$REKEY" pki ca >ca.pem
openssl verify -CAfile ca.pem "$REKEY_RUN_DIR/etc/ai-gateway/tls/tls.crt" >/dev/null ||
  fail "the gateway certificate was not rendered or does not verify"
grep -q 'rollout restart deployment/gateway-proxy' run/kubectl.log || fail "gateway-proxy not reloaded"
key=$("$REKEY" kv get -field=key $M)
! grep -rqaF -- "$key" run.log status.out || fail "the master key was printed"
echo "ok"
