#!/usr/bin/python3
"""A local stand-in for the LLM providers' APIs that rekey's provider-key kind calls, for tests.

It speaks the shapes of the real endpoints (checked against the providers' docs):
  OpenAI     GET  /v1/models                                   Authorization: Bearer KEY
             POST /v1/organization/projects/{p}/service_accounts           (admin key) -> the
                  account's id and its api_key {value, id}, the value given once
             DELETE /v1/organization/projects/{p}/service_accounts/{id}    (admin key); 404 once gone
  Anthropic  GET  /v1/models                          x-api-key: KEY, anthropic-version required
             GET  /v1/organizations/api_keys?limit&after_id   (admin key) -> data[{id,
                  partial_key_hint, status}], has_more, last_id; pages of `page_size` (default 2)
             POST /v1/organizations/api_keys/{id} {"status": "inactive"}   (admin key)
  xAI        GET  /v1/api-key                                  Bearer KEY -> api_key_blocked,
                  api_key_disabled, team_blocked; 400 for a key it does not know (yet)
             POST /auth/teams/{team}/api-keys {name, acls}     (management key) -> apiKey, apiKeyId;
                  a new key answers 400 for its first `propagation` checks (not propagated yet)
             DELETE /auth/api-keys/{id}                        (management key); 404 once gone
A refused key's error body quotes the whole key, worse than OpenAI's partial echo, so a test
proves rekey never shows a provider's error body.

State (its lists of valid keys, admin-created keys, deleted and deactivated ones, the request
log) lives in STATE (JSON), written after every change and read at start, so a test can stop
the server (connection refused) and start it again on the same port. Keys are kept as SHA-256
digests with their provider's partial hint, never as values: no key is in STATE, in the log or
on a command line. The server can be told to answer 503 or 429, or to answer late (timeout).

Usage:
  provider-server.py serve PORT STATE        (logs "METHOD PATH -> STATUS" on stderr)
  provider-server.py ctl PORT < REQUEST.json (prints the JSON answer)
  provider-server.py ctl PORT OP [NAME=VALUE...]   the same request from arguments; a key is
                                             given as key=@FILE and read from FILE, never argv
  provider-server.py query PORT EXPR         prints the Python expression EXPR over the state S
Requests of ctl (one JSON object; values of keys only ever travel on stdin or in a file):
  {"op": "add_key", "provider": "openai|anthropic|xai", "key": K}     a key made at a console
  {"op": "add_admin", "provider": "openai|anthropic|xai", "key": K}   an admin/management key
  {"op": "check", "key": K}          -> {"known": bool, "status": ..., "id": ...}
  {"op": "block", "key": K}          the key answers as blocked (xAI) / refused (others)
  {"op": "mode", "mode": "ok|401|503|429|timeout", "only": "/v1/", "count": N, "delay": S}
                                     the next N (-1: all) requests under `only` answer so
  {"op": "set", "propagation": N, "page_size": N}
  {"op": "state"}                    -> the whole state (digests, ids and lists only)
"""
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import uuid

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
LOCK = threading.RLock()
STATE = {}
STATE_FILE = None


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def hint_of(key):
    """Anthropic's partial_key_hint shape: the prefix and three more characters, "...", the
    last four."""
    head = len("sk-ant-api03-") + 3 if key.startswith("sk-ant-api03-") else 8
    return key[:head] + "..." + key[-4:]


def fresh_state():
    return {"keys": {}, "admin": {}, "service_accounts": {}, "created": [], "deleted": [],
            "deactivated": [], "mode": "ok", "only": "/", "count": -1, "delay": 5.0,
            "propagation": 0, "page_size": 2, "checks": {}, "requests": []}


def save():
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(STATE, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE_FILE)


def random_key(prefix, n):
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(n))


def add_key(provider, key, origin, **extra):
    rec = {"provider": provider, "status": "active", "blocked": False, "origin": origin,
           "hint": hint_of(key), "id": extra.pop("id", None) or
           ("apikey_" + secrets.token_hex(8) if provider == "anthropic" else
            str(uuid.uuid4()) if provider == "xai" else "key_" + secrets.token_hex(8))}
    rec.update(extra)
    STATE["keys"][digest(key)] = rec
    return rec


def find_key(key):
    return STATE["keys"].get(digest(key)) if key else None


