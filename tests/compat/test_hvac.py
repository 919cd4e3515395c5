"""Compatibility tests: hvac, a real Vault client, against `rekey server`.

Run by tests/compat/run.sh, which starts a dev server and sets VAULT_ADDR and VAULT_TOKEN (the
root token); REKEY is the rekey binary (the seal tests start servers of their own with it, on a
store of REKEY_TEST_BACKEND: sqlite, the default, or log).
Prints "hvac: N passed, N failed" last and exits non-zero on any failure.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import hvac
import requests
from hvac import exceptions as hexc

ADDR = os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200")
ROOT = os.environ.get("VAULT_TOKEN", "")
REKEY = os.environ.get("REKEY", "")
# The store backend of the servers the seal tests start (the dev server's store is SQLite).
BACKEND = os.environ.get("REKEY_TEST_BACKEND", "sqlite")


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from another loopback address (the server throttles failed logins per client
    address: clients expected to fail authentication use 127.0.0.3, so they cannot throttle
    the other tests)."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = ("127.0.0.3", 0)
        super().init_poolmanager(*args, **kwargs)


def client(token=ROOT, addr=ADDR, failing=False):
    """An hvac client; failing=True for one whose token is expected to be refused."""
    session = None
    if failing:
        session = requests.Session()
        session.mount("http://", _SourceAddressAdapter())
    return hvac.Client(url=addr, token=token, timeout=15, session=session)


def clean_env(**extra):
    """The environment without a server address or token (the CLI would act as a client)."""
    env = dict(os.environ)
    for k in ("VAULT_ADDR", "VAULT_TOKEN", "REKEY_ADDR", "REKEY_TOKEN", "REKEY_CONFIG",
              "REKEY_STORE", "REKEY_KEY_FILE"):
        env.pop(k, None)
    env.update(extra)
    return env


def uniq(prefix):
    """A path no other test uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class KV2Tests(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.kv = self.c.secrets.kv.v2

    def test_write_read_latest_and_version(self):
        p = uniq("compat/rw")
        r1 = self.kv.create_or_update_secret(path=p, secret={"password": "one", "port": 5432})
        self.assertEqual(r1["data"]["version"], 1)
        self.assertFalse(r1["data"]["destroyed"])
        r2 = self.kv.create_or_update_secret(path=p, secret={"password": "two"})
        self.assertEqual(r2["data"]["version"], 2)
        latest = self.kv.read_secret_version(path=p)
        self.assertEqual(latest["data"]["data"], {"password": "two"})
        self.assertEqual(latest["data"]["metadata"]["version"], 2)
        self.assertEqual(latest["data"]["metadata"]["deletion_time"], "")
        v1 = self.kv.read_secret_version(path=p, version=1)
        self.assertEqual(v1["data"]["data"], {"password": "one", "port": 5432})
        self.assertEqual(v1["data"]["metadata"]["version"], 1)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=p, version=9)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=uniq("compat/absent"))

    def test_values_of_any_json_type(self):
        p = uniq("compat/json")
        value = {"s": "x", "n": 1.5, "b": True, "z": None, "a": [1, "2"], "o": {"k": "v"}}
        self.kv.create_or_update_secret(path=p, secret=value)
        self.assertEqual(self.kv.read_secret_version(path=p)["data"]["data"], value)

    def test_check_and_set(self):
        p = uniq("compat/cas")
        self.kv.create_or_update_secret(path=p, secret={"v": "1"}, cas=0)
        with self.assertRaises(hexc.InvalidRequest) as cm:
            self.kv.create_or_update_secret(path=p, secret={"v": "x"}, cas=0)
        self.assertIn("check-and-set", str(cm.exception))
        self.kv.create_or_update_secret(path=p, secret={"v": "2"}, cas=1)
        with self.assertRaises(hexc.InvalidRequest):
            self.kv.create_or_update_secret(path=p, secret={"v": "x"}, cas=1)
        self.assertEqual(self.kv.read_secret_version(path=p)["data"]["data"], {"v": "2"})

    def test_patch_reads_then_writes_with_cas(self):
        p = uniq("compat/patch")
        self.kv.create_or_update_secret(path=p, secret={"a": "1", "b": "2"})
        r = self.kv.patch(path=p, secret={"b": "3"})
        self.assertEqual(r["data"]["version"], 2)
        self.assertEqual(self.kv.read_secret_version(path=p)["data"]["data"], {"a": "1", "b": "3"})

    def test_list_secrets(self):
        d = uniq("compat/list")
        for k in ("b", "a", "sub/c"):
            self.kv.create_or_update_secret(path="%s/%s" % (d, k), secret={"k": k})
        r = self.kv.list_secrets(path=d)
        self.assertEqual(r["data"]["keys"], ["a", "b", "sub/"])
        self.assertEqual(self.kv.list_secrets(path=d + "/sub")["data"]["keys"], ["c"])
        top = self.kv.list_secrets(path="")["data"]["keys"]
        self.assertIn("compat/", top)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.list_secrets(path=uniq("compat/empty"))

    def test_metadata_read_and_update(self):
        p = uniq("compat/meta")
        for i in range(3):
            self.kv.create_or_update_secret(path=p, secret={"i": str(i)})
        m = self.kv.read_secret_metadata(path=p)["data"]
        self.assertEqual(m["current_version"], 3)
        self.assertEqual(sorted(m["versions"]), ["1", "2", "3"])
        self.assertFalse(m["cas_required"])
        for field in ("created_time", "updated_time", "max_versions", "oldest_version",
                      "delete_version_after"):
            self.assertIn(field, m)
        self.kv.update_metadata(path=p, max_versions=2, cas_required=True)
        m = self.kv.read_secret_metadata(path=p)["data"]
        self.assertEqual(m["max_versions"], 2)
        self.assertTrue(m["cas_required"])
        # cas_required: a write without cas is refused, one with the right cas accepted.
        with self.assertRaises(hexc.InvalidRequest) as cm:
            self.kv.create_or_update_secret(path=p, secret={"i": "x"})
        self.assertIn("check-and-set parameter required", str(cm.exception))
        self.kv.create_or_update_secret(path=p, secret={"i": "3"}, cas=3)
        m = self.kv.read_secret_metadata(path=p)["data"]
        self.assertEqual(m["current_version"], 4)
        self.assertLessEqual(len(m["versions"]), 3)  # pruned to max_versions (+ kept stages)
        self.assertIn("4", m["versions"])
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_metadata(path=uniq("compat/nometa"))

    def test_delete_undelete_destroy(self):
        p = uniq("compat/del")
        self.kv.create_or_update_secret(path=p, secret={"v": "1"})
        self.kv.create_or_update_secret(path=p, secret={"v": "2"})
        self.kv.delete_latest_version_of_secret(path=p)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=p, version=2)
        m = self.kv.read_secret_metadata(path=p)["data"]
        self.assertNotEqual(m["versions"]["2"]["deletion_time"], "")
        self.assertEqual(m["versions"]["1"]["deletion_time"], "")
        self.kv.undelete_secret_versions(path=p, versions=[2])
        self.assertEqual(self.kv.read_secret_version(path=p)["data"]["data"], {"v": "2"})
        self.kv.delete_secret_versions(path=p, versions=[1])
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=p, version=1)
        self.kv.destroy_secret_versions(path=p, versions=[1])
        m = self.kv.read_secret_metadata(path=p)["data"]
        self.assertTrue(m["versions"]["1"]["destroyed"])
        self.kv.undelete_secret_versions(path=p, versions=[1])  # destroyed stays destroyed
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=p, version=1)
        self.assertEqual(self.kv.read_secret_version(path=p, version=2)["data"]["data"],
                         {"v": "2"})
        with self.assertRaises(hexc.InvalidRequest):  # hvac itself refuses an empty list
            self.c.adapter.post("/v1/secret/destroy/" + p, json={"versions": []})

    def test_delete_metadata_and_all_versions(self):
        d = uniq("compat/gone")
        p = d + "/x"
        self.kv.create_or_update_secret(path=p, secret={"v": "1"})
        self.kv.create_or_update_secret(path=p, secret={"v": "2"})
        self.kv.delete_metadata_and_all_versions(path=p)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_metadata(path=p)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.read_secret_version(path=p, version=1)
        with self.assertRaises(hexc.InvalidPath):
            self.kv.list_secrets(path=d)
        # Absent: still 204, as Vault.
        self.kv.delete_metadata_and_all_versions(path=p)
        # A new write starts at version 1 again.
        r = self.kv.create_or_update_secret(path=p, secret={"v": "3"})
        self.assertEqual(r["data"]["version"], 1)

    def test_mount_configuration(self):
        cfg = self.kv.read_configuration()["data"]
        for field in ("cas_required", "max_versions", "delete_version_after"):
            self.assertIn(field, cfg)
        self.assertFalse(cfg["cas_required"])


