"""What the package encrypts decrypts with the suite's numpy reference of the SDK (both envelopes, both wire
formats, both moduli), the reverse, and homomorphic sums of ten ciphertexts."""
import json

import numpy as np
import pytest

import sdk_reference
import tensorguard_pkcs11 as tg
from conftest import import_sdk

ref = sdk_reference.ref


@pytest.fixture(scope="module")
def tok(pool, interop):
    token = pool.fresh()
    import_sdk(interop, token, "so32")
    import_sdk(interop, token, "raw32", rule="raw")
    import_sdk(interop, token, "so48", modulus_bits=48)
    return token


@pytest.mark.parametrize("fmt", ["LWE1", "LWE2"])
@pytest.mark.parametrize("bits", [32, 48])
def test_package_ciphertexts_decrypt_in_the_reference(tok, sdk_key, fmt, bits):
    rng = np.random.default_rng(bits)
    values = rng.integers(-70000, 70000, size=300)
    with tg.PKCS11N2HEEncryptor(f"so{bits}", token=tok) as e:
        ct = e.encrypt_batch(values, format=fmt)
        info = tg.formats.parse(ct, 1024)
        assert info.format == fmt and info.k == 300 and info.batch
        assert len(ct) == (13 + 8 * 300 * 1024 + 8 * 300 if fmt == "LWE1" else 45 + 8 * 300)
        assert np.array_equal(ref.decrypt(ct, sdk_key, bits), np.mod(values, 1 << 16))


def test_format_names_and_value_types(tok):
    with tg.PKCS11N2HEEncryptor("so32", token=tok) as e:
        assert tg.formats.parse(e.encrypt_batch([1, 2], format="lwe1"), 1024).format == "LWE1"
        assert tg.formats.parse(e.encrypt_batch(np.array([1, 2], dtype=np.uint8)), 1024).format == "LWE2"
        big = e.encrypt_batch([2**70 + 5, -1])          # Python ints of any size, reduced mod t
        assert e.decrypt_batch(big).tolist() == [5, 65535]
        with pytest.raises(TypeError, match="integers"):
            e.encrypt_batch([0.5, 1.5])
        with pytest.raises(ValueError, match="empty"):
            e.encrypt_batch([])
        with pytest.raises(ValueError, match="LWE1 or 'LWE2'|'LWE1' or 'LWE2'"):
            e.encrypt_batch([1], format="LWE3")


