#!/usr/bin/env python3
"""One federated-learning round with the N2HE key in a TensorGuard PKCS#11 token (docs/python.md).

Ten simulated clients each hold a float32 model update. Each quantises it to the plaintext modulus t and encrypts
it inside the token (C_Encrypt, LWE2). The aggregator adds the ten ciphertexts without any key (a seeded sum,
numpy only). The key holder decrypts only the sum, inside the token (C_Decrypt, once: the sum spends the ten
seeds), and de-quantises it. The script prints the error of the decrypted average against the plaintext one.

Quantisation (the SDK's own rule is not specified in ../shared; this is the choice, documented in docs/python.md):
fixed point with scale S = 2^11 after clipping to [-1, 1]: m = round(x · S) mod t, read back as a signed value
(v ≥ t/2 → v − t) and divided by S. With t = 2^16 a sum of C clients stays exact while C · S ≤ 2^15 − 1, so ten
clients at S = 2^11 (sum up to ±20,480) leave room; the rounding error of the sum is at most C / (2·S) per entry.

  python3 examples/federated_round.py --token demo --key fl-round [--module PATH] [--pin-env VAR]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

# Run from a checkout: this checkout's package, installed or not (elsewhere: `pip install tensorguard-pkcs11`).
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "src")
if os.path.isdir(os.path.join(_SRC, "tensorguard_pkcs11")):
    sys.path.insert(0, _SRC)
import tensorguard_pkcs11 as tg  # noqa: E402

SCALE = 2 ** 11
CLIP = 1.0


def quantise(x: np.ndarray, t: int) -> np.ndarray:
    return np.mod(np.rint(np.clip(x, -CLIP, CLIP) * SCALE).astype(np.int64), t)


def dequantise(v: np.ndarray, t: int) -> np.ndarray:
    signed = np.where(v >= t // 2, v - t, v)
    return signed.astype(np.float64) / SCALE


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--token", default="default", help="token label (default: default)")
    p.add_argument("--key", default="fl-round", help="N2HE key label; generated on the token if missing")
    p.add_argument("--module", help="path of libtensorguard-pkcs11.so (default: $TENSORGUARD_PKCS11_MODULE, installed)")
    p.add_argument("--pin-env", default="TG_PKCS11_PIN", help="environment variable holding the user PIN")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--size", type=int, default=4096, help="entries per model update")
    a = p.parse_args()
    if a.clients * SCALE * CLIP >= 2 ** 15:
        p.error(f"{a.clients} clients at scale 2^11 could overflow t = 2^16; use at most 15")

    rng = np.random.default_rng(2026)
    updates = [rng.normal(0.0, 0.2, size=a.size).astype(np.float32) for _ in range(a.clients)]

    try:
        key = tg.PKCS11N2HEEncryptor(a.key, token=a.token, module=a.module, pin_env=a.pin_env,
                                     sdk="tensorguardflow", create=True)
    except tg.TensorGuardPKCS11Error as e:
        print(f"federated round: {e}", file=sys.stderr)
        return 1
    with key:
        t = key.t
        print(f"key '{a.key}' on token '{a.token}': n = {key.n}, q = 2^{key.modulus_bits}, t = 2^{key.plaintext_bits}, "
              f"decryption rule {key.decrypt_rule}")

        # 1. Clients: quantise and encrypt inside the token (in a deployment each client has an encrypt-only key).
        t0 = time.perf_counter()
        ciphertexts = [key.encrypt_batch(quantise(u, t)) for u in updates]
        t1 = time.perf_counter()
        print(f"{a.clients} clients encrypted {a.size} values each: {len(ciphertexts[0]):,} bytes per update (LWE2), "
              f"{1000 * (t1 - t0) / a.clients:.1f} ms per client")

        # 2. Aggregator: no key, no token — numpy only.
        total = tg.add_all(ciphertexts, modulus_bits=key.modulus_bits)
        t2 = time.perf_counter()
        info = tg.formats.parse(total)
        print(f"aggregator summed them without a key: {info.format} of {len(info.seeds)} seeds, {len(total):,} bytes, "
              f"{1000 * (t2 - t1):.1f} ms")

        # 3. Key holder: decrypts the sum only, inside the token (each seed once).
        summed = key.decrypt_batch(total)
        t3 = time.perf_counter()
        print(f"key holder decrypted the sum inside the token: {1000 * (t3 - t2):.1f} ms")
        try:
            key.decrypt_batch(ciphertexts[0])
            print("federated round: FAILED: a single client's update decrypted after the sum spent its seed",
                  file=sys.stderr)
            return 1
        except tg.DecryptionRefusedError:
            print("a single client's update no longer decrypts: the sum spent its seed (seeded-once)")

    exact = np.mod(np.sum([quantise(u, t) for u in updates], axis=0), t)
    if not np.array_equal(summed, exact):
        print("federated round: FAILED: the decrypted sum differs from the sum of the quantised updates", file=sys.stderr)
        return 1
    average = dequantise(summed, t) / a.clients
    plain = np.sum(np.clip(np.stack(updates).astype(np.float64), -CLIP, CLIP), axis=0) / a.clients
    err = np.abs(average - plain)
    bound = 1 / (2 * SCALE)
    print(f"decrypted sum == sum of the quantised updates (mod t): exact")
    print(f"average update vs the plaintext average (clipped to [-1, 1]): max |error| = {err.max():.2e}, mean {err.mean():.2e} "
          f"(quantisation bound {bound:.2e} = 1/(2·S))")
    if err.max() > bound + 1e-9:
        print("federated round: FAILED: error above the quantisation bound", file=sys.stderr)
        return 1
    print("federated round: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
