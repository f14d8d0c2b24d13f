"""Bad input gives a clear exception, never a crash: garbled and truncated envelopes, JSON of the wrong types,
chunks of another n, the wrong key, a locked token, a missing or broken module. Cases that send garbage to the
token run in a child interpreter, so that a crash would show as a failed test and not kill the run."""
import json
import os
import textwrap

import numpy as np
import pytest

import sdk_reference
import tensorguard_pkcs11 as tg
from conftest import INTEROP, import_sdk, run_child

ref = sdk_reference.ref


@pytest.fixture(scope="module")
def tok(pool, interop):
    token = pool.fresh()
    import_sdk(interop, token, "so")
    import_sdk(interop, token, "raw", rule="raw")
    return token


def test_json_envelopes_of_the_wrong_shape(tok):
    good = json.dumps({"chunks": ["00"], "len": 1})
    bad = [
        "[1, 2]", '"chunks"', "{}", '{"chunks": "abcd", "len": 1}', '{"chunks": [], "len": 0}',
        '{"chunks": [1], "len": 1}', '{"chunks": ["zz"], "len": 1}', '{"chunks": ["00"], "len": "1"}',
        '{"chunks": ["00"], "len": true}', '{"chunks": ["00"], "len": -1}', '{"chunks": ["00"], "len": 1.5}',
        '{"chunks": ["00"], "len": 1, "extra": 0}', '{"chunks": ["00"], "len": 1', good, "{\xff}",
    ]
    with tg.PKCS11N2HEEncryptor("raw", token=tok) as e:
        for text in bad:
            with pytest.raises(tg.CiphertextFormatError) as info:
                e.decrypt(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
            assert "envelope" in str(info.value) or "chunk" in str(info.value), text
        with pytest.raises(tg.CiphertextFormatError, match="neither"):
            e.decrypt(b"hello")
        with pytest.raises(TypeError):
            e.decrypt("a string")  # type: ignore[arg-type]


def test_len_larger_than_the_chunks(tok, sdk_key):
    env = json.loads(sdk_reference.N2HEEncryptor(sdk_key, sdk="tensorguard").encrypt(b"abc"))
    env["len"] = 5000
    with tg.PKCS11N2HEEncryptor("raw", token=tok) as e:
        with pytest.raises(tg.CiphertextFormatError, match="len = 5000"):
            e.decrypt(json.dumps(env).encode())


def test_chunks_of_another_n(tok):
    s512 = np.random.default_rng(5).integers(-1, 2, size=512)
    other = ref.encrypt(np.arange(512), s512, "lwe1", 32)
    env = json.dumps({"chunks": [other.hex()], "len": 512}).encode()
    with tg.PKCS11N2HEEncryptor("raw", token=tok) as e:
        with pytest.raises(tg.CiphertextFormatError, match="n = 512 but the key has n = 1024"):
            e.decrypt(env)
        with pytest.raises(tg.CiphertextFormatError, match="n = 512"):
            e.decrypt_batch(ref.encrypt([1, 2], s512, "lwe2", 32))


def test_wrong_key(pool, tok, sdk_key):
    other = pool.fresh()
    data = b"not for this key" * 10
    with tg.PKCS11N2HEEncryptor("k2", token=other, create=True, sdk="tensorguardflow") as e2:
        env = e2.encrypt(data)
    with tg.PKCS11N2HEEncryptor("so", token=tok) as e:
        with pytest.raises(tg.CiphertextFormatError, match="another key"):
            e.decrypt(env)
    raw_env = sdk_reference.N2HEEncryptor(np.random.default_rng(9).integers(-1, 2, 1024), sdk="tensorguard").encrypt(data)
    with tg.PKCS11N2HEEncryptor("raw", token=tok) as e:
        with pytest.raises(tg.CiphertextFormatError, match="another key"):
            e.decrypt(raw_env)


def test_malformed_ciphertexts_in_a_child(tok, sdk_key):
    """Truncations, extensions, flipped header bytes and random bodies of every format, sent through the package
    to the token: each must raise one of the package's exceptions."""
    code = textwrap.dedent(f"""
        import os, random, numpy as np, tensorguard_pkcs11 as tg, sdk_reference
        ref = sdk_reference.ref
        random.seed(1)
        key = ref.load_key({os.path.join(INTEROP, 'sdk-key-1.npy')!r})
        so = tg.PKCS11N2HEEncryptor("so", token={tok!r}, sdk="tensorguardflow")
        raw = tg.PKCS11N2HEEncryptor("raw", token={tok!r})
        good = [ref.encrypt(list(range(8)), key, "lwe1", 32), ref.encrypt(list(range(8)), key, "lwe2", 32)]
        good.append(tg.add(good[1], ref.encrypt(list(range(8)), key, "lwe2", 32)))
        cases, must_fail = [], []
        for ct in good:
            for cut in (0, 3, 12, 13, 20, 44, 45, len(ct) - 1):
                must_fail.append(ct[:cut])
            must_fail.append(ct + b"\\0")
            for pos in range(17):
                for v in (0, 1, 2, 3, 0x80, 0xff):
                    b = bytearray(ct); b[pos] = v; cases.append(bytes(b))
            for _ in range(30):
                b = bytearray(ct[:13]) + bytearray(random.getrandbits(8) for _ in range(random.randrange(0, 200)))
                cases.append(bytes(b))
        ok = errors = 0
        for ct in must_fail:
            for e in (so, raw):
                try:
                    e.decrypt_batch(ct)
                    raise SystemExit("accepted a truncated or extended ciphertext")
                except (tg.TensorGuardPKCS11Error, ValueError) as err:
                    assert str(err)
        for ct in cases:
            for e in (so, raw):
                try:
                    e.decrypt_batch(ct)
                    ok += 1
                except (tg.TensorGuardPKCS11Error, ValueError) as err:
                    assert str(err), "empty message"
                    errors += 1
                try:
                    e.decrypt(ct)
                except (tg.TensorGuardPKCS11Error, ValueError):
                    pass
        print("CASES", len(cases), "ERRORS", errors, "OK", ok, "MUSTFAIL", len(must_fail))
    """)
    r = run_child(code, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("CASES")][0].split()
    # Every case either raised one of the package's exceptions or (a flipped bit in B or the seed) decrypted to
    # other numbers; none crashed the child.
    assert int(line[1]) > 300 and int(line[3]) + int(line[5]) == 2 * int(line[1]) and int(line[3]) > 500, line
    assert int(line[7]) == 27, line


def test_wrong_pin_then_locked(pool):
    tok = "locktest"
    with pytest.raises(tg.PinError) as info:
        tg.PKCS11N2HEEncryptor("x", token=tok, pin="0000")
    assert info.value.rv_name == "CKR_PIN_INCORRECT" and "0000" not in str(info.value)
    for _ in range(5):
        try:
            tg.PKCS11N2HEEncryptor("x", token=tok, pin="0000")
        except tg.PinError as e:
            last = e
    assert last.rv_name == "CKR_PIN_LOCKED" and "locked" in str(last) and "security officer" in str(last)
    with pytest.raises(tg.PinError, match="locked"):
        tg.PKCS11N2HEEncryptor("x", token=tok)   # the right PIN no longer helps


def test_no_pin_unknown_token_unknown_key(pool, tok, monkeypatch):
    monkeypatch.delenv("TG_PKCS11_PIN")
    with pytest.raises(tg.PinError, match="TG_PKCS11_PIN"):
        tg.PKCS11N2HEEncryptor("so", token=tok)
    monkeypatch.setenv("MY_PIN", "123456")
    with tg.PKCS11N2HEEncryptor("so", token=tok, pin_env="MY_PIN") as e:
        assert e.n == 1024
    with pytest.raises(tg.TokenNotFoundError, match="no token labelled 'nope'"):
        tg.PKCS11N2HEEncryptor("so", token="nope", pin="123456")
    with pytest.raises(tg.TokenNotFoundError, match="token init"):
        tg.PKCS11N2HEEncryptor("so", token="blank", pin="123456")
    with pytest.raises(tg.KeyNotFoundError, match="create=True"):
        tg.PKCS11N2HEEncryptor("absent", token=tok, pin="123456")
    with pytest.raises(ValueError, match="sdk"):
        tg.PKCS11N2HEEncryptor("so", token=tok, pin="123456", sdk="tensorflow")


def test_encrypt_refused_after_the_key_may_no_longer_encrypt(pool, interop):
    """A decrypt-only key (a rotated generation): the error names the CK_RV and says to rotate."""
    from pkcs11 import Attribute
    token = pool.fresh()
    import_sdk(interop, token, "old")
    with tg.PKCS11N2HEEncryptor("old", token=token) as e:
        key = next(e._login.session.get_objects({Attribute.LABEL: "old"}))
        key[Attribute.ENCRYPT] = False
    with tg.PKCS11N2HEEncryptor("old", token=token) as e:
        with pytest.raises(tg.KeyUsageError, match="rotate"):
            e.encrypt_batch([1])


def test_policy_limit_names_the_ck_rv_and_says_rotate(pool):
    from conftest import LIMITED_USES
    with tg.PKCS11N2HEEncryptor("limited-key", token="limited", create=True, sdk="tensorguardflow") as e:
        cts = [e.encrypt_batch([i]) for i in range(LIMITED_USES)]
        with pytest.raises(tg.KeyUsageError) as info:
            e.encrypt_batch([99])
        assert info.value.rv == 0x68 and info.value.rv_name == "CKR_KEY_FUNCTION_NOT_PERMITTED"
        assert "max_key_uses" in str(info.value) and "tg-pkcs11 key rotate" in str(info.value)
        assert e.decrypt_batch(cts[1]).tolist() == [1]      # decryption is never refused by the limit


def test_bad_key_files(tmp_path, pool):
    token = pool.fresh()
    cases = {
        "short.bin": b"\x01" * 12,
        "values.bin": (np.array([0, 1, 2, -1], dtype="<i8")).tobytes(),
        "float.npy": None,
    }
    np.save(tmp_path / "float.npy", np.zeros(16, dtype=np.float64))
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(tg.KeyFileError):
            tg.import_sdk_key(str(tmp_path / name), name, token=token, warn=False)
    with pytest.raises(tg.KeyFileError, match="cannot read"):
        tg.import_sdk_key(str(tmp_path / "missing.npy"), "m", token=token, warn=False)
    (tmp_path / "meta.json").write_text(json.dumps({"params": {"n": 4, "q": 1000, "t": 16}}))
    np.save(tmp_path / "k.npy", np.array([1, 0, -1, 1], dtype=np.int64))
    with pytest.raises(tg.KeyFileError, match="power of two"):
        tg.import_sdk_key(str(tmp_path / "k.npy"), "k", token=token, meta=str(tmp_path / "meta.json"), warn=False)
    with pytest.raises(ValueError, match="decrypt_rule"):
        tg.import_sdk_key(str(tmp_path / "k.npy"), "k", token=token, decrypt_rule="open", warn=False)


def test_missing_and_broken_module(tmp_path):
    with pytest.raises(tg.ModuleLoadError, match="does not exist"):
        tg.PKCS11N2HEEncryptor("k", module=str(tmp_path / "nope.so"))
    (tmp_path / "fake.so").write_bytes(b"not a shared object")
    code = textwrap.dedent(f"""
        import os, tensorguard_pkcs11 as tg
        for var in ("TENSORGUARD_PKCS11_MODULE", "TG_PKCS11_MODULE"):
            os.environ.pop(var, None)
        try:
            tg.PKCS11N2HEEncryptor("k", module={str(tmp_path / 'fake.so')!r}, pin="1234")
        except tg.ModuleLoadError as e:
            print("BROKEN", e)
        if any(os.path.exists(p) for p in tg.installed_module_locations()):
            print("INSTALLED", tg.find_module())
        else:
            try:
                tg.find_module()
            except tg.ModuleLoadError as e:
                print("MISSING", e)
    """)
    r = run_child(code)
    assert r.returncode == 0, r.stderr
    assert "BROKEN cannot load PKCS#11 module" in r.stdout
    assert ("MISSING TensorGuard PKCS#11 module not found" in r.stdout and "TENSORGUARD_PKCS11_MODULE" in r.stdout) \
        or "INSTALLED" in r.stdout, r.stdout


def test_bad_configuration_is_a_clear_error(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("tokens: [ {name: x, unknown_key: 1} ]\n")
    conf.chmod(0o600)
    code = textwrap.dedent(f"""
        import os, tensorguard_pkcs11 as tg
        os.environ["TENSORGUARD_PKCS11_CONF"] = {str(conf)!r}
        try:
            tg.PKCS11N2HEEncryptor("k", pin="1234")
        except tg.ModuleLoadError as e:
            print("ERR", e)
    """)
    r = run_child(code)
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and "TENSORGUARD_PKCS11_CONF" in r.stdout and "CKR_GENERAL_ERROR" in r.stdout, r.stdout
