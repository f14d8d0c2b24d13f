#!/usr/bin/env python3
"""An Azure Key Vault keys REST server plus a Microsoft Entra ID token endpoint, for tests (127.0.0.1 only, HTTPS
with a throwaway CA).

Key Vault: POST /keys/{name}[/{version}]/wrapkey and /unwrapkey?api-version=7.x with {"alg", "value"
(base64url)}, real RSA-OAEP-256 (and RSA-OAEP) on real 2048-bit RSA keys, responses {"kid", "value"}, errors
{"error": {"code", "message", "innererror"}}. Unauthenticated or stale-token requests get Key Vault's 401
bearer challenge: WWW-Authenticate: Bearer authorization="<this server>/<tenant>", resource="https://vault.azure.net".
GetKey: GET /keys/{name}[/{version}] returns the key bundle {"key" (the public JWK, its kid), "attributes",
"tags"}; UpdateKey: PATCH the same URL with {"tags", "attributes"} replaces the version's tags (at most 15, values
at most 256 characters; BadParameter otherwise). Tags belong to a key version: a new version starts without them.
/_test/deny {"name", "deny", "ops": ["get"]} takes away only the named permissions (get, update, wrapKey,
unwrapKey): a principal without keys/get makes the SDK's CryptographyClient use the remote operations.

Entra ID: GET /{tenant}/v2.0/.well-known/openid-configuration, POST /{tenant}/oauth2/v2.0/token
(grant_type=client_credentials, client_id, client_secret checked, scope https://vault.azure.net/.default).
Managed identity: a plain-HTTP IMDS emulation on a second port, GET /metadata/identity/oauth2/token
?api-version=2018-02-01&resource=… with Metadata: true.

Test control (no auth): GET /_test/stats, POST /_test/reset, /_test/faults {"faults": [...]} (fakecommon.Faults;
targets "api", "token", "imds"), /_test/keys {"name"}, /_test/rotate {"name"} (new current version),
/_test/disable {"name", "version"}, /_test/deny {"name", "deny"}, /_test/revoke.

Usage: fake_azure_keyvault.py --state-dir DIR [--token-lifetime S] — writes DIR/client_secret (0600) and
DIR/ready.json {port, imds_port, ca, vault_url, tenant, client_id, client_secret_file, key_name, resource}.
"""
import argparse
import base64
import json
import os
import sys
import re
import secrets
import threading
import time
import urllib.parse
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # Tests/servers/fakecommon.py
import fakecommon  # noqa: E402

RESOURCE = "https://vault.azure.net"
DEFAULT_KEY = "tg-root"


def b64u_decode(s):
    if not isinstance(s, str):
        raise ValueError("not a string")
    s = s.replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


class KVError(Exception):
    def __init__(self, status, code, message, inner=None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


class Vault:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}

    def create(self, name):
        with self.lock:
            if name not in self.keys:
                self.keys[name] = {"versions": {}, "order": [], "deny": False, "deny_ops": set()}
        return self.rotate(name)

    def rotate(self, name):
        v = uuid.uuid4().hex
        with self.lock:
            k = self.keys[name]
            now = int(time.time())
            k["versions"][v] = {"key": rsa.generate_private_key(public_exponent=65537, key_size=2048), "enabled": True,
                                "tags": {}, "created": now, "updated": now}
            k["order"].append(v)
        return v

    def get(self, name, version, op):
        with self.lock:
            k = self.keys.get(name)
            if k is None:
                raise KVError(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault. If you "
                                                  "recently deleted this key you may be able to recover it using the "
                                                  "correct recovery command.")
            if k["deny"] and (not k["deny_ops"] or op in k["deny_ops"]):
                raise KVError(403, "Forbidden", f"The user, group or application does not have keys {op} permission "
                                                f"on key vault. For help resolving this issue, please see "
                                                f"https://go.microsoft.com/fwlink/?linkid=2125287", "AccessDenied")
            v = version or k["order"][-1]
            kv = k["versions"].get(v)
            if kv is None:
                raise KVError(404, "KeyNotFound", f"A key with (name/id) {name}/{v} was not found in this key vault.")
            if not kv["enabled"] and op not in ("get", "update"):
                raise KVError(403, "Forbidden", f'Operation "{op}" is not allowed on a disabled key.', "KeyDisabled")
            return v, kv["key"]

    def version(self, name, v):
        with self.lock:
            return self.keys[name]["versions"][v]


