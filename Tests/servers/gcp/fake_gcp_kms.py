#!/usr/bin/env python3
"""A Cloud KMS v1 REST server for tests (127.0.0.1 only, HTTPS with a throwaway CA).

Speaks the real wire format of projects.locations.keyRings.cryptoKeys.encrypt / .decrypt (proto3 JSON: bytes as
base64, int64 CRC32C fields as decimal strings, Google's {"error": {code, message, status}} body), with real
cryptography: AES-256-GCM per key version, the caller's additionalAuthenticatedData bound, CRC32C integrity
fields checked on requests and produced on responses. Bearer tokens come from its own OAuth2 token endpoint
(POST /token, grant_type urn:ietf:params:oauth:grant-type:jwt-bearer; the RS256 assertion is verified against the
public key of a service-account key generated here and written to <state-dir>/sa.json) or from a GCE metadata
server emulation on a second, plain-HTTP port (what GCE_METADATA_HOST points at). Self-signed JWTs signed by the
service-account key are accepted as bearer tokens too, as Google does.

Test control (no auth): GET /_test/stats, POST /_test/reset, POST /_test/faults {"faults": [...]} (see
fakecommon.Faults), POST /_test/keys {"name"} (create), /_test/rotate {"name"} (new primary version),
/_test/disable {"name", "version"}, /_test/deny {"name", "deny": bool[, "ops": ["cryptoKeys.update", …]]}
(PERMISSION_DENIED on every call, or only on the named ones: cryptoKeyVersions.useToEncrypt / useToDecrypt,
cryptoKeys.get, cryptoKeys.update), /_test/revoke (invalidate every issued access token).

CryptoKey metadata: GET /v1/{cryptoKey} returns the CryptoKey (name, primary, purpose, createTime, versionTemplate,
labels); PATCH /v1/{cryptoKey}?updateMask=labels with a CryptoKey body replaces its labels, validated like Cloud
KMS does (at most 64; keys [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63}; INVALID_ARGUMENT otherwise).

Usage: fake_gcp_kms.py --state-dir DIR [--token-lifetime S] — writes DIR/ready.json {port, metadata_port, ca,
sa_key, key_name, client_email} when listening. Stop it by PID.
"""
import argparse
import base64
import json
import os
import sys
import re
import secrets
import struct
import threading
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # Tests/servers/fakecommon.py
import fakecommon  # noqa: E402
from fakecommon import crc32c  # noqa: E402

SCOPES_OK = ("https://www.googleapis.com/auth/cloudkms", "https://www.googleapis.com/auth/cloud-platform")
SELF_SIGNED_AUDIENCES = ("https://cloudkms.googleapis.com/", "https://cloudkms.googleapis.com")
DEFAULT_KEY = "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/tg-root"
KEY_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+$")
MAX_DATA = 64 * 1024
MAX_LABELS = 64
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
UPDATABLE = {"labels", "rotation_period", "next_rotation_time", "version_template", "version_template.algorithm",
             "version_template.protection_level", "destroy_scheduled_duration"}

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def b64d(s, field):
    if not isinstance(s, str):
        raise ApiError(400, f"Invalid value at '{field}' (TYPE_BYTES), expected a base64 string")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None,
                                validate=True)
    except Exception:
        raise ApiError(400, f"Invalid value at '{field}' (TYPE_BYTES), Base64 decoding failed")


def b64e(b):
    return base64.b64encode(b).decode()


def int64_field(doc, field):
    """proto3 JSON Int64Value: a decimal string (Google's encoding) or a number. None when absent."""
    if field not in doc or doc[field] is None:
        return None
    v = doc[field]
    if isinstance(v, bool):
        raise ApiError(400, f"Invalid value at '{field}' (TYPE_INT64)")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid value at '{field}' (TYPE_INT64), \"{v}\"")


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class ApiError(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status or STATUS_NAMES.get(code, "UNKNOWN")


class KMS:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}

    def create(self, name):
        with self.lock:
            if name not in self.keys:
                self.keys[name] = {"versions": {1: {"key": AESGCM.generate_key(256), "state": "ENABLED",
                                                    "created": time.time()}},
                                   "primary": 1, "deny": False, "deny_ops": set(), "labels": {},
                                   "created": time.time()}
            return self.keys[name]

    def rotate(self, name):
        with self.lock:
            k = self.keys[name]
            v = max(k["versions"]) + 1
            k["versions"][v] = {"key": AESGCM.generate_key(256), "state": "ENABLED", "created": time.time()}
            k["primary"] = v
            return v

    def lookup(self, name, permission="cryptoKeyVersions.useToEncrypt"):
        with self.lock:
            k = self.keys.get(name)
        if k is None:
            raise ApiError(404, f"{name} not found.")
        if k["deny"] and (not k["deny_ops"] or permission in k["deny_ops"]):
            raise ApiError(403, f"Permission 'cloudkms.{permission}' denied on resource "
                                f"'{name}' (or it may not exist).")
        return k