@pytest.mark.parametrize("sdk", ["tensorguard", "tensorguardflow"])
@pytest.mark.parametrize("size", [1, 1000, 5000])
def test_package_envelopes_decrypt_in_the_reference(tok, sdk_key, sdk, size):
    data = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    with tg.PKCS11N2HEEncryptor("so32", token=tok, sdk=sdk) as e:
        env = e.encrypt(data)
    refenc = sdk_reference.N2HEEncryptor(sdk_key, sdk=sdk)
    out = refenc.decrypt(env)
    if sdk == "tensorguard":
        doc = json.loads(env)
        assert doc["len"] == size and len(doc["chunks"]) == -(-(-(-size // 1024) * 1024) // 4096)
        assert out == data
    else:
        assert env[:4] == b"LWE2" and len(out) == -(-size // 1024) * 1024
        assert out[:size] == data and set(out[size:]) <= {0}


@pytest.mark.parametrize("sdk", ["tensorguard", "tensorguardflow"])
def test_reference_envelopes_decrypt_through_the_package(tok, sdk_key, sdk):
    data = b"federated update " * 300
    env = sdk_reference.N2HEEncryptor(sdk_key, sdk=sdk).encrypt(data)
    label = "raw32" if sdk == "tensorguard" else "so32"
    with tg.PKCS11N2HEEncryptor(label, token=tok, sdk="tensorguardflow") as e:
        assert e.decrypt(env)[:len(data)] == data


def test_round_trip_through_the_token(tok):
    with tg.PKCS11N2HEEncryptor("raw32", token=tok, sdk="tensorguard") as e:
        data = bytes(range(256)) * 20
        assert e.decrypt(e.encrypt(data)) == data
        ct = e.encrypt_batch([7, 8, 9], format="LWE1")
        assert e.decrypt_batch(ct).tolist() == [7, 8, 9]
        assert e.decrypt_batch(ct).tolist() == [7, 8, 9]   # raw: reusable


def test_sum_of_ten_seeded_ciphertexts(tok, sdk_key):
    rng = np.random.default_rng(10)
    updates = [rng.integers(0, 1 << 16, size=512) for _ in range(10)]
    with tg.PKCS11N2HEEncryptor("so32", token=tok) as e:
        cts = [e.encrypt_batch(u) for u in updates]
        chained = cts[0]
        for c in cts[1:]:
            chained = e.add(chained, c)
        at_once = tg.add_all(cts)
        expected = np.mod(np.sum(updates, axis=0), 1 << 16)
        for total in (chained, at_once):
            info = tg.formats.parse(total, 1024)
            assert info.format == "LWS1" and len(info.seeds) == 10
            assert len(total) == 17 + 32 * 10 + 8 * 512
            assert np.array_equal(ref.decrypt_parts(tg.formats.matrix(total, info, 32).astype(np.int64),
                                                    tg.formats.b_values(total, info).astype(np.int64), sdk_key,
                                                    1 << 32, 1 << 16, 1 << 16), expected)
        assert np.array_equal(e.decrypt_batch(chained), expected)   # decrypted once, inside the token
        with pytest.raises(tg.DecryptionRefusedError):
            e.decrypt_batch(at_once)                                # the same seeds again: refused
        with pytest.raises(tg.DecryptionRefusedError):
            e.decrypt_batch(cts[3])                                 # a seed spent by the sum: refused
        with pytest.raises(tg.CiphertextFormatError, match="share a seed"):
            e.add(cts[0], cts[0])


def test_sum_of_ten_lwe1_ciphertexts_under_a_raw_key(tok):
    updates = [np.arange(64) * (i + 1) for i in range(10)]
    with tg.PKCS11N2HEEncryptor("raw32", token=tok) as e:
        cts = [e.encrypt_batch(u, format="LWE1") for u in updates]
        mixed = e.add(cts[0], e.encrypt_batch(updates[1]))       # LWE1 + LWE2 -> LWE1, as the SDK writes it
        assert mixed[:4] == b"LWE1"
        assert e.decrypt_batch(mixed).tolist() == (updates[0] + updates[1]).tolist()
        total = tg.add_all(cts)
        assert total[:4] == b"LWE1"
        assert np.array_equal(e.decrypt_batch(total), np.mod(np.sum(updates, axis=0), 1 << 16))


def test_created_key_and_q48(pool):
    token = pool.fresh()
    with tg.PKCS11N2HEEncryptor("fresh", token=token, create=True, sdk="tensorguardflow") as e:
        assert (e.n, e.modulus_bits, e.plaintext_bits, e.decrypt_rule) == (1024, 32, 16, "seeded-once")
        assert e.max_seeded_sum_terms() == 65536
        v = np.arange(2048) - 1000
        assert np.array_equal(e.decrypt_batch(e.encrypt_batch(v)), np.mod(v, 1 << 16))
    with tg.PKCS11N2HEEncryptor("fresh", token=token) as again:   # found, not created twice
        assert again.generation == 1


def test_empty_envelopes(tok):
    for sdk in ("tensorguard", "tensorguardflow"):
        with tg.PKCS11N2HEEncryptor("raw32", token=tok, sdk=sdk) as e:
            env = e.encrypt(b"")
            assert e.decrypt(env) == (b"" if sdk == "tensorguard" else bytes(1024))


def test_rotated_key_generations(pool):
    """After `tg-pkcs11 key rotate`, the encryptor encrypts with the new generation; generation=1 still decrypts
    what the old one encrypted (docs/policies.md)."""
    import subprocess
    from conftest import CLI, MODULE
    token = pool.fresh()
    with tg.PKCS11N2HEEncryptor("rot", token=token, create=True) as e:
        old = e.encrypt_batch([11, 12])
    r = subprocess.run([CLI, "key", "rotate", "--module", MODULE, "--token", token, "--label", "rot"],
                       env=pool.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    with tg.PKCS11N2HEEncryptor("rot", token=token) as e2:
        assert (e2.generation, e2.active_generation) == (2, 2)
        new = e2.encrypt_batch([13])
        assert e2.decrypt_batch(new).tolist() == [13]
    with tg.PKCS11N2HEEncryptor("rot", token=token, generation=1) as e1:
        assert e1.decrypt_batch(old).tolist() == [11, 12]
        assert e1.active_generation == 2
        with pytest.raises(tg.KeyNotFoundError, match="no generation 5"):
            tg.PKCS11N2HEEncryptor("rot", token=token, generation=5)


def test_encrypt_only_client_key(pool, interop, sdk_key):
    """The recommended deployment: a client's key encrypts only; the aggregator's key decrypts the sum."""
    import os
    client_token, aggregator_token = pool.fresh(), pool.fresh()
    tg.import_sdk_key(os.path.join(interop, "sdk-key-1.npy"), "client", token=client_token, decrypt=False, warn=False)
    import_sdk(interop, aggregator_token, "aggregator")
    with tg.PKCS11N2HEEncryptor("client", token=client_token) as client:
        cts = [client.encrypt_batch([i, 2 * i]) for i in range(1, 4)]
        with pytest.raises(tg.KeyUsageError, match="encrypt-only"):
            client.decrypt_batch(cts[0])
    total = tg.add_all(cts)
    with tg.PKCS11N2HEEncryptor("aggregator", token=aggregator_token) as agg:
        assert agg.decrypt_batch(total).tolist() == [6, 12]
    assert ref.decrypt_parts(tg.formats.matrix(total, tg.formats.parse(total), 32).astype(np.int64),
                             tg.formats.b_values(total, tg.formats.parse(total)).astype(np.int64), sdk_key,
                             1 << 32, 1 << 16, 1 << 16).tolist() == [6, 12]