def oaep(alg):
    h = {"RSA-OAEP-256": hashes.SHA256(), "RSA-OAEP": hashes.SHA1()}.get(alg)
    if h is None:
        raise KVError(400, "BadParameter", f"Invalid algorithm: {alg}")
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


class Handler(fakecommon.BaseHandler):
    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_PATCH(self):
        self.route()

    def route(self):
        srv = self.server
        try:
            body = self.read_body()
        except Exception:
            return self.kv_error(KVError(400, "BadParameter", "bad body"))
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        srv.stats.inc("requests")
        if srv.role == "imds":
            return self.imds(path, query)
        if path.startswith("/_test/"):
            return self.control(path, body)
        m = re.match(r"^/([^/]+)/oauth2/v2\.0/token$", path)
        if m and self.command == "POST":
            return self.token(m.group(1), body)
        m = re.match(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$", path)
        if m and self.command == "GET":
            return self.openid(m.group(1))
        m = re.match(r"^/keys/([A-Za-z0-9-]+)(?:/(?!(?:un)?wrapkey/?$)([A-Za-z0-9]*))?(?:/(wrapkey|unwrapkey))?/?$", path)
        if m:
            return self.vault(m.group(1), m.group(2) or None, m.group(3), query, body)
        self.kv_error(KVError(404, "NotFound", "The requested resource was not found."))

    def kv_error(self, e, headers=None):
        err = {"code": e.code, "message": e.message}
        if e.inner:
            err["innererror"] = {"code": e.inner}
        self.reply(e.status, {"error": err}, headers=headers)

    def fault(self, target):
        f = self.server.faults.pop(target)
        if f is None:
            return False, None
        self.server.stats.inc("faults_served")
        if "delay" in f:
            time.sleep(float(f["delay"]))
        if f.get("drop"):
            self.drop()
            return True, f
        if "status" in f:
            code = int(f["status"])
            headers = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else None
            if target in ("token", "imds"):
                self.reply(code, {"error": f.get("error", "temporarily_unavailable"),
                                  "error_description": f.get("message", "AADSTS50000: injected fault")}, headers=headers)
            else:
                names = {429: "Throttled", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
                self.kv_error(KVError(code, f.get("code", names.get(code, "Error")), f.get("message", "injected fault")),
                              headers)
            return True, f
        if f.get("malformed"):
            self.reply(200, "<html>not JSON{", content_type="text/html")
            return True, f
        if f.get("invalid_token"):
            self.server.revoke()
            self.challenge('error="invalid_token"')
            return True, f
        return False, f

    def challenge(self, extra=""):
        srv = self.server
        header = f'Bearer authorization="{srv.base}/{srv.tenant}", resource="{RESOURCE}"'
        if extra:
            header += ", " + extra
        self.kv_error(KVError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                      headers={"WWW-Authenticate": header})

    # ---- control -------------------------------------------------------------------------------------------------
    def control(self, path, body):
        if self.test_control(body):
            return
        srv = self.server
        try:
            doc = json.loads(body or b"{}")
            if path == "/_test/keys":
                v = srv.vault.create(doc["name"])
                self.reply(200, {"kid": f"{srv.base}/keys/{doc['name']}/{v}"})
            elif path == "/_test/rotate":
                v = srv.vault.rotate(doc["name"])
                self.reply(200, {"kid": f"{srv.base}/keys/{doc['name']}/{v}"})
            elif path == "/_test/disable":
                with srv.vault.lock:
                    k = srv.vault.keys[doc["name"]]
                    k["versions"][doc.get("version") or k["order"][-1]]["enabled"] = bool(doc.get("enabled", False))
                self.reply(200, {})
            elif path == "/_test/deny":
                with srv.vault.lock:
                    srv.vault.keys[doc["name"]]["deny"] = bool(doc.get("deny", True))
                    srv.vault.keys[doc["name"]]["deny_ops"] = set(doc.get("ops", []))
                self.reply(200, {})
            elif path == "/_test/revoke":
                srv.revoke()
                self.reply(200, {})
            else:
                self.reply(404, {})
        except (KeyError, ValueError) as e:
            self.reply(400, {"error": f"bad test request: {e}"})

    # ---- Entra ID ------------------------------------------------------------------------------------------------
    def openid(self, tenant):
        srv = self.server
        srv.stats.inc("openid")
        base = f"{srv.base}/{tenant}"
        self.reply(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0", "jwks_uri": f"{srv.base}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
        })

    def token(self, tenant, body):
        srv = self.server
        srv.stats.inc("token")
        handled, _ = self.fault("token")
        if handled:
            return
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        one = lambda k: form.get(k, [""])[0]
        if tenant != srv.tenant:
            srv.stats.inc("token_rejected")
            return self.reply(400, {"error": "invalid_request", "error_description":
                                    f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
                                    "error_codes": [90002]})
        if one("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: unsupported grant"})
        secret = one("client_secret")
        if one("client_id") != srv.client_id or not secrets.compare_digest(secret.encode(), srv.client_secret.encode()):
            srv.stats.inc("token_rejected")
            return self.reply(401, {"error": "invalid_client", "error_description":
                                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
                                    "request is the client secret value, not the client secret ID.",
                                    "error_codes": [7000215]})
        scope = one("scope").split()
        if f"{RESOURCE}/.default" not in scope:
            srv.stats.inc("token_rejected")
            return self.reply(400, {"error": "invalid_scope", "error_description":
                                    f"AADSTS1002012: The provided value for scope {one('scope')} is not valid."})
        token, lifetime = srv.issue(RESOURCE)
        srv.stats.inc("token_issued")
        self.reply(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                         "access_token": token})

    def imds(self, path, query):
        srv = self.server
        if path != "/metadata/identity/oauth2/token" or self.command != "GET":
            return self.reply(404, {"error": "not_found"})
        srv.stats.inc("imds")
        if self.headers.get("Metadata") != "true":
            return self.reply(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        handled, _ = self.fault("imds")
        if handled:
            return
        resource = query.get("resource", [""])[0].rstrip("/")
        if query.get("api-version", [""])[0] != "2018-02-01" or resource != RESOURCE:
            return self.reply(400, {"error": "invalid_request", "error_description": "bad api-version or resource"})
        token, lifetime = srv.issue(RESOURCE)
        srv.stats.inc("imds_issued")
        now = int(time.time())
        self.reply(200, {"access_token": token, "refresh_token": "", "expires_in": str(lifetime),
                         "expires_on": str(now + lifetime), "not_before": str(now), "resource": RESOURCE,
                         "token_type": "Bearer"})

    # ---- Key Vault -----------------------------------------------------------------------------------------------
    def vault(self, name, version, op, query, body):
        srv = self.server
        srv.stats.inc(op or ("get" if self.command == "GET" else "update"))
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not srv.token_valid(auth[7:].strip()):
            srv.stats.inc("unauthenticated")
            return self.challenge('error="invalid_token"' if auth else "")
        api = query.get("api-version", [""])[0]
        m = re.match(r"^(\d+)\.\d+", api)
        # 7.x versions, and the date-style ones newer SDKs send (e.g. 2025-07-01).
        if not (m and int(m.group(1)) >= 7) and not re.match(r"^20\d\d-\d\d-\d\d(-preview)?$", api):
            return self.kv_error(KVError(400, "BadParameter", "The 'api-version' query parameter is required and must be 7.0 or later."))
        if op is None:
            return self.key_bundle_op(name, version, body)
        if self.command != "POST":
            return self.kv_error(KVError(405, "MethodNotAllowed", "use POST"))
        handled, fault = self.fault("api")
        if handled:
            return
        try:
            try:
                doc = json.loads(body)
                alg, value = doc["alg"], b64u_decode(doc["value"])
            except (ValueError, KeyError, TypeError):
                raise KVError(400, "BadParameter", "Property 'value' or 'alg' is missing or invalid.")
            op_name = "wrapKey" if op == "wrapkey" else "unwrapKey"
            v, key = srv.vault.get(name, version, op_name)
            if op == "wrapkey":
                if not value or len(value) > 190:
                    raise KVError(400, "BadParameter", "The parameter is incorrect.")
                out = key.public_key().encrypt(value, oaep(alg))
            else:
                try:
                    out = key.decrypt(value, oaep(alg))
                except ValueError:
                    raise KVError(400, "BadParameter", "The parameter is incorrect.\r\n")
        except KVError as e:
            srv.stats.inc("api_errors")
            return self.kv_error(e)
        kid = f"{srv.base}/keys/{name}/{v}"
        if fault and fault.get("wrong_kid"):
            kid = f"https://evil.example/keys/{name}/{v}"
        srv.stats.inc(op + "_ok")
        self.reply(200, {"kid": kid, "value": b64u(out)})


MAX_TAGS = 15
MAX_TAG_VALUE = 256
MAX_TAG_NAME = 512


def _key_bundle_op(self, name, version, body):
    """GetKey (GET) and UpdateKey (PATCH: tags, attributes.enabled) of one key version (the latest without one)."""
    srv = self.server
    if self.command not in ("GET", "PATCH"):
        return self.kv_error(KVError(405, "MethodNotAllowed", f"The method {self.command} is not allowed."))
    handled, _ = self.fault("api")
    if handled:
        return
    op = "get" if self.command == "GET" else "update"
    try:
        v, key = srv.vault.get(name, version, op)
        kv = srv.vault.version(name, v)
        if op == "update":
            try:
                doc = json.loads(body or b"{}")
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                raise KVError(400, "BadParameter", "The request body is not valid JSON.")
            tags = doc.get("tags")
            if tags is not None:
                if not isinstance(tags, dict) or not all(isinstance(t, str) for t in tags.values()):
                    raise KVError(400, "BadParameter", "Property 'tags' must be an object of string values.")
                if len(tags) > MAX_TAGS:
                    raise KVError(400, "BadParameter", f"The number of tags ({len(tags)}) exceeds the maximum of {MAX_TAGS}.")
                for t, value in tags.items():
                    if not t or len(t) > MAX_TAG_NAME:
                        raise KVError(400, "BadParameter", f"Tag name length must be between 1 and {MAX_TAG_NAME} characters.")
                    if len(value) > MAX_TAG_VALUE:
                        raise KVError(400, "BadParameter", f"Tag value for '{t}' exceeds {MAX_TAG_VALUE} characters.")
            attributes = doc.get("attributes") or {}
            with srv.vault.lock:
                if tags is not None:
                    kv["tags"] = dict(tags)
                if isinstance(attributes.get("enabled"), bool):
                    kv["enabled"] = attributes["enabled"]
                kv["updated"] = int(time.time())
    except KVError as e:
        srv.stats.inc("api_errors")
        return self.kv_error(e)
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    with srv.vault.lock:
        out = {"key": {"kid": f"{srv.base}/keys/{name}/{v}", "kty": "RSA",
                       "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
                       "n": b64u(n), "e": b64u(e)},
               "attributes": {"enabled": kv["enabled"], "created": kv["created"], "updated": kv["updated"],
                              "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90, "exportable": False}}
        if kv["tags"]:
            out["tags"] = dict(kv["tags"])
    srv.stats.inc(op + "_ok")
    self.reply(200, out)


Handler.key_bundle_op = _key_bundle_op


class State:
    def __init__(self, lifetime):
        self.lock = threading.Lock()
        self.tokens = {}
        self.lifetime = lifetime
        self.vault = Vault()
        self.vault.create(DEFAULT_KEY)
        self.tenant = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(30)

    def issue(self, resource):
        token = "eyJ0eXAiOiJKV1Qi.fake-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (time.time() + self.lifetime, resource)
        return token, self.lifetime

    def revoke(self):
        with self.lock:
            self.tokens.clear()

    def token_valid(self, token):
        with self.lock:
            t = self.tokens.get(token)
        return t is not None and t[0] > time.time() and t[1] == RESOURCE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    d = args.state_dir
    ca, cert, key = fakecommon.make_tls(d, "azure-keyvault")
    state = State(args.token_lifetime)
    api = fakecommon.make_server(Handler, 0, fakecommon.tls_context(cert, key))
    imds = fakecommon.make_server(Handler, 0)
    stats, faults = fakecommon.Stats(), fakecommon.Faults()
    base = f"https://127.0.0.1:{api.server_address[1]}"
    for srv, role in ((api, "api"), (imds, "imds")):
        srv.role, srv.stats, srv.faults, srv.verbose, srv.base = role, stats, faults, args.verbose, base
        for attr in ("vault", "issue", "revoke", "token_valid", "tenant", "client_id", "client_secret"):
            setattr(srv, attr, getattr(state, attr))
    secret_path = os.path.join(d, "client_secret")
    fakecommon.write_private(secret_path, state.client_secret + "\n")
    fakecommon.run_forever([api, imds], os.path.join(d, "ready.json"), {
        "port": api.server_address[1], "imds_port": imds.server_address[1], "ca": ca, "vault_url": base,
        "tenant": state.tenant, "client_id": state.client_id, "client_secret_file": secret_path,
        "key_name": DEFAULT_KEY, "resource": RESOURCE, "pid": os.getpid()})


if __name__ == "__main__":
    main()