class Handler(fakecommon.BaseHandler):
    # ---- routing -------------------------------------------------------------------------------------------------
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
            self.reply(400, {"error": {"code": 400, "message": "bad body", "status": "INVALID_ARGUMENT"}})
            return
        path = urllib.parse.urlsplit(self.path).path
        srv.stats.inc("requests")
        if srv.role == "metadata":
            return self.metadata(path)
        if path.startswith("/_test/"):
            return self.control(path, body)
        if path == "/token":
            return self.token(body)
        m = re.match(r"^/v1/(.+):(encrypt|decrypt)$", path)
        if m and self.command == "POST":
            return self.api(urllib.parse.unquote(m.group(1)), m.group(2), body)
        m = re.match(r"^/v1/(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+)$", path)
        if m and self.command in ("GET", "PATCH"):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            return self.api(urllib.parse.unquote(m.group(1)), "get" if self.command == "GET" else "patch", body, query)
        self.error(ApiError(404, f"The requested URL {path} was not found on this server."))

    def error(self, e, headers=None):
        self.reply(e.code, {"error": {"code": e.code, "message": e.message, "status": e.status}}, headers=headers)

    def fault(self, target):
        """Applies the next queued fault for `target`. Returns (handled, fault)."""
        f = self.server.faults.pop(target)
        if f is None:
            return False, None
        self.server.stats.inc("faults_served")
        if "delay" in f:
            time.sleep(float(f["delay"]))
            if f.get("then_drop"):
                self.drop()
                return True, f
        if f.get("drop"):
            self.drop()
            return True, f
        if "status" in f:
            code = int(f["status"])
            headers = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else None
            if target == "token" or target == "metadata":
                self.reply(code, {"error": f.get("error", "temporarily_unavailable"),
                                  "error_description": f.get("message", "injected fault")}, headers=headers)
            else:
                self.error(ApiError(code, f.get("message", "injected fault")), headers)
            return True, f
        if f.get("malformed"):
            self.reply(200, "<html>this is not JSON{", content_type="text/html")
            return True, f
        if f.get("invalid_token"):
            self.server.revoke()
            self.unauthenticated()
            return True, f
        return False, f

    def unauthenticated(self):
        self.error(ApiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                 "login cookie or other valid authentication credential. See "
                                 "https://developers.google.com/identity/sign-in/web/devconsole-project."),
                   headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})

    # ---- test control --------------------------------------------------------------------------------------------
    def control(self, path, body):
        if self.test_control(body):
            return
        srv = self.server
        try:
            doc = json.loads(body or b"{}")
            if path == "/_test/keys":
                srv.kms.create(doc["name"])
                self.reply(200, {"name": doc["name"]})
            elif path == "/_test/rotate":
                v = srv.kms.rotate(doc["name"])
                self.reply(200, {"name": f"{doc['name']}/cryptoKeyVersions/{v}"})
            elif path == "/_test/disable":
                with srv.kms.lock:
                    srv.kms.keys[doc["name"]]["versions"][int(doc["version"])]["state"] = doc.get("state", "DISABLED")
                self.reply(200, {})
            elif path == "/_test/deny":
                with srv.kms.lock:
                    srv.kms.keys[doc["name"]]["deny"] = bool(doc.get("deny", True))
                    srv.kms.keys[doc["name"]]["deny_ops"] = set(doc.get("ops", []))
                self.reply(200, {})
            elif path == "/_test/revoke":
                srv.revoke()
                self.reply(200, {})
            else:
                self.reply(404, {})
        except (KeyError, ValueError) as e:
            self.reply(400, {"error": f"bad test request: {e}"})

    # ---- OAuth2 token endpoint (service-account JWT bearer grant) ------------------------------------------------
    def token(self, body):
        srv = self.server
        srv.stats.inc("token")
        handled, _ = self.fault("token")
        if handled:
            return
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        assertion = form.get("assertion", [""])[0]
        if self.command != "POST" or not self.headers.get("Content-Type", "").startswith(
                "application/x-www-form-urlencoded"):
            self.reply(400, {"error": "invalid_request", "error_description": "expected a form POST"})
            return
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + grant})
            return
        # Google accepts its token endpoint's canonical URL as audience (google-auth always sends that one) as well
        # as the key file's token_uri.
        claims, why = srv.verify_jwt(assertion, audience=(srv.token_uri, "https://oauth2.googleapis.com/token"))
        if claims is None:
            srv.stats.inc("token_rejected")
            self.reply(400, {"error": "invalid_grant", "error_description": why})
            return
        scopes = claims.get("scope", "").split()
        if not any(s in SCOPES_OK for s in scopes):
            srv.stats.inc("token_rejected")
            self.reply(400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."})
            return
        token, lifetime = srv.issue()
        srv.stats.inc("token_issued")
        self.reply(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
                   headers={"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    # ---- GCE metadata server -------------------------------------------------------------------------------------
    def metadata(self, path):
        srv = self.server
        if path != "/computeMetadata/v1/instance/service-accounts/default/token" or self.command != "GET":
            self.reply(404, "Not Found", content_type="text/html")
            return
        srv.stats.inc("metadata")
        if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get("X-Forwarded-For"):
            self.reply(403, "Missing required header: Metadata-Flavor", content_type="text/html")
            return
        handled, _ = self.fault("metadata")
        if handled:
            return
        token, lifetime = srv.issue()
        srv.stats.inc("metadata_issued")
        self.reply(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
                   headers={"Metadata-Flavor": "Google"})

    # ---- Cloud KMS -----------------------------------------------------------------------------------------------
    def api(self, name, method, body, query=None):
        srv = self.server
        srv.stats.inc(method)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not srv.token_valid(auth[7:].strip()):
            srv.stats.inc("unauthenticated")
            return self.unauthenticated()
        handled, fault = self.fault("api")
        if handled:
            return
        try:
            doc = json.loads(body or b"{}")
            if not isinstance(doc, dict):
                raise ApiError(400, "Invalid JSON payload received.")
        except ValueError:
            return self.error(ApiError(400, "Invalid JSON payload received. Unexpected token."))
        try:
            if method == "get":
                out = self.crypto_key(name, srv.kms.lookup(name, "cryptoKeys.get"))
            elif method == "patch":
                out = self.patch_key(name, doc, query or {})
            else:
                out = self.encrypt(name, doc) if method == "encrypt" else self.decrypt(name, doc)
        except ApiError as e:
            srv.stats.inc("api_errors")
            return self.error(e)
        if fault and fault.get("bad_crc"):
            field = "ciphertextCrc32c" if method == "encrypt" else "plaintextCrc32c"
            out[field] = str((int(out[field]) + 1) & 0xFFFFFFFF)
        if fault and fault.get("unverified"):
            out["verifiedPlaintextCrc32c"] = False
            out["verifiedAdditionalAuthenticatedDataCrc32c"] = False
        srv.stats.inc(method + "_ok")
        self.reply(200, out)

    @staticmethod
    def check_crc(doc, data_field, crc_field, data):
        want = int64_field(doc, crc_field)
        if want is None:
            return False
        if want != crc32c(data):
            snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), crc_field).replace("crc32_c", "crc32c")
            raise ApiError(400, f"The checksum in field {snake} did not match the data in field {data_field}.")
        return True

    def encrypt(self, name, doc):
        srv = self.server
        version = None
        m = re.match(r"^(.+)/cryptoKeyVersions/(\d+)$", name)
        if m:
            name, version = m.group(1), int(m.group(2))
        if not KEY_RE.match(name):
            raise ApiError(400, f"Invalid resource name '{name}'.")
        pt = b64d(doc.get("plaintext", ""), "plaintext")
        aad = b64d(doc.get("additionalAuthenticatedData", ""), "additional_authenticated_data")
        if not pt:
            raise ApiError(400, "Plaintext is required.")
        if len(pt) > MAX_DATA or len(aad) > MAX_DATA:
            raise ApiError(400, "The request payload exceeds the maximum size of 65536 bytes.")
        vp = self.check_crc(doc, "plaintext", "plaintextCrc32c", pt)
        va = self.check_crc(doc, "additional_authenticated_data", "additionalAuthenticatedDataCrc32c", aad)
        k = srv.kms.lookup(name)
        v = version if version is not None else k["primary"]
        kv = k["versions"].get(v)
        if kv is None:
            raise ApiError(404, f"{name}/cryptoKeyVersions/{v} not found.")
        if kv["state"] != "ENABLED":
            raise ApiError(400, f"{name}/cryptoKeyVersions/{v} is not enabled, current state is: {kv['state']}.",
                           "FAILED_PRECONDITION")
        iv = secrets.token_bytes(12)
        ct = b"\x01" + struct.pack(">I", v) + iv + AESGCM(kv["key"]).encrypt(iv, pt, name.encode() + b"\0" + aad)
        return {"name": f"{name}/cryptoKeyVersions/{v}", "ciphertext": b64e(ct), "ciphertextCrc32c": str(crc32c(ct)),
                "verifiedPlaintextCrc32c": vp, "verifiedAdditionalAuthenticatedDataCrc32c": va,
                "protectionLevel": "SOFTWARE"}

    def decrypt(self, name, doc):
        srv = self.server
        if not KEY_RE.match(name):
            raise ApiError(400, f"Invalid resource name '{name}': decrypt takes a CryptoKey, not a version.")
        ct = b64d(doc.get("ciphertext", ""), "ciphertext")
        aad = b64d(doc.get("additionalAuthenticatedData", ""), "additional_authenticated_data")
        if not ct:
            raise ApiError(400, "Ciphertext is required.")
        self.check_crc(doc, "ciphertext", "ciphertextCrc32c", ct)
        self.check_crc(doc, "additional_authenticated_data", "additionalAuthenticatedDataCrc32c", aad)
        k = srv.kms.lookup(name, "cryptoKeyVersions.useToDecrypt")
        invalid = ApiError(400, "Decryption failed: the ciphertext is invalid.")
        if len(ct) < 1 + 4 + 12 + 16 or ct[0] != 1:
            raise invalid
        (v,) = struct.unpack(">I", ct[1:5])
        kv = k["versions"].get(v)
        if kv is None:
            raise invalid
        if kv["state"] != "ENABLED":
            raise ApiError(400, f"{name}/cryptoKeyVersions/{v} is not enabled, current state is: {kv['state']}.",
                           "FAILED_PRECONDITION")
        try:
            pt = AESGCM(kv["key"]).decrypt(ct[5:17], ct[17:], name.encode() + b"\0" + aad)
        except InvalidTag:
            raise invalid
        return {"plaintext": b64e(pt), "plaintextCrc32c": str(crc32c(pt)), "usedPrimary": v == k["primary"],
                "protectionLevel": "SOFTWARE"}


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def _crypto_key(self, name, k):
    """A CryptoKey resource in proto3 JSON (an empty label map is omitted, as Google omits it)."""
    with self.server.kms.lock:
        v = k["primary"]
        kv = k["versions"][v]
        out = {"name": name,
               "primary": {"name": f"{name}/cryptoKeyVersions/{v}", "state": kv["state"],
                           "createTime": rfc3339(kv["created"]), "protectionLevel": "SOFTWARE",
                           "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION", "generateTime": rfc3339(kv["created"])},
               "purpose": "ENCRYPT_DECRYPT", "createTime": rfc3339(k["created"]),
               "versionTemplate": {"protectionLevel": "SOFTWARE", "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"},
               "destroyScheduledDuration": "2592000s"}
        if k["labels"]:
            out["labels"] = dict(k["labels"])
    return out


def _patch(self, name, doc, query):
    """cryptoKeys.patch: only the fields named in updateMask change; of those this fake implements labels."""
    if not KEY_RE.match(name):
        raise ApiError(400, f"Invalid resource name '{name}'.")
    mask = ",".join(query.get("updateMask", [])).strip()
    if not mask:
        raise ApiError(400, "The request must specify an update_mask.")
    fields = [re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), f.strip()) for f in mask.split(",")]
    for f in fields:
        if f not in UPDATABLE:
            raise ApiError(400, f"The field mask path '{f}' is not a valid CryptoKey field for update.")
    if doc.get("name") not in (None, "", name):
        raise ApiError(400, f"The crypto_key.name '{doc.get('name')}' does not match the resource '{name}'.")
    k = self.server.kms.lookup(name, "cryptoKeys.update")
    if "labels" in fields:
        labels = doc.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ApiError(400, "Invalid value at 'crypto_key.labels' (map<string, string>).")
        if len(labels) > MAX_LABELS:
            raise ApiError(400, f"The number of labels ({len(labels)}) exceeds the maximum of {MAX_LABELS}.")
        for key, value in labels.items():
            if not LABEL_KEY_RE.match(key):
                raise ApiError(400, f"Label key '{key}' is invalid: keys must start with a lowercase letter and "
                                    "contain only lowercase letters, digits, underscores and dashes (at most 63).")
            if not LABEL_VALUE_RE.match(value):
                raise ApiError(400, f"Label value '{value}' of key '{key}' is invalid: values may contain only "
                                    "lowercase letters, digits, underscores and dashes (at most 63).")
        with self.server.kms.lock:
            k["labels"] = dict(labels)
    return self.crypto_key(name, k)


