"""Throwaway TLS material for the fake cloud servers: a self-signed CA and a server certificate for
127.0.0.1 / localhost, generated at start-up with the `cryptography` package. Nothing is reused between runs."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _write(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_tls(directory, name="tg-test"):
    """Writes ca.pem (the trust anchor clients use), server.pem and server.key into `directory`.
    Returns (ca_path, cert_path, key_path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} throwaway CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = os.path.join(directory, "ca.pem")
    cert_path = os.path.join(directory, "server.pem")
    key_path = os.path.join(directory, "server.key")
    _write(ca_path, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def write_private(path, data):
    _write(path, data if isinstance(data, bytes) else data.encode())


# CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven — what Cloud KMS uses for its integrity fields.
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# ---- shared server machinery: fault queue, counters, JSON replies, start-up handshake -------------------------
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Faults:
    """Faults queued by POST /_test/faults: a list of dicts, each consumed by the next request whose endpoint class
    matches its "target" ("api" by default; "token", "metadata", "any").
    Keys: status (int) [+ retry_after], delay (seconds, then normal processing), drop (close without reply),
    malformed (200 with a non-JSON body), invalid_token (revoke every issued token, reply 401), bad_crc (GCP),
    wrong_kid (Azure)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue = []

    def set(self, faults):
        with self._lock:
            self._queue = list(faults)

    def add(self, faults):
        with self._lock:
            self._queue.extend(faults)

    def pop(self, target):
        with self._lock:
            for i, f in enumerate(self._queue):
                if f.get("target", "api") in (target, "any"):
                    return self._queue.pop(i)
        return None

    def pending(self):
        with self._lock:
            return len(self._queue)


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.counts = {}

    def inc(self, name, n=1):
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def snapshot(self):
        with self._lock:
            return dict(self.counts)

    def reset(self):
        with self._lock:
            self.counts = {}


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tg-fake/1"

    def log_message(self, fmt, *args):  # quiet unless asked: never print bodies or tokens
        if getattr(self.server, "verbose", False):
            sys.stderr.write("%s %s\n" % (self.command, self.path.split("?")[0]))

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def reply(self, status, body, content_type="application/json; charset=utf-8", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def test_control(self, body):
        """/_test/* endpoints shared by both fakes. Returns True if handled."""
        path = self.path.split("?")[0]
        srv = self.server
        if path == "/_test/stats" and self.command == "GET":
            s = srv.stats.snapshot()
            s["faults_pending"] = srv.faults.pending()
            self.reply(200, s)
        elif path == "/_test/reset" and self.command == "POST":
            srv.stats.reset()
            srv.faults.set([])
            self.reply(200, {})
        elif path == "/_test/faults" and self.command == "POST":
            doc = json.loads(body or b"{}")
            faults = doc.get("faults", doc if isinstance(doc, list) else [])
            (srv.faults.add if isinstance(doc, dict) and doc.get("append") else srv.faults.set)(faults)
            self.reply(200, {"pending": srv.faults.pending()})
        else:
            return False
        return True


def make_server(handler, port, context=None):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def tls_context(cert_path, key_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def run_forever(servers, ready_path, info):
    """Starts every server on its own thread, then writes `info` (JSON) to ready_path atomically: the
    parent waits for that file. Runs until killed."""
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = ready_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, ready_path)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