class TokenTests(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.tok = self.c.auth.token

    def test_create_with_options_and_lookup(self):
        r = self.tok.create(policies=["compat-p1"], ttl="1h", renewable=True,
                            display_name="svc", num_uses=5, meta={"team": "a"})
        a = r["auth"]
        t = a["client_token"]
        self.assertTrue(t.startswith("hvs."))
        self.assertEqual(sorted(a["policies"]), ["compat-p1", "default"])
        self.assertEqual(a["lease_duration"], 3600)
        self.assertTrue(a["renewable"])
        self.assertEqual(a["token_type"], "service")
        self.assertFalse(a["orphan"])
        self.assertEqual(a["metadata"], {"team": "a"})
        d = self.tok.lookup(t)["data"]
        self.assertEqual(d["id"], t)
        self.assertEqual(d["accessor"], a["accessor"])
        self.assertEqual(d["display_name"], "token-svc")
        self.assertEqual(d["num_uses"], 5)
        self.assertTrue(d["renewable"])
        self.assertEqual(d["creation_ttl"], 3600)
        self.assertTrue(3590 <= d["ttl"] <= 3600, d["ttl"])
        self.assertEqual(d["meta"], {"team": "a"})
        self.assertEqual(d["type"], "service")
        acc = self.tok.lookup_accessor(a["accessor"])["data"]
        self.assertEqual(acc["id"], "")
        self.assertEqual(acc["display_name"], "token-svc")

    def test_lookup_self_and_renew_self(self):
        t = self.tok.create(policies=["compat-p1"], ttl="30m", renewable=True)["auth"]
        c2 = client(t["client_token"])
        self.assertTrue(c2.is_authenticated())
        d = c2.auth.token.lookup_self()["data"]
        self.assertEqual(d["id"], t["client_token"])
        self.assertEqual(sorted(d["policies"]), ["compat-p1", "default"])
        r = c2.auth.token.renew_self(increment="2h")
        self.assertEqual(r["auth"]["lease_duration"], 7200)
        self.assertTrue(7190 <= c2.auth.token.lookup_self()["data"]["ttl"] <= 7200)
        r = self.tok.renew(t["client_token"], increment="1h")
        self.assertEqual(r["auth"]["lease_duration"], 3600)

    def test_non_renewable_token(self):
        t = self.tok.create(policies=["compat-p1"], ttl="1h", renewable=False)["auth"]
        self.assertFalse(t["renewable"])
        with self.assertRaises(hexc.InvalidRequest):
            client(t["client_token"]).auth.token.renew_self(increment="2h")

    def test_num_uses_runs_out(self):
        t = self.tok.create(policies=["default"], num_uses=2)["auth"]["client_token"]
        c2 = client(t)
        c2.auth.token.lookup_self()
        c2.auth.token.lookup_self()
        with self.assertRaises(hexc.Forbidden):
            client(t, failing=True).auth.token.lookup_self()

    def test_revoke_revokes_children(self):
        # The parent needs to create tokens: a policy granting auth/token/create.
        self.c.sys.create_or_update_policy(
            name="compat-maker",
            policy='path "auth/token/create" { capabilities = ["update"] }')
        parent = self.tok.create(policies=["compat-maker"], ttl="1h")["auth"]["client_token"]
        cp = client(parent)
        child = cp.auth.token.create(policies=["compat-maker"])["auth"]
        grandchild = client(child["client_token"]).auth.token.create(
            policies=["default"])["auth"]["client_token"]
        # A child may only get the policies its parent holds.
        with self.assertRaises((hexc.InvalidRequest, hexc.Forbidden)):
            cp.auth.token.create(policies=["root"])
        # A child of a token with an expiry does not outlive it.
        self.assertLessEqual(self.tok.lookup(child["client_token"])["data"]["ttl"], 3600)
        self.assertTrue(client(grandchild).is_authenticated())
        self.tok.revoke(parent)
        for t in (parent, child["client_token"], grandchild):
            self.assertFalse(client(t, failing=True).is_authenticated())
            with self.assertRaises(hexc.Forbidden):  # Vault: 403 "bad token"
                self.tok.lookup(t)

    def test_revoke_unknown_token_is_a_no_op(self):
        # Vault's revokeCommon: an unknown token is not an error, 204.
        t = self.tok.create(policies=["default"])["auth"]["client_token"]
        self.tok.revoke(t)
        self.tok.revoke(t)

    def test_revoke_self_and_orphan(self):
        t = self.tok.create(policies=["default"], no_parent=True)["auth"]
        self.assertTrue(t["orphan"])
        c2 = client(t["client_token"])
        c2.auth.token.revoke_self()
        self.assertFalse(client(t["client_token"], failing=True).is_authenticated())

    def test_expired_token(self):
        t = self.tok.create(policies=["default"], ttl="1s")["auth"]["client_token"]
        time.sleep(2.1)
        self.assertFalse(client(t, failing=True).is_authenticated())

    def test_bad_token(self):
        self.assertFalse(client("hvs.compat-not-a-token", failing=True).is_authenticated())
        with self.assertRaises(hexc.Forbidden):
            client("hvs.compat-not-a-token", failing=True).secrets.kv.v2.read_secret_version(path="x")


class PolicyTests(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.kv = self.c.secrets.kv.v2

    def test_policy_allows_one_path(self):
        base = uniq("compat/pol")
        self.kv.create_or_update_secret(path=base + "/allowed", secret={"v": "yes"})
        self.kv.create_or_update_secret(path=base + "/neighbour", secret={"v": "no"})
        hcl = ('path "secret/data/%s/allowed" {\n  capabilities = ["read"]\n}\n'
               'path "secret/metadata/%s/*" {\n  capabilities = ["list"]\n}\n' % (base, base))
        self.c.sys.create_or_update_policy(name="compat-reader", policy=hcl)
        self.assertIn("compat-reader", self.c.sys.list_policies()["data"]["policies"])
        self.assertIn("allowed", self.c.sys.read_policy("compat-reader")["data"]["rules"])
        t = self.c.auth.token.create(policies=["compat-reader"], ttl="10m")["auth"]
        r = client(t["client_token"]).secrets.kv.v2
        self.assertEqual(r.read_secret_version(path=base + "/allowed")["data"]["data"],
                         {"v": "yes"})
        with self.assertRaises(hexc.Forbidden):
            r.read_secret_version(path=base + "/neighbour")
        with self.assertRaises(hexc.Forbidden):
            r.create_or_update_secret(path=base + "/allowed", secret={"v": "overwrite"})
        with self.assertRaises(hexc.Forbidden):
            r.read_secret_metadata(path=base + "/allowed")
        with self.assertRaises(hexc.Forbidden):
            client(t["client_token"]).sys.create_or_update_policy(name="x", policy="")
        self.assertEqual(self.kv.read_secret_version(path=base + "/allowed")["data"]["data"],
                         {"v": "yes"})
        # The new policy takes effect at once for existing tokens.
        self.c.sys.create_or_update_policy(
            name="compat-reader",
            policy='path "secret/data/%s/*" { capabilities = ["read"] }' % base)
        self.assertEqual(r.read_secret_version(path=base + "/neighbour")["data"]["data"],
                         {"v": "no"})
        self.c.sys.delete_policy("compat-reader")
        self.assertNotIn("compat-reader", self.c.sys.list_policies()["data"]["policies"])
        with self.assertRaises(hexc.Forbidden):
            r.read_secret_version(path=base + "/allowed")

    def test_deny_wins_and_bad_hcl(self):
        base = uniq("compat/deny")
        self.kv.create_or_update_secret(path=base + "/a", secret={"v": "1"})
        self.c.sys.create_or_update_policy(
            name="compat-deny",
            policy='path "secret/data/%s/*" { capabilities = ["read"] }\n'
                   'path "secret/data/%s/a" { capabilities = ["deny"] }' % (base, base))
        t = self.c.auth.token.create(policies=["compat-deny"])["auth"]["client_token"]
        with self.assertRaises(hexc.Forbidden):
            client(t).secrets.kv.v2.read_secret_version(path=base + "/a")
        with self.assertRaises(hexc.InvalidRequest):
            self.c.sys.create_or_update_policy(name="compat-bad", policy='path "x" { capab')


class SysTests(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_health(self):
        h = self.c.sys.read_health_status(method="GET")
        self.assertTrue(h["initialized"])
        self.assertFalse(h["sealed"])
        self.assertFalse(h["standby"])
        self.assertIn("version", h)
        r = self.c.sys.read_health_status(method="HEAD")
        self.assertEqual(r.status_code, 200)
        self.assertTrue(self.c.sys.is_initialized())

    def test_seal_status(self):
        s = self.c.sys.read_seal_status()
        self.assertTrue(s["initialized"])
        self.assertFalse(s["sealed"])
        for field in ("t", "n", "progress", "version", "type"):
            self.assertIn(field, s)
        self.assertEqual(self.c.seal_status["sealed"], False)
        self.assertFalse(self.c.sys.is_sealed())

    def test_mounts_and_auth_methods(self):
        m = self.c.sys.list_mounted_secrets_engines()["data"]
        self.assertEqual(m["secret/"]["type"], "kv")
        self.assertEqual(m["secret/"]["options"]["version"], "2")
        a = self.c.sys.list_auth_methods()["data"]
        self.assertEqual(a["token/"]["type"], "token")

    def test_token_helpers(self):
        self.assertTrue(self.c.is_authenticated())
        d = self.c.auth.token.lookup_self()["data"]
        self.assertEqual(d["policies"], ["root"])


class Server:
    """A non-dev rekey server of a test's own, in a temporary directory."""

    def __init__(self, tmp, key_file=None):
        self.tmp, self.port, self.proc = tmp, free_port(), None
        self.addr = "http://127.0.0.1:%d" % self.port
        self.env = clean_env()
        self.env["REKEY_STORE"] = BACKEND + ":" + os.path.join(tmp, "store.db")
        if key_file:
            self.env["REKEY_KEY_FILE"] = key_file
        self.cfg = os.path.join(tmp, "rekey.yaml")
        with open(self.cfg, "w") as f:
            f.write('version: 1\nserver:\n  listen: "127.0.0.1:%d"\nsecrets: []\n' % self.port)

    def start(self):
        self.log = open(os.path.join(self.tmp, "server.log"), "ab")
        self.proc = subprocess.Popen([REKEY, "server", "-config", self.cfg], env=self.env,
                                     stdout=self.log, stderr=self.log, cwd=self.tmp)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited: " + self.read_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start: " + self.read_log())

    def read_log(self):
        with open(os.path.join(self.tmp, "server.log"), errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop on SIGTERM")
            self.log.close()
            self.proc = None
            return rc
        return None


@unittest.skipUnless(REKEY, "REKEY (the rekey binary) is not set")
class SealTests(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="rekey-compat-")
        self.tmp = self.tmpdir.name
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.tmpdir.cleanup()

    def test_shamir_init_seal_unseal(self):
        s = Server(self.tmp)
        self.servers.append(s)
        s.start()
        c = client(token=None, addr=s.addr)
        self.assertFalse(c.sys.is_initialized())
        init = c.sys.initialize(secret_shares=3, secret_threshold=2)
        keys, root = init["keys"], init["root_token"]
        self.assertEqual(len(keys), 3)
        self.assertTrue(c.sys.is_sealed())
        st = c.sys.submit_unseal_key(keys[0])
        self.assertTrue(st["sealed"])
        self.assertEqual(st["progress"], 1)
        st = c.sys.submit_unseal_key(keys[2])
        self.assertFalse(st["sealed"])
        c.token = root
        kv = c.secrets.kv.v2
        kv.create_or_update_secret(path="app/db", secret={"pw": "s1"})
        c.sys.seal()
        self.assertTrue(c.sys.is_sealed())
        with self.assertRaises(hexc.VaultDown):
            kv.read_secret_version(path="app/db")
        h = c.sys.read_health_status(method="GET")  # hvac returns the response when not 200
        self.assertEqual(h.status_code, 503)
        self.assertTrue(h.json()["sealed"])
        self.assertEqual(c.sys.read_health_status(method="GET", sealed_code=200)["sealed"], True)
        st = c.sys.submit_unseal_keys(keys[1:])
        self.assertFalse(st["sealed"])
        self.assertEqual(kv.read_secret_version(path="app/db")["data"]["data"], {"pw": "s1"})
        # A restarted server starts sealed; the shares open it again.
        self.assertEqual(s.stop(), 0)
        s.start()
        self.assertTrue(c.sys.is_sealed())
        with self.assertRaises(hexc.VaultDown):
            kv.read_secret_version(path="app/db")
        c.sys.submit_unseal_keys([keys[1], keys[0]])
        self.assertEqual(kv.read_secret_version(path="app/db")["data"]["data"], {"pw": "s1"})

    def test_key_file_seal_then_restart(self):
        key = os.path.join(self.tmp, "root.key")
        env = clean_env(REKEY_STORE=BACKEND + ":" + os.path.join(self.tmp, "store.db"))
        out = subprocess.run([REKEY, "operator", "init", "-key-file=" + key], env=env,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        root = [ln.split(": ", 1)[1] for ln in out.stdout.splitlines()
                if ln.startswith("Initial Root Token: ")][0]
        s = Server(self.tmp, key_file=key)
        self.servers.append(s)
        s.start()
        c = client(token=root, addr=s.addr)
        self.assertFalse(c.sys.is_sealed())
        kv = c.secrets.kv.v2
        kv.create_or_update_secret(path="app/db", secret={"pw": "k1"})
        # A token without sudo on sys/seal cannot seal.
        t = c.auth.token.create(policies=["default"])["auth"]["client_token"]
        with self.assertRaises(hexc.Forbidden):
            client(t, s.addr).sys.seal()
        c.sys.seal()
        self.assertTrue(c.seal_status["sealed"])
        with self.assertRaises(hexc.VaultDown):
            kv.read_secret_version(path="app/db")
        with self.assertRaises(hexc.VaultDown):
            c.auth.token.lookup_self()
        # A key-file store is not opened by shares.
        with self.assertRaises(hexc.InvalidRequest):
            c.sys.submit_unseal_key("00112233")
        # Restarting unseals it with the key file; the data is still there.
        self.assertEqual(s.stop(), 0)
        s.start()
        self.assertFalse(c.sys.is_sealed())
        self.assertEqual(kv.read_secret_version(path="app/db")["data"]["data"], {"pw": "k1"})


class TransitTests(unittest.TestCase):
    """hvac's transit calls (secrets.transit) against rekey's transit engine."""

    def setUp(self):
        self.t = client().secrets.transit

    def test_keys_sign_verify_rotate(self):
        import base64
        name = uniq("hvac-ed")
        self.t.create_key(name=name, key_type="ed25519")
        key = self.t.read_key(name=name)["data"]
        self.assertEqual(key["type"], "ed25519")
        self.assertEqual(key["latest_version"], 1)
        self.assertTrue(key["supports_signing"])
        self.assertIn("1", key["keys"])
        self.assertIn(name, self.t.list_keys()["data"]["keys"])
        msg = base64.b64encode(b"hvac says hello").decode()
        sig = self.t.sign_data(name=name, hash_input=msg)["data"]["signature"]
        self.assertTrue(sig.startswith("vault:v1:"))
        self.assertTrue(self.t.verify_signed_data(name=name, hash_input=msg,
                                                  signature=sig)["data"]["valid"])
        other = base64.b64encode(b"something else").decode()
        self.assertFalse(self.t.verify_signed_data(name=name, hash_input=other,
                                                   signature=sig)["data"]["valid"])
        self.t.rotate_key(name=name)
        self.assertEqual(self.t.read_key(name=name)["data"]["latest_version"], 2)
        sig2 = self.t.sign_data(name=name, hash_input=msg)["data"]["signature"]
        self.assertTrue(sig2.startswith("vault:v2:"))
        # the minimum version: v1 signatures stop verifying
        self.t.update_key_configuration(name=name, min_decryption_version=2)
        self.assertEqual(list(self.t.read_key(name=name)["data"]["keys"]), ["2"])
        with self.assertRaises(hexc.InvalidRequest):
            self.t.verify_signed_data(name=name, hash_input=msg, signature=sig)
        # deletion only when allowed
        with self.assertRaises(hexc.InvalidRequest):
            self.t.delete_key(name=name)
        self.t.update_key_configuration(name=name, deletion_allowed=True)
        self.t.delete_key(name=name)
        with self.assertRaises(hexc.InvalidPath):
            self.t.read_key(name=name)

    def test_rsa_ecdsa_options(self):
        import base64
        msg = base64.b64encode(b"payload").decode()
        rsa = uniq("hvac-rsa")
        self.t.create_key(name=rsa, key_type="rsa-2048")
        for alg in ("pss", "pkcs1v15"):
            sig = self.t.sign_data(name=rsa, hash_input=msg, hash_algorithm="sha2-512",
                                   signature_algorithm=alg)["data"]["signature"]
            self.assertTrue(self.t.verify_signed_data(
                name=rsa, hash_input=msg, signature=sig, hash_algorithm="sha2-512",
                signature_algorithm=alg)["data"]["valid"])
        ec = uniq("hvac-ec")
        self.t.create_key(name=ec, key_type="ecdsa-p384")
        sig = self.t.sign_data(name=ec, hash_input=msg, marshaling_algorithm="jws")["data"]["signature"]
        self.assertTrue(self.t.verify_signed_data(name=ec, hash_input=msg, signature=sig,
                                                  marshaling_algorithm="jws")["data"]["valid"])
        pem = self.t.read_key(name=ec)["data"]["keys"]["1"]["public_key"]
        self.assertIn("BEGIN PUBLIC KEY", pem)

    def test_encrypt_decrypt_rewrap(self):
        import base64
        name = uniq("hvac-aes")
        self.t.create_key(name=name)  # Vault's default type: aes256-gcm96
        self.assertEqual(self.t.read_key(name=name)["data"]["type"], "aes256-gcm96")
        pt = base64.b64encode(b"the secret").decode()
        ct = self.t.encrypt_data(name=name, plaintext=pt)["data"]["ciphertext"]
        self.assertTrue(ct.startswith("vault:v1:"))
        self.assertEqual(self.t.decrypt_data(name=name, ciphertext=ct)["data"]["plaintext"], pt)
        self.t.rotate_key(name=name)
        ct2 = self.t.rewrap_data(name=name, ciphertext=ct)["data"]["ciphertext"]
        self.assertTrue(ct2.startswith("vault:v2:"))
        self.assertEqual(self.t.decrypt_data(name=name, ciphertext=ct2)["data"]["plaintext"], pt)
        batch = self.t.encrypt_data(name=name, plaintext=None,
                                     batch_input=[{"plaintext": pt}, {"plaintext": pt}])
        self.assertEqual(len(batch["data"]["batch_results"]), 2)
        # not exportable: the private key does not leave
        with self.assertRaises(hexc.Forbidden):
            self.t.export_key(name=name, key_type="encryption-key")
        # exportable once set
        self.t.update_key_configuration(name=name, exportable=True)
        keys = self.t.export_key(name=name, key_type="encryption-key")["data"]["keys"]
        self.assertEqual(sorted(keys), ["1", "2"])
        self.assertEqual(len(base64.b64decode(keys["2"])), 32)


def main():
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for cls in (KV2Tests, TokenTests, PolicyTests, SysTests, SealTests, TransitTests):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    if len(sys.argv) > 1:  # run only the tests whose id contains an argument
        suite = unittest.TestSuite(t for t in suite if any(a in t.id() for a in sys.argv[1:]))
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    ok = res.testsRun - bad - len(res.skipped)
    line = "hvac: %d passed, %d failed" % (ok, bad)
    if res.skipped:
        line += ", %d skipped" % len(res.skipped)
    print(line)
    return 0 if bad == 0 and res.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
