"""Contract test: the fake Cloud KMS server (fake_gcp_kms.py) driven by Google's official Python client,
google-cloud-kms with the REST transport, authenticated with google-auth service-account credentials whose
token_uri points at the fake. If the fake's wire format (URLs, JSON field names, base64, int64-as-string CRC32C
fields, error bodies, the OAuth2 JWT-bearer exchange) drifted from Google's, these tests fail.

Run: python3 -m pytest -q Tests/servers/gcp   (needs: pip install google-cloud-kms cryptography pytest)
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# The vendor client is required, never skipped (make deps installs it): a missing one fails collection.
import google.cloud.kms_v1 as kms  # noqa: E402
from google.api_core import exceptions as gexc  # noqa: E402
from google.oauth2 import service_account  # noqa: E402
import google.auth.transport.requests  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))  # Tests/servers/fakecommon.py
from fakecommon import crc32c  # noqa: E402

sys.path.insert(0, HERE)


@pytest.fixture(scope="module")
def fake():
    d = tempfile.mkdtemp(prefix="tg-gcp-contract-")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_gcp_kms.py"), "--state-dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready = os.path.join(d, "ready.json")
    for _ in range(150):
        if os.path.exists(ready) or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert os.path.exists(ready), "fake server did not start: " + (proc.stderr.read().decode() if proc.poll() is not None else "")
    with open(ready) as f:
        info = json.load(f)
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = info["ca"]
    info["ctx"] = ssl.create_default_context(cafile=info["ca"])
    info["base"] = f"https://127.0.0.1:{info['port']}"
    yield info
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    if old is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old


def control(fake, path, doc=None):
    req = urllib.request.Request(fake["base"] + path, data=None if doc is None else json.dumps(doc).encode(),
                                 method="GET" if doc is None else "POST")
    with urllib.request.urlopen(req, context=fake["ctx"], timeout=10) as r:
        return json.load(r)


class NoSelfSignedJWT(service_account.Credentials):
    """google-api-core switches service-account credentials to self-signed JWTs; this keeps the OAuth2 token
    exchange at token_uri (what the Swift backend does) in the contract."""

    def with_always_use_jwt_access(self, always_use_jwt_access):
        return self


def client(fake, self_signed=False):
    cls = service_account.Credentials if self_signed else NoSelfSignedJWT
    creds = cls.from_service_account_file(fake["sa_key"], scopes=["https://www.googleapis.com/auth/cloudkms"])
    return kms.KeyManagementServiceClient(credentials=creds, transport="rest",
                                          client_options={"api_endpoint": fake["base"]})


def test_encrypt_decrypt_with_aad_and_crc32c(fake):
    control(fake, "/_test/reset", {})
    c = client(fake)
    pt, aad = os.urandom(32), b"TG-WRAP-CTX-1\x00token"
    enc = c.encrypt(request={"name": fake["key_name"], "plaintext": pt, "additional_authenticated_data": aad,
                             "plaintext_crc32c": crc32c(pt), "additional_authenticated_data_crc32c": crc32c(aad)})
    assert enc.name.startswith(fake["key_name"] + "/cryptoKeyVersions/")
    assert enc.verified_plaintext_crc32c and enc.verified_additional_authenticated_data_crc32c
    assert enc.ciphertext_crc32c == crc32c(enc.ciphertext)
    assert enc.protection_level == kms.ProtectionLevel.SOFTWARE
    dec = c.decrypt(request={"name": fake["key_name"], "ciphertext": enc.ciphertext, "additional_authenticated_data": aad,
                             "ciphertext_crc32c": crc32c(enc.ciphertext),
                             "additional_authenticated_data_crc32c": crc32c(aad)})
    assert dec.plaintext == pt
    assert dec.plaintext_crc32c == crc32c(pt)
    assert dec.used_primary
    stats = control(fake, "/_test/stats")
    assert stats.get("token_issued") == 1          # the JWT-bearer exchange at token_uri happened once
    assert stats.get("encrypt_ok") == 1 and stats.get("decrypt_ok") == 1


def test_wrong_aad_is_invalid_argument(fake):
    c = client(fake)
    enc = c.encrypt(request={"name": fake["key_name"], "plaintext": b"k" * 32, "additional_authenticated_data": b"a"})
    with pytest.raises(gexc.BadRequest) as e:
        c.decrypt(request={"name": fake["key_name"], "ciphertext": enc.ciphertext, "additional_authenticated_data": b"b"})
    assert "Decryption failed" in str(e.value)


def test_bad_request_checksum_is_refused(fake):
    c = client(fake)
    with pytest.raises(gexc.BadRequest) as e:
        c.encrypt(request={"name": fake["key_name"], "plaintext": b"x" * 32, "plaintext_crc32c": crc32c(b"y" * 32)})
    assert "plaintext_crc32c" in str(e.value)


def test_rotation_decrypts_old_versions(fake):
    c = client(fake)
    old = c.encrypt(request={"name": fake["key_name"], "plaintext": b"old!" * 8})
    rotated = control(fake, "/_test/rotate", {"name": fake["key_name"]})["name"]
    new = c.encrypt(request={"name": fake["key_name"], "plaintext": b"new!" * 8})
    assert new.name == rotated and new.name != old.name
    d = c.decrypt(request={"name": fake["key_name"], "ciphertext": old.ciphertext})
    assert d.plaintext == b"old!" * 8 and not d.used_primary


def test_errors_map_to_google_exceptions(fake):
    c = client(fake)
    with pytest.raises(gexc.NotFound):
        c.encrypt(request={"name": "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/nope", "plaintext": b"x"})
    control(fake, "/_test/faults", {"faults": [{"status": 429}]})
    with pytest.raises(gexc.TooManyRequests):
        c.encrypt(request={"name": fake["key_name"], "plaintext": b"x"}, retry=None)
    control(fake, "/_test/faults", {"faults": [{"status": 503}]})
    with pytest.raises(gexc.ServiceUnavailable):
        c.encrypt(request={"name": fake["key_name"], "plaintext": b"x"}, retry=None)


def test_self_signed_jwt_is_accepted_and_bad_signature_refused(fake):
    control(fake, "/_test/reset", {})
    c = client(fake, self_signed=True)
    c.encrypt(request={"name": fake["key_name"], "plaintext": b"z" * 16})
    assert control(fake, "/_test/stats").get("self_signed_jwt", 0) >= 1
    # A JWT signed by another key is refused at the token endpoint with invalid_grant.
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives import serialization
    with open(fake["sa_key"]) as f:
        sa = json.load(f)
    sa["private_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    creds = NoSelfSignedJWT.from_service_account_info(sa, scopes=["https://www.googleapis.com/auth/cloudkms"])
    from google.auth import exceptions as aexc
    with pytest.raises(aexc.RefreshError) as e:
        creds.refresh(google.auth.transport.requests.Request())
    assert "invalid_grant" in str(e.value)


def test_metadata_server_token(fake):
    import requests
    base = f"http://127.0.0.1:{fake['metadata_port']}/computeMetadata/v1/instance/service-accounts/default/token"
    assert requests.get(base, timeout=5).status_code == 403       # Metadata-Flavor required
    r = requests.get(base, headers={"Metadata-Flavor": "Google"}, timeout=5)
    assert r.status_code == 200 and r.headers["Metadata-Flavor"] == "Google"
    token = r.json()["access_token"]
    from google.oauth2.credentials import Credentials
    c = kms.KeyManagementServiceClient(credentials=Credentials(token), transport="rest",
                                       client_options={"api_endpoint": fake["base"]})
    assert c.encrypt(request={"name": fake["key_name"], "plaintext": b"m" * 16}).ciphertext


def test_crypto_key_labels_get_and_update(fake):
    from google.protobuf import field_mask_pb2
    c = client(fake)
    key = c.get_crypto_key(request={"name": fake["key_name"]})
    assert key.name == fake["key_name"] and key.purpose == kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT
    assert key.primary.name.startswith(fake["key_name"] + "/cryptoKeyVersions/")
    assert dict(key.labels) == {}
    labels = {"team": "pki", "tg-anchor-0123456789abcdef0123456789abcdef-0": "ab" * 31,
              "tg-anchor-0123456789abcdef0123456789abcdef-1": ""}
    key.labels.update(labels)
    updated = c.update_crypto_key(request={"crypto_key": key, "update_mask": field_mask_pb2.FieldMask(paths=["labels"])})
    assert dict(updated.labels) == labels
    assert dict(c.get_crypto_key(request={"name": fake["key_name"]}).labels) == labels
    # The whole map is replaced: a label left out is gone.
    key = c.get_crypto_key(request={"name": fake["key_name"]})
    del key.labels["team"]
    c.update_crypto_key(request={"crypto_key": key, "update_mask": field_mask_pb2.FieldMask(paths=["labels"])})
    assert "team" not in c.get_crypto_key(request={"name": fake["key_name"]}).labels


@pytest.mark.parametrize("labels", [
    {"Team": "x"},                       # upper-case key
    {"1team": "x"},                      # key must start with a letter
    {"team": "Upper"},                   # upper-case value
    {"team": "a" * 64},                  # value longer than 63
    {"k" * 64: "x"},                     # key longer than 63
    {"team": "a+b="},                    # base64 characters are not label characters
    {f"l{i}": "x" for i in range(65)},   # more than 64 labels
])
def test_crypto_key_bad_labels_are_invalid_argument(fake, labels):
    from google.protobuf import field_mask_pb2
    c = client(fake)
    key = c.get_crypto_key(request={"name": fake["key_name"]})
    before = dict(key.labels)
    key.labels.clear()
    key.labels.update(labels)
    with pytest.raises(gexc.BadRequest) as e:
        c.update_crypto_key(request={"crypto_key": key, "update_mask": field_mask_pb2.FieldMask(paths=["labels"])})
    assert "label" in str(e.value).lower()
    assert dict(c.get_crypto_key(request={"name": fake["key_name"]}).labels) == before


def test_crypto_key_metadata_permissions(fake):
    from google.protobuf import field_mask_pb2
    c = client(fake)
    control(fake, "/_test/deny", {"name": fake["key_name"], "deny": True, "ops": ["cryptoKeys.update"]})
    try:
        key = c.get_crypto_key(request={"name": fake["key_name"]})       # get still allowed
        key.labels["x"] = "y"
        with pytest.raises(gexc.Forbidden) as e:
            c.update_crypto_key(request={"crypto_key": key, "update_mask": field_mask_pb2.FieldMask(paths=["labels"])})
        assert "cloudkms.cryptoKeys.update" in str(e.value)
        c.encrypt(request={"name": fake["key_name"], "plaintext": b"still works"})
    finally:
        control(fake, "/_test/deny", {"name": fake["key_name"], "deny": False})
    with pytest.raises(gexc.NotFound):
        c.get_crypto_key(request={"name": "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/nope"})
