"""Threads (8 × 200 calls on one encryptor, one PKCS#11 session per thread) and fork-then-use."""
import os
import threading

import numpy as np
import pytest

import tensorguard_pkcs11 as tg


def test_eight_threads_two_hundred_calls_each(token):
    with tg.PKCS11N2HEEncryptor("threads", token=token, create=True, sdk="tensorguardflow") as e:
        errors, done = [], []

        def worker(w: int) -> None:
            try:
                rng = np.random.default_rng(w)
                for i in range(200):
                    v = rng.integers(0, 1 << 16, size=8)
                    if i % 2 == 0:
                        assert np.array_equal(e.decrypt_batch(e.encrypt_batch(v)), v)
                    else:
                        data = bytes(rng.integers(0, 256, size=20, dtype=np.uint8))
                        assert e.decrypt(e.encrypt(data))[:20] == data
                done.append(w)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors[:3]
        assert sorted(done) == list(range(8))
        assert len(e._sessions) <= 9   # one per thread, closed as the threads end


def test_fork_then_use(token):
    e = tg.PKCS11N2HEEncryptor("forked", token=token, create=True, sdk="tensorguardflow")
    before = e.encrypt_batch([1, 2, 3])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the inherited encryptor re-initialises the module, logs in again, and works
        code = 1
        try:
            os.close(r)
            ct = e.encrypt_batch([4, 5, 6])
            ok = e.decrypt_batch(ct).tolist() == [4, 5, 6] and e.decrypt_batch(before).tolist() == [1, 2, 3]
            with tg.PKCS11N2HEEncryptor("forked", token=token, sdk="tensorguardflow") as fresh:
                ok = ok and fresh.decrypt(fresh.encrypt(b"child"))[:5] == b"child"
            os.write(w, b"ok" if ok else b"mismatch")
            code = 0
        except BaseException as exc:  # noqa: BLE001
            os.write(w, repr(exc).encode()[:500])
        finally:
            os._exit(code)
    os.close(w)
    msg = os.read(r, 1000)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and msg == b"ok", msg
    # The parent is untouched by the child's C_Initialize: same encryptor, same login. The child spent
    # `before`'s seed in the token's ledger, so the parent's decryption of it is refused — the rule holds across
    # processes.
    assert e.decrypt_batch(e.encrypt_batch([7])).tolist() == [7]
    with pytest.raises(tg.DecryptionRefusedError):
        e.decrypt_batch(before)
    e.close()
    with pytest.raises(tg.TensorGuardPKCS11Error, match="closed"):
        e.encrypt_batch([1])


def test_two_encryptors_share_one_login(token):
    a = tg.PKCS11N2HEEncryptor("shared", token=token, create=True)
    b = tg.PKCS11N2HEEncryptor("shared", token=token)
    ct = a.encrypt_batch([9])
    a.close()                      # the login stays while b uses it
    assert b.decrypt_batch(ct).tolist() == [9]
    b.close()
