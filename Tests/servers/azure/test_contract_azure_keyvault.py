"""Contract test: the fake Key Vault + Entra ID server (fake_azure_keyvault.py) driven by Microsoft's official
Python clients: azure-keyvault-keys CryptographyClient.wrap_key / unwrap_key (RSA-OAEP-256) with
azure-identity ClientSecretCredential (authority host pointed at the fake). The Key Vault client's own
challenge policy does the bearer-challenge dance (unauthenticated first request → 401 WWW-Authenticate →
token for that tenant/resource → retry), so a drift of the fake from Key Vault's wire format fails here.

Run: python3 -m pytest -q Tests/servers/azure   (needs: pip install azure-keyvault-keys azure-identity cryptography pytest)
"""
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# The vendor client is required, never skipped (make deps installs it): a missing one fails collection.
import azure.keyvault.keys.crypto as keys_crypto  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402


@pytest.fixture(scope="module")
def fake():
    d = tempfile.mkdtemp(prefix="tg-azure-contract-")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_azure_keyvault.py"), "--state-dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready = os.path.join(d, "ready.json")
    for _ in range(300):
        if os.path.exists(ready) or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert os.path.exists(ready), "fake server did not start: " + (proc.stderr.read().decode() if proc.poll() is not None else "")
    with open(ready) as f:
        info = json.load(f)
    with open(info["client_secret_file"]) as f:
        info["secret"] = f.read().strip()
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = info["ca"]
    info["ctx"] = ssl.create_default_context(cafile=info["ca"])
    yield info
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    if old is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old


def control(fake, path, doc=None):
    req = urllib.request.Request(fake["vault_url"] + path, data=None if doc is None else json.dumps(doc).encode(),
                                 method="GET" if doc is None else "POST")
    with urllib.request.urlopen(req, context=fake["ctx"], timeout=10) as r:
        return json.load(r)


def credential(fake, secret=None):
    return ClientSecretCredential(fake["tenant"], fake["client_id"], secret or fake["secret"],
                                  authority=fake["vault_url"], disable_instance_discovery=True,
                                  connection_verify=fake["ca"])


def crypto_client(fake, key_id, cred=None):
    # A principal without keys/get (wrapKey + unwrapKey only): the SDK cannot fetch the public key and uses the
    # remote operations, which is what these tests exercise.
    control(fake, "/_test/deny", {"name": fake["key_name"], "deny": True, "ops": ["get"]})
    return CryptographyClient(key_id, cred or credential(fake), verify_challenge_resource=False,
                              connection_verify=fake["ca"], retry_total=0)


def key_id(fake, version=None):
    return f"{fake['vault_url']}/keys/{fake['key_name']}" + (f"/{version}" if version else "")


def test_wrap_unwrap_round_trip_with_bearer_challenge(fake):
    control(fake, "/_test/reset", {})
    cek = os.urandom(32)
    wrapped = crypto_client(fake, key_id(fake)).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, cek)
    assert len(wrapped.encrypted_key) == 256     # RSA-2048
    unwrapped = crypto_client(fake, wrapped.key_id).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
    assert unwrapped.key == cek
    stats = control(fake, "/_test/stats")
    assert stats.get("unauthenticated", 0) >= 1      # the SDK's first request is the unauthenticated challenge probe
    assert stats.get("token_issued", 0) >= 1
    assert stats.get("wrapkey_ok") == 1 and stats.get("unwrapkey_ok") == 1


def test_ciphertext_is_real_rsa_oaep_256(fake):
    # Wrap remotely, then check the server really uses RSA-OAEP-256 by unwrapping a locally OAEP-SHA1 blob failing,
    # and an OAEP-SHA256 blob from the server succeeding only with the right algorithm.
    client = crypto_client(fake, key_id(fake))
    wrapped = client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    c2 = crypto_client(fake, wrapped.key_id)
    with pytest.raises(HttpResponseError) as e:
        c2.unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped.encrypted_key)     # SHA-1 OAEP on a SHA-256 blob
    assert e.value.status_code == 400 and "BadParameter" in str(e.value)


def test_tampered_ciphertext_refused(fake):
    wrapped = crypto_client(fake, key_id(fake)).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"t" * 32)
    bad = bytearray(wrapped.encrypted_key)
    bad[10] ^= 1
    with pytest.raises(HttpResponseError) as e:
        crypto_client(fake, wrapped.key_id).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, bytes(bad))
    assert e.value.status_code == 400