def key_by_id(kid):
    for d, rec in STATE["keys"].items():
        if rec["id"] == kid:
            return d, rec
    return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # never the headers (they hold keys)
        pass

    # ---- plumbing ----

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def answer(self, status, body):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a timeout test)
            pass
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith("/_control"):
            with LOCK:
                STATE["requests"].append("%s %s -> %d" % (self.command, path, status))
                save()
        sys.stderr.write("provider-server: %s %s -> %d\n" % (self.command, path, status))

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def admin_ok(self, kind, key):
        return key is not None and any(hmac.compare_digest(d, digest(key)) and k == kind
                                       for d, k in STATE["admin"].items())

    def injected(self, path):
        """The told failure mode, if it applies to this request: True when answered."""
        with LOCK:
            mode, only, count, delay = STATE["mode"], STATE["only"], STATE["count"], STATE["delay"]
            if mode == "ok" or not path.startswith(only) or count == 0:
                return False
            if count > 0:
                STATE["count"] = count - 1
                if STATE["count"] == 0:
                    STATE["mode"] = "ok"
            save()
        if mode == "timeout":
            time.sleep(delay)
            self.answer(504, {"error": {"type": "timeout", "message": "late"}})
        elif mode == "401":
            self.answer(401, {"error": {"type": "invalid_request_error",
                                        "code": "invalid_api_key", "message": "told to refuse"}})
        elif mode == "429":
            self.answer(429, {"error": {"type": "rate_limit_error", "code": "rate_limit_exceeded",
                                        "message": "slow down"}})
        else:
            self.answer(503, {"error": {"type": "overloaded_error", "message": "try later"}})
        return True

    # ---- routing ----

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = urllib.parse.parse_qs(url.query)
        body = self.body_json() if method == "POST" else {}
        if url.path == "/_control" and method == "POST":
            return self.control(body)
        if self.injected(url.path):
            return
        if body is None:
            return self.answer(400, {"error": {"type": "invalid_request_error",
                                               "message": "bad JSON"}})
        with LOCK:
            if method == "GET" and parts == ["v1", "models"]:
                return self.models()
            if method == "GET" and parts == ["v1", "api-key"]:
                return self.xai_key_info()
            if parts[:3] == ["v1", "organization", "projects"] and len(parts) >= 5 and \
                    parts[4] == "service_accounts":
                return self.openai_accounts(method, parts[3], parts[5] if len(parts) > 5 else None,
                                            body)
            if parts[:3] == ["v1", "organizations", "api_keys"]:
                return self.anthropic_keys(method, parts[3] if len(parts) > 3 else None, query,
                                           body)
            if method == "POST" and len(parts) == 4 and parts[:2] == ["auth", "teams"] and \
                    parts[3] == "api-keys":
                return self.xai_create(parts[2], body)
            if method == "DELETE" and len(parts) == 3 and parts[:2] == ["auth", "api-keys"]:
                return self.xai_delete(parts[2])
        return self.answer(404, {"error": {"type": "not_found", "message": "no such route"}})

    # ---- inference: the checks rekey makes ----

    def models(self):
        if self.headers.get("x-api-key") is not None:  # Anthropic
            key = self.headers.get("x-api-key")
            if self.headers.get("anthropic-version") is None:
                return self.answer(400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "anthropic-version: required"}})
            rec = find_key(key)
            if rec is None or rec["provider"] != "anthropic" or rec["status"] != "active" or \
                    rec["blocked"]:
                return self.answer(401, {"type": "error", "error": {
                    "type": "authentication_error", "message": "invalid x-api-key " + key}})
            return self.answer(200, {"data": [{"type": "model", "id": "claude-sonnet-4-5",
                                               "display_name": "Claude Sonnet 4.5"}],
                                     "has_more": False, "first_id": "claude-sonnet-4-5",
                                     "last_id": "claude-sonnet-4-5"})
        key = self.bearer()
        rec = find_key(key)
        if rec is None or rec["provider"] != "openai" or rec["status"] != "active" or \
                rec["blocked"]:
            return self.answer(401, {"error": {
                "message": "Incorrect API key provided: %s." % key,
                "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        return self.answer(200, {"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]})

    def xai_key_info(self):
        key = self.bearer()
        rec = find_key(key)
        if rec is not None and rec["provider"] == "xai":
            STATE["checks"][rec["id"]] = STATE["checks"].get(rec["id"], 0) + 1
        if rec is None or rec["provider"] != "xai" or rec["status"] != "active":
            return self.answer(400, {"code": "Client specified an invalid argument",
                                     "error": "Incorrect API key provided: %s" % key})
        if rec.get("pending_checks", 0) > 0:
            rec["pending_checks"] -= 1
            save()
            return self.answer(400, {"code": "Client specified an invalid argument",
                                     "error": "Incorrect API key provided: %s" % key})
        return self.answer(200, {
            "redacted_api_key": rec["hint"], "user_id": "u-1", "name": rec.get("name", "key"),
            "create_time": "2026-01-01T00:00:00Z", "modify_time": "2026-01-01T00:00:00Z",
            "modified_by": "u-1", "team_id": rec.get("team", "team-1"),
            "acls": rec.get("acls", ["api-key:model:*", "api-key:endpoint:*"]),
            "api_key_id": rec["id"], "team_blocked": False,
            "api_key_blocked": bool(rec["blocked"]), "api_key_disabled": False})

    # ---- OpenAI: project service accounts ----

    def openai_accounts(self, method, project, sa_id, body):
        if not self.admin_ok("openai", self.bearer()):
            return self.answer(401, {"error": {"message": "Invalid admin key",
                                               "type": "invalid_request_error",
                                               "code": "invalid_api_key"}})
        if method == "POST" and sa_id is None:
            name = body.get("name")
            if not isinstance(name, str) or not name:
                return self.answer(400, {"error": {"message": "name is required",
                                                   "type": "invalid_request_error"}})
            sa_id = "svc_acct_" + secrets.token_hex(12)
            value = random_key("sk-svcacct-", 150)
            rec = add_key("openai", value, "admin", sa=sa_id)
            STATE["service_accounts"][sa_id] = {"project": project, "name": name,
                                                "key": digest(value), "deleted": False}
            STATE["created"].append(sa_id)
            now = int(time.time())
            return self.answer(200, {
                "object": "organization.project.service_account", "id": sa_id, "name": name,
                "role": "member", "created_at": now,
                "api_key": {"object": "organization.project.service_account.api_key",
                            "value": value, "name": "Secret Key", "created_at": now,
                            "id": rec["id"]}})
        if method == "DELETE" and sa_id is not None:
            sa = STATE["service_accounts"].get(sa_id)
            if sa is None or sa["deleted"] or sa["project"] != project:
                return self.answer(404, {"error": {"message": "No such service account",
                                                   "type": "invalid_request_error"}})
            sa["deleted"] = True
            STATE["keys"][sa["key"]]["status"] = "deleted"
            STATE["deleted"].append(sa_id)
            return self.answer(200, {"object": "organization.project.service_account.deleted",
                                     "id": sa_id, "deleted": True})
        return self.answer(405, {"error": {"message": "method not allowed"}})

    # ---- Anthropic: the Admin API's keys ----

    def anthropic_keys(self, method, kid, query, body):
        if self.headers.get("anthropic-version") is None or \
                not self.admin_ok("anthropic", self.headers.get("x-api-key")):
            return self.answer(401, {"type": "error", "error": {
                "type": "authentication_error", "message": "invalid admin key"}})
        if method == "GET" and kid is None:
            keys = [r for r in STATE["keys"].values() if r["provider"] == "anthropic"]
            keys.sort(key=lambda r: r["id"])
            after = (query.get("after_id") or [None])[0]
            if after is not None:
                keys = [r for r in keys if r["id"] > after]
            limit = min(int((query.get("limit") or ["20"])[0]), STATE["page_size"])
            page, more = keys[:limit], len(keys) > limit
            data = [{"id": r["id"], "type": "api_key", "name": r.get("name", "key"),
                     "partial_key_hint": r["hint"],
                     "status": "archived" if r["status"] == "deleted" else r["status"],
                     "created_at": "2026-01-01T00:00:00Z",
                     "created_by": {"id": "user_01", "type": "user"},
                     "workspace_id": None} for r in page]
            return self.answer(200, {"data": data, "has_more": more,
                                     "first_id": page[0]["id"] if page else None,
                                     "last_id": page[-1]["id"] if page else None})
        if method == "POST" and kid is not None:
            _, rec = key_by_id(kid)
            if rec is None or rec["provider"] != "anthropic":
                return self.answer(404, {"type": "error", "error": {
                    "type": "not_found_error", "message": "no such key"}})
            status = body.get("status")
            if status not in (None, "active", "inactive", "archived"):
                return self.answer(400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "bad status"}})
            if status is not None and status != rec["status"]:
                rec["status"] = status
                if status == "inactive":
                    STATE["deactivated"].append(kid)
            return self.answer(200, {"id": kid, "type": "api_key", "status": rec["status"],
                                     "partial_key_hint": rec["hint"], "name": "key"})
        return self.answer(405, {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "method not allowed"}})

    # ---- xAI: the management API ----

    def xai_create(self, team, body):
        if not self.admin_ok("xai", self.bearer()):
            return self.answer(401, {"code": "Unauthenticated", "error": "bad management key"})
        name, acls = body.get("name"), body.get("acls", [])
        if not isinstance(name, str) or not name or not isinstance(acls, list):
            return self.answer(400, {"code": "Client specified an invalid argument",
                                     "error": "name is required"})
        value = random_key("xai-", 80)
        rec = add_key("xai", value, "admin", team=team, name=name, acls=acls,
                      pending_checks=STATE["propagation"])
        STATE["created"].append(rec["id"])
        return self.answer(200, {
            "redactedApiKey": rec["hint"], "apiKey": value, "userId": "u-1", "name": name,
            "createTime": "2026-01-01T00:00:00Z", "modifyTime": "2026-01-01T00:00:00Z",
            "teamId": team, "apiKeyId": rec["id"], "disabled": False, "expireTime": None,
            "qps": None, "qpm": None, "tpm": None, "aclStrings": acls})

    def xai_delete(self, kid):
        if not self.admin_ok("xai", self.bearer()):
            return self.answer(401, {"code": "Unauthenticated", "error": "bad management key"})
        _, rec = key_by_id(kid)
        if rec is None or rec["provider"] != "xai" or rec["status"] == "deleted":
            return self.answer(404, {"code": "Some requested entity was not found",
                                     "error": "no such key"})
        rec["status"] = "deleted"
        STATE["deleted"].append(kid)
        return self.answer(200, {})

    # ---- control ----

    def control(self, req):
        if not isinstance(req, dict):
            return self.answer(400, {"error": "a JSON object"})
        op = req.get("op")
        with LOCK:
            if op == "add_key":
                rec = add_key(req["provider"], req["key"], "manual")
                out = {"id": rec["id"], "hint": rec["hint"]}
            elif op == "add_admin":
                STATE["admin"][digest(req["key"])] = req["provider"]
                out = {}
            elif op == "check":
                rec = find_key(req.get("key"))
                out = {"known": rec is not None, "status": rec and rec["status"],
                       "id": rec and rec["id"], "origin": rec and rec["origin"]}
            elif op == "block":
                rec = find_key(req.get("key"))
                if rec is not None:
                    rec["blocked"] = True
                out = {"blocked": rec is not None}
            elif op == "mode":
                STATE["mode"] = req.get("mode", "ok")
                STATE["only"] = req.get("only", "/")
                STATE["count"] = req.get("count", -1)
                STATE["delay"] = float(req.get("delay", 5.0))
                out = {}
            elif op == "set":
                for k in ("propagation", "page_size"):
                    if k in req:
                        STATE[k] = int(req[k])
                out = {}
            elif op == "state":
                out = STATE
            else:
                return self.answer(400, {"error": "unknown op"})
            save()
            data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(port, state_file):
    global STATE, STATE_FILE
    STATE_FILE = state_file
    try:
        with open(state_file, encoding="utf-8") as f:
            STATE = json.load(f)
    except (OSError, ValueError):
        STATE = fresh_state()
        save()
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer.daemon_threads = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    sys.stderr.write("provider-server: listening on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    srv.serve_forever()


def ctl_request(args):
    """OP [NAME=VALUE...] as a control request; key=@FILE reads the key from FILE."""
    req = {"op": args[0]}
    for a in args[1:]:
        k, v = a.split("=", 1)
        if v.startswith("@"):
            with open(v[1:], encoding="utf-8") as f:
                v = f.read().rstrip("\n")
        elif k in ("count", "propagation", "page_size"):
            v = int(v)
        elif k == "delay":
            v = float(v)
        req[k] = v
    return json.dumps(req).encode()


def ctl(port, args):
    body = ctl_request(args) if args else sys.stdin.buffer.read()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = ("POST /_control HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode() + body
    s.sendall(req)
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            break
        chunks.append(c)
    s.close()
    head, _, data = b"".join(chunks).partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        sys.stderr.write("provider-server ctl: %s\n" % head.split(b"\r\n")[0].decode())
        sys.exit(1)
    return data.decode()


def query(port, expr):
    """Prints the value of the Python expression expr over the state S."""
    state = json.loads(ctl(port, ["state"]))
    print(eval(expr, {"S": state}))  # a test's own expression, never input from elsewhere


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "ctl":
        sys.stdout.write(ctl(int(sys.argv[2]), sys.argv[3:]) + "\n")
    elif len(sys.argv) == 4 and sys.argv[1] == "query":
        query(int(sys.argv[2]), sys.argv[3])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
