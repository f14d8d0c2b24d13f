#!/usr/bin/env python3
"""Signs one request with botocore's own SigV4 signer (botocore.auth.SigV4Auth) at a fixed time and prints the
headers botocore added, for a byte-for-byte comparison with the Swift signer.

stdin: {"method", "url", "headers": [[name, value], ...], "body_b64", "access_key", "secret_key",
        "session_token" (optional), "region", "service", "time": "YYYYMMDDTHHMMSSZ"}
stdout: {"Authorization": ..., "X-Amz-Date": ..., "X-Amz-Security-Token": ... (if any)}
"""
import base64
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> int:
    spec = json.load(sys.stdin)
    fixed = datetime.datetime.strptime(spec["time"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: fixed  # botocore reads the clock through this
    creds = Credentials(spec["access_key"], spec["secret_key"], spec.get("session_token"))
    request = AWSRequest(method=spec["method"], url=spec["url"], data=base64.b64decode(spec["body_b64"]))
    for name, value in spec["headers"]:
        request.headers[name] = value
    botocore.auth.SigV4Auth(creds, spec["service"], spec["region"]).add_auth(request)
    out = {k: request.headers[k] for k in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token") if k in request.headers}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