def test_rotation_old_kid_still_unwraps(fake):
    old_kid = control(fake, "/_test/rotate", {"name": fake["key_name"]})["kid"]
    assert old_kid.startswith(key_id(fake) + "/")
    old = crypto_client(fake, old_kid).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"o" * 32)
    control(fake, "/_test/rotate", {"name": fake["key_name"]})
    latest = crypto_client(fake, key_id(fake))
    with pytest.raises(HttpResponseError):      # the current version cannot unwrap the old version's blob
        latest.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, old.encrypted_key)
    assert crypto_client(fake, old_kid).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, old.encrypted_key).key == b"o" * 32


def test_wrong_secret_is_authentication_error(fake):
    with pytest.raises(ClientAuthenticationError) as e:
        crypto_client(fake, key_id(fake), credential(fake, secret="wrong")).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"x" * 32)
    assert "AADSTS7000215" in str(e.value)


def test_missing_key_and_throttling(fake):
    with pytest.raises(ResourceNotFoundError):
        crypto_client(fake, f"{fake['vault_url']}/keys/nope").wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"x" * 32)
    client = crypto_client(fake, key_id(fake))
    client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"x" * 32)   # authenticated now
    control(fake, "/_test/faults", {"faults": [{"status": 429, "retry_after": 1}]})
    with pytest.raises(HttpResponseError) as e:
        client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"x" * 32)
    assert e.value.status_code == 429


def test_managed_identity_endpoint(fake):
    import requests
    url = f"http://127.0.0.1:{fake['imds_port']}/metadata/identity/oauth2/token"
    params = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    assert requests.get(url, params=params, timeout=5).status_code == 400      # Metadata: true required
    r = requests.get(url, params=params, headers={"Metadata": "true"}, timeout=5)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer" and r.json()["expires_in"].isdigit()


def key_client(fake):
    from azure.keyvault.keys import KeyClient
    control(fake, "/_test/deny", {"name": fake["key_name"], "deny": False})
    return KeyClient(fake["vault_url"], credential(fake), verify_challenge_resource=False,
                     connection_verify=fake["ca"], retry_total=0)


def test_get_key_and_update_tags(fake):
    c = key_client(fake)
    key = c.get_key(fake["key_name"])
    assert key.id.startswith(key_id(fake) + "/") and key.key_type == "RSA" and key.properties.enabled
    tags = {"team": "pki", "tg-anchor-0123456789abcdef0123456789abcdef": "QUJD+/=" + "A" * 165}
    props = c.update_key_properties(fake["key_name"], key.properties.version, tags=tags)
    assert props.properties.tags == tags and props.id == key.id
    assert c.get_key(fake["key_name"], key.properties.version).properties.tags == tags
    # No version: the latest is read and updated; a new version starts without the tags.
    assert c.get_key(fake["key_name"]).properties.tags == tags
    new_kid = control(fake, "/_test/rotate", {"name": fake["key_name"]})["kid"]
    latest = c.get_key(fake["key_name"])
    assert latest.id == new_kid and not latest.properties.tags
    assert c.update_key_properties(fake["key_name"], tags={"only": "this"}).properties.tags == {"only": "this"}
    assert c.get_key(fake["key_name"], key.properties.version).properties.tags == tags


@pytest.mark.parametrize("tags", [
    {f"t{i}": "x" for i in range(16)},     # more than 15 tags
    {"big": "v" * 257},                    # value longer than 256
])
def test_bad_tags_are_bad_parameter(fake, tags):
    c = key_client(fake)
    before = c.get_key(fake["key_name"]).properties.tags
    with pytest.raises(HttpResponseError) as e:
        c.update_key_properties(fake["key_name"], tags=tags)
    assert e.value.status_code == 400 and "BadParameter" in str(e.value)
    assert c.get_key(fake["key_name"]).properties.tags == before


def test_get_and_update_need_their_permissions(fake):
    c = key_client(fake)
    control(fake, "/_test/deny", {"name": fake["key_name"], "deny": True, "ops": ["update"]})
    c.get_key(fake["key_name"])
    with pytest.raises(HttpResponseError) as e:
        c.update_key_properties(fake["key_name"], tags={"a": "b"})
    assert e.value.status_code == 403 and "keys update permission" in str(e.value)
    control(fake, "/_test/deny", {"name": fake["key_name"], "deny": True, "ops": ["get"]})
    with pytest.raises(HttpResponseError) as e:
        c.get_key(fake["key_name"])
    assert e.value.status_code == 403
    with pytest.raises(ResourceNotFoundError):
        key_client(fake).get_key("nope")