Handler.crypto_key = _crypto_key
Handler.patch_key = _patch


class Server:
    """State shared by the HTTPS (KMS + token) and HTTP (metadata) listeners."""

    def __init__(self, lifetime):
        self.lock = threading.Lock()
        self.tokens = {}
        self.lifetime = lifetime
        self.kms = KMS()
        self.kms.create(DEFAULT_KEY)
        self.sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_id = secrets.token_hex(20)
        self.client_email = "tg-wrapper@tg-test.iam.gserviceaccount.com"
        self.token_uri = None

    def issue(self):
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time() + self.lifetime
        return token, self.lifetime

    def revoke(self):
        with self.lock:
            self.tokens.clear()

    def token_valid(self, token):
        with self.lock:
            exp = self.tokens.get(token)
        if exp is not None:
            return exp > time.time()
        if token.count(".") == 2:   # a self-signed JWT (google-auth's always_use_jwt_access)
            claims, _ = self.verify_jwt(token, audience=SELF_SIGNED_AUDIENCES, allow_scope_instead=True)
            if claims is not None:
                self.stats.inc("self_signed_jwt")
                return True
        return False

    def verify_jwt(self, jwt, audience, allow_scope_instead=False):
        try:
            h, p, s = jwt.split(".")
            header, claims = b64url_json(h), b64url_json(p)
            sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        except Exception:
            return None, "Invalid JWT: malformed."
        if header.get("alg") != "RS256":
            return None, "Invalid JWT: alg must be RS256."
        if header.get("kid") not in (None, self.sa_key_id):
            return None, "Invalid JWT Signature."
        try:
            self.sa_key.public_key().verify(sig, f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return None, "Invalid JWT Signature."
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return None, "Invalid JWT: iat and exp must be integers."
        if iat > now + 300 or exp < now - 300 or exp - iat > 3600 or exp <= iat:
            return None, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. " \
                         "Check your iat and exp values in the JWT claim."
        if claims.get("iss") != self.client_email:
            return None, "Invalid JWT: iss is not the service account."
        aud_ok = claims.get("aud") in audience
        if not aud_ok and not (allow_scope_instead and any(x in SCOPES_OK for x in claims.get("scope", "").split())):
            return None, "Invalid JWT: audience mismatch."
        return claims, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    d = args.state_dir
    ca, cert, key = fakecommon.make_tls(d, "gcp-kms")
    state = Server(args.token_lifetime)
    api = fakecommon.make_server(Handler, 0, fakecommon.tls_context(cert, key))
    meta = fakecommon.make_server(Handler, 0)
    stats, faults = fakecommon.Stats(), fakecommon.Faults()
    for srv, role in ((api, "api"), (meta, "metadata")):
        srv.role, srv.stats, srv.faults, srv.verbose = role, stats, faults, args.verbose
        # Everything else (tokens, keys, JWT checks) is shared state.
        for attr in ("kms", "issue", "revoke", "token_valid", "verify_jwt"):
            setattr(srv, attr, getattr(state, attr))
    state.stats = stats
    port, mport = api.server_address[1], meta.server_address[1]
    state.token_uri = f"https://127.0.0.1:{port}/token"
    api.token_uri = state.token_uri
    sa = {
        "type": "service_account", "project_id": "tg-test", "private_key_id": state.sa_key_id,
        "private_key": state.sa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()).decode(),
        "client_email": state.client_email, "client_id": "104242424242424242424",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": state.token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/tg-wrapper",
        "universe_domain": "googleapis.com",
    }
    sa_path = os.path.join(d, "sa.json")
    fakecommon.write_private(sa_path, json.dumps(sa, indent=2))
    # The same service account with a key the server does not know: its JWTs fail signature verification.
    wrong = dict(sa, private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    fakecommon.write_private(os.path.join(d, "sa-wrong-key.json"), json.dumps(wrong, indent=2))
    fakecommon.run_forever([api, meta], os.path.join(d, "ready.json"), {
        "port": port, "metadata_port": mport, "ca": ca, "sa_key": sa_path, "sa_wrong_key": os.path.join(d, "sa-wrong-key.json"), "key_name": DEFAULT_KEY,
        "client_email": state.client_email, "pid": os.getpid()})


if __name__ == "__main__":
    main()
