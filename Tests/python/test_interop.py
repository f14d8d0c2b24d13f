"""Every SDK fixture of ../shared/interop decrypts through the package after import_sdk_key of sdk-key-1: LWE1 under
a raw import, LWE2 under the default seeded-once import (each seed once: one fresh token for this file)."""
import os

import numpy as np
import pytest

import tensorguard_pkcs11 as tg
from conftest import import_sdk


@pytest.fixture(scope="module")
def keys(pool, interop):
    token = pool.fresh()
    for bits in (32, 48):
        import_sdk(interop, token, f"raw{bits}", rule="raw", modulus_bits=bits)
        import_sdk(interop, token, f"so{bits}", modulus_bits=bits)
    encs = {name: tg.PKCS11N2HEEncryptor(name, token=token) for name in ("raw32", "so32", "raw48", "so48")}
    yield encs
    for e in encs.values():
        e.close()


def test_fixture_inventory(cases, envelope_cases):
    assert len(cases) == 12 and {c["format"] for c in cases} == {"LWE1", "LWE2"}
    assert len(envelope_cases) == 5


def test_every_ciphertext_fixture_decrypts(keys, cases, interop):
    for c in cases:
        ct = open(os.path.join(interop, c["file"]), "rb").read()
        bits = c["modulus_bits"]
        expected = np.array(c["plaintext"], dtype=np.int64)
        raw = keys[f"raw{bits}"].decrypt_batch(ct)
        assert np.array_equal(raw, expected), c["file"]
        if c["format"] == "LWE2":
            # seeded-once: accepted once ...
            assert np.array_equal(keys[f"so{bits}"].decrypt_batch(ct), expected), c["file"]
            # ... and refused the second time, with an error that says why
            with pytest.raises(tg.DecryptionRefusedError, match="seeded-once"):
                keys[f"so{bits}"].decrypt_batch(ct)
        else:
            with pytest.raises(tg.DecryptionRefusedError, match="raw"):
                keys[f"so{bits}"].decrypt_batch(ct)


def test_every_envelope_fixture_decrypts(keys, envelope_cases, interop):
    for c in envelope_cases:
        env = open(os.path.join(interop, c["file"]), "rb").read()
        plain = open(os.path.join(interop, c["plaintext_file"]), "rb").read()
        assert len(plain) == c["bytes"]
        if c["sdk"] == "tensorguard":
            assert keys["raw32"].decrypt(env) == plain
            with pytest.raises(tg.DecryptionRefusedError, match="decrypt_rule='raw'"):
                keys["so32"].decrypt(env)
        else:
            out = keys["so32"].decrypt(env)          # whatever the encryptor's sdk says
            assert len(out) == c["decrypts_to_padded_length"]
            assert out[:len(plain)] == plain and set(out[len(plain):]) <= {0}


def test_npy_and_bin_forms_are_the_same_key(pool, interop, cases):
    token = pool.fresh()
    tg.import_sdk_key(os.path.join(interop, "sdk-key-1.bin"), "from-bin", token=token, decrypt_rule="raw",
                      meta=os.path.join(interop, "sdk-key-1.meta.json"), warn=False)
    c = next(c for c in cases if c["format"] == "LWE1" and c["modulus_bits"] == 32 and c["k"] == 8)
    with tg.PKCS11N2HEEncryptor("from-bin", token=token) as e:
        assert e.n == 1024 and e.modulus_bits == 32 and e.plaintext_bits == 16 and e.decrypt_rule == "raw"
        assert e.decrypt_batch(open(os.path.join(interop, c["file"]), "rb").read()).tolist() == c["plaintext"]


def test_import_tells_to_delete_the_file(pool, interop):
    token = pool.fresh()
    with pytest.warns(UserWarning, match="delete"):
        tg.import_sdk_key(os.path.join(interop, "sdk-key-1.npy"), "k", token=token)
    with pytest.raises(tg.KeyFileError, match="already exists"):
        tg.import_sdk_key(os.path.join(interop, "sdk-key-1.npy"), "k", token=token, warn=False)
