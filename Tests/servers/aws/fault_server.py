#!/usr/bin/env python3
"""KMS fault proxy + fake EC2 instance-metadata service for the aws-kms backend tests (stdlib only, 127.0.0.1).

KMS requests (POST / with X-Amz-Target: TrentService.*) are counted, then answered from a fault sequence or,
once the sequence is used up, forwarded verbatim (Host header included, so SigV4 still verifies) to the
upstream moto server given with --upstream. The counts are how tests assert "no KMS call happened".

Fault actions (one per KMS request, in order):
  pass            forward to moto
  throttle        400 {"__type": "ThrottlingException"}         429       HTTP 429 ThrottlingException
  500             500 {"__type": "KMSInternalException"}        503       HTTP 503 ServiceUnavailable (no body)
  expired         400 {"__type": "ExpiredTokenException"}       malformed 200 with a body that is not JSON
  close           close the connection without an answer        slow:<ms> sleep <ms> (≤ 60000), then forward
  echo            200 JSON of what arrived: method, path, headers, body (base64) — HTTP-layer tests only
  big             200 with a 2 MiB body
Without --upstream, `pass` answers 200 {"fault_server": "ok", "bytes": <request body length>}.
Requests signed with a session token listed by /__control/expired_tokens always get ExpiredTokenException.

Instance metadata (IMDSv2 only; tokens required): PUT /latest/api/token, GET
/latest/meta-data/iam/security-credentials/ and .../<role>; the credential documents come from
/__control/imds, served in order per fetch (the last one repeats).

Control (JSON bodies): POST /__control/faults {"sequence": [...]}, POST /__control/imds {"role", "credentials":
[{AccessKeyId, SecretAccessKey, Token, Expiration}]}, POST /__control/expired_tokens {"tokens": [...]},
POST /__control/reset, GET /__control/stats → {"kms_requests", "by_target", "faults_served", "imds_requests",
"imds_credential_fetches", "forwarded"}.

With --tls-cert/--tls-key it serves HTTPS (TLS tests: custom CA bundle, host-name verification).

Prints `READY <port>`; exits on SIGTERM, when its parent dies, or after --max-lifetime seconds.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_SLOW_MS = 60_000
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length"}


class State:
    def __init__(self, upstream):
        self.lock = threading.Lock()
        self.upstream = upstream
        self.reset()

    def reset(self):
        self.faults = []
        self.kms_requests = 0
        self.by_target = {}
        self.faults_served = 0
        self.forwarded = 0
        self.imds_requests = 0
        self.imds_credential_fetches = 0
        self.imds_role = "tg-kms-role"
        self.imds_credentials = []
        self.imds_tokens = set()
        self.expired_tokens = set()

    def stats(self):
        return {"kms_requests": self.kms_requests, "by_target": dict(self.by_target),
                "faults_served": self.faults_served, "forwarded": self.forwarded,
                "imds_requests": self.imds_requests, "imds_credential_fetches": self.imds_credential_fetches}


STATE = State(None)


def kms_error(code, message, status=400):
    return status, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps({"__type": code, "message": message}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tg-fault-server/1"

    def log_message(self, *args):  # never log requests (they carry signatures and key material)
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def answer_json(self, obj, status=200):
        self.answer(status, {"Content-Type": "application/json"}, json.dumps(obj).encode())

    # ---- dispatch

    def do_GET(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        try:
            body = self.read_body()
        except ValueError:
            self.answer(413, {}, b"")
            return
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__control/"):
            return self.control(path, body)
        if path.startswith("/latest/"):
            return self.imds(path)
        target = self.headers.get("X-Amz-Target", "")
        if target.startswith("TrentService."):  # any method, so HTTP-layer tests can echo PUTs too
            return self.kms(target, body)
        self.answer(404, {}, b"")

    # ---- control

    def control(self, path, body):
        data = json.loads(body or b"{}")
        with STATE.lock:
            if path == "/__control/faults":
                STATE.faults = list(data.get("sequence", []))
            elif path == "/__control/imds":
                STATE.imds_role = data.get("role", STATE.imds_role)
                STATE.imds_credentials = list(data.get("credentials", []))
            elif path == "/__control/expired_tokens":
                STATE.expired_tokens = set(data.get("tokens", []))
            elif path == "/__control/reset":
                upstream = STATE.upstream
                STATE.reset()
                STATE.upstream = upstream
            elif path != "/__control/stats":
                self.answer(404, {}, b"")
                return
            stats = STATE.stats()
        self.answer_json(stats)

    # ---- instance metadata (IMDSv2)

    def imds(self, path):
        with STATE.lock:
            STATE.imds_requests += 1
            if path == "/latest/api/token":
                if self.command != "PUT" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self.answer(400, {}, b"")
                    return
                token = f"imds-token-{len(STATE.imds_tokens) + 1}-{os.urandom(8).hex()}"
                STATE.imds_tokens.add(token)
                self.answer(200, {"Content-Type": "text/plain"}, token.encode())
                return
            if self.headers.get("X-aws-ec2-metadata-token") not in STATE.imds_tokens:
                self.answer(401, {}, b"")
                return
            prefix = "/latest/meta-data/iam/security-credentials/"
            if path == prefix:
                self.answer(200, {"Content-Type": "text/plain"}, STATE.imds_role.encode())
                return
            if path == prefix + STATE.imds_role and STATE.imds_credentials:
                index = min(STATE.imds_credential_fetches, len(STATE.imds_credentials) - 1)
                STATE.imds_credential_fetches += 1
                doc = dict(STATE.imds_credentials[index])
                doc.setdefault("Code", "Success")
                doc.setdefault("Type", "AWS-HMAC")
                doc.setdefault("LastUpdated", "2026-01-01T00:00:00Z")
                self.answer(200, {"Content-Type": "text/plain"}, json.dumps(doc).encode())
                return
        self.answer(404, {}, b"")

    # ---- KMS

    def kms(self, target, body):
        with STATE.lock:
            STATE.kms_requests += 1
            STATE.by_target[target] = STATE.by_target.get(target, 0) + 1
            token = self.headers.get("X-Amz-Security-Token")
            if token is not None and token in STATE.expired_tokens:
                STATE.faults_served += 1
                fault = "expired"
            else:
                fault = STATE.faults.pop(0) if STATE.faults else "pass"
                if fault != "pass":
                    STATE.faults_served += 1
        if fault == "throttle":
            return self.answer(*kms_error("ThrottlingException", "Rate exceeded"))
        if fault == "429":
            return self.answer(*kms_error("ThrottlingException", "Too many requests", 429))
        if fault == "500":
            return self.answer(*kms_error("KMSInternalException", "injected internal error", 500))
        if fault == "503":
            return self.answer(503, {}, b"")
        if fault == "expired":
            return self.answer(*kms_error("ExpiredTokenException", "The security token included in the request is expired"))
        if fault == "malformed":
            return self.answer(200, {"Content-Type": "application/x-amz-json-1.1"}, b"{\"CiphertextBlob\": <html>oops")
        if fault == "close":
            self.close_connection = True
            return
        if fault == "echo":
            import base64
            doc = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                   "body_b64": base64.b64encode(body).decode()}
            return self.answer(200, {"Content-Type": "application/json"}, json.dumps(doc).encode())
        if fault == "big":
            return self.answer(200, {"Content-Type": "application/octet-stream"}, b"x" * (2 << 20))
        if fault.startswith("slow:"):
            time.sleep(min(int(fault[5:]), MAX_SLOW_MS) / 1000.0)
        return self.forward(body)

    def forward(self, body):
        if STATE.upstream is None:
            return self.answer_json({"fault_server": "ok", "bytes": len(body)})
        up = urllib.parse.urlsplit(STATE.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            with STATE.lock:
                STATE.forwarded += 1
            self.answer(resp.status, out, data)
        finally:
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-lifetime", type=float, default=1800.0)
    parser.add_argument("--tls-cert", default=None)
    parser.add_argument("--tls-key", default=None)
    args = parser.parse_args()
    STATE.upstream = args.upstream
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parent = os.getppid()
    print(f"READY {server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.max_lifetime
    while not stop.wait(0.5):
        if os.getppid() != parent or time.monotonic() > deadline:
            break
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
