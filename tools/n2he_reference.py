#!/usr/bin/env python3
"""numpy reference implementation of N2HE as the TensorGuard SDKs implement it (N2HE-SPEC.md §1-§3).

Written from the spec, independent of the Swift library, for interop tests and benchmarks.

  decrypt --key K(.bin|.npy) --ct F --modulus-bits 32|48 [--plaintext-bits 16]     -> JSON list of ints
  encrypt --key K --format lwe1|lwe2 --modulus-bits B [--plaintext-bits 16] [--mu 0.5]
          (--values JSON | --plaintext FILE of 8k LE int64) --out F [--seed HEX] [--noise JSON] [--matrix JSON]
  expand  --seed HEX --k K --n N --modulus-bits B                                   -> JSON {prefix, sha256}
  bench   [--k 4096] [--n 1024] [--repeat 3]                                        -> JSON timings (one thread)
"""
import os

# One thread for every numpy backend, before numpy is imported (the benchmark is single-threaded by contract).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import struct
import sys
import time

import numpy as np

HEADER = struct.Struct("<4sIIB")


def params(modulus_bits, plaintext_bits=16):
    if modulus_bits not in (32, 48):
        raise ValueError("modulus bits must be 32 or 48")
    if not 1 <= plaintext_bits < modulus_bits:
        raise ValueError("plaintext bits out of range")
    q = 1 << modulus_bits
    t = 1 << plaintext_bits
    return q, t, q // t


def load_key(path):
    data = open(path, "rb").read()
    if data[:6] == b"\x93NUMPY":
        import io
        s = np.load(io.BytesIO(data), allow_pickle=False)
    else:
        if len(data) % 8:
            raise ValueError("raw key length is not a multiple of 8")
        s = np.frombuffer(data, dtype="<i8")
    s = np.asarray(s, dtype=np.int64)
    if s.ndim != 1 or not np.all((s >= -1) & (s <= 1)):
        raise ValueError("key entries must be -1, 0, 1")
    return s


def expand_a(seed, k, n, q):
    """LWE2's A: numpy Generator(PCG64(int.from_bytes(seed, 'big'))).integers(0, q, (k, n), int64)."""
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    return rng.integers(0, q, size=(k, n), dtype=np.int64)


def parse(ct, n_expected, q):
    """Returns (A as int64 k x n, B as int64 k). Raises ValueError on malformed input."""
    if len(ct) < HEADER.size:
        raise ValueError("truncated header")
    magic, k, n, flags = HEADER.unpack_from(ct, 0)
    if n != n_expected:
        raise ValueError(f"n mismatch: header {n}, key {n_expected}")
    if k == 0:
        raise ValueError("k = 0")
    batch = flags & 1
    if not batch and k != 1:
        raise ValueError("scalar form with k != 1")
    if magic == b"LWE1":
        if flags & ~1:
            raise ValueError("bad LWE1 flags")
        size = 13 + 8 * k * n + 8 * k
        if len(ct) != size:
            raise ValueError("length mismatch")
        a = np.frombuffer(ct, dtype="<i8", count=k * n, offset=13).reshape(k, n)
        b = np.frombuffer(ct, dtype="<i8", count=k, offset=13 + 8 * k * n)
    elif magic == b"LWE2":
        if not flags & 2 or flags & ~3:
            raise ValueError("bad LWE2 flags")
        if len(ct) != 45 + 8 * k:
            raise ValueError("length mismatch")
        a = expand_a(bytes(ct[13:45]), k, n, q)
        b = np.frombuffer(ct, dtype="<i8", count=k, offset=45)
    else:
        raise ValueError("bad magic")
    # Like the SDK, no range check: values >= q still decrypt correctly because int64 arithmetic wraps mod 2^64
    # and q divides 2^64 (the Swift library reduces such values mod q for the same result).
    return a, b


def decrypt_parts(a, b, s, q, t, delta):
    x = (b - a @ s) % q
    x = np.where(x > q // 2, x - q, x)
    return (np.round(x / delta).astype(np.int64) % t)


def decrypt(ct, s, modulus_bits, plaintext_bits=16):
    q, t, delta = params(modulus_bits, plaintext_bits)
    a, b = parse(ct, len(s), q)
    return decrypt_parts(a, b, s, q, t, delta)


def skellam(rng, mu, k):
    return rng.poisson(mu, k).astype(np.int64) - rng.poisson(mu, k).astype(np.int64)


def encrypt(messages, s, fmt, modulus_bits, plaintext_bits=16, mu=0.5, seed=None, noise=None, matrix=None, rng=None):
    """Returns ciphertext bytes in the SDK layout (batch flag set)."""
    q, t, delta = params(modulus_bits, plaintext_bits)
    rng = rng or np.random.default_rng()
    m = np.asarray(messages, dtype=np.int64) % t
    k, n = len(m), len(s)
    e = np.asarray(noise, dtype=np.int64) if noise is not None else skellam(rng, mu, k)
    if fmt == "lwe1":
        a = np.asarray(matrix, dtype=np.int64).reshape(k, n) if matrix is not None else rng.integers(0, q, size=(k, n), dtype=np.int64)
        b = (a @ s + e + delta * m) % q
        return HEADER.pack(b"LWE1", k, n, 1) + a.astype("<i8").tobytes() + b.astype("<i8").tobytes()
    if fmt == "lwe2":
        seed = seed if seed is not None else os.urandom(32)
        a = expand_a(seed, k, n, q)
        b = (a @ s + e + delta * m) % q
        return HEADER.pack(b"LWE2", k, n, 3) + seed + b.astype("<i8").tobytes()
    raise ValueError("format must be lwe1 or lwe2")


def bench(k, n, repeat):
    q, t, delta = params(32, 16)
    rng = np.random.default_rng(1)
    s = rng.integers(-1, 2, size=n, dtype=np.int64)
    m = rng.integers(0, t, size=k, dtype=np.int64)
    results = {"n": n, "k": k, "modulus_bits": 32, "numpy": np.__version__, "threads": 1}
    for fmt in ("lwe1", "lwe2"):
        best_enc = best_dec = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            ct = encrypt(m, s, fmt, 32, rng=rng)
            t1 = time.perf_counter()
            out = decrypt(ct, s, 32)
            t2 = time.perf_counter()
            if not np.array_equal(out, m):
                raise SystemExit("reference round trip failed")
            best_enc, best_dec = min(best_enc, t1 - t0), min(best_dec, t2 - t1)
        for op, sec in (("encrypt", best_enc), ("decrypt", best_dec)):
            results[f"{fmt}_{op}"] = {
                "seconds": sec,
                "samples_per_second": k / sec,
                "ns_per_entry": sec * 1e9 / (k * n),
            }
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decrypt")
    d.add_argument("--key", required=True)
    d.add_argument("--ct", required=True)
    d.add_argument("--modulus-bits", type=int, required=True)
    d.add_argument("--plaintext-bits", type=int, default=16)
    e = sub.add_parser("encrypt")
    e.add_argument("--key", required=True)
    e.add_argument("--format", choices=("lwe1", "lwe2"), required=True)
    e.add_argument("--modulus-bits", type=int, required=True)
    e.add_argument("--plaintext-bits", type=int, default=16)
    e.add_argument("--mu", type=float, default=0.5)
    e.add_argument("--values")
    e.add_argument("--plaintext")
    e.add_argument("--out", required=True)
    e.add_argument("--seed", help="LWE2 seed, 64 hex digits")
    e.add_argument("--noise", help="JSON list of noise values (known-answer vectors)")
    e.add_argument("--matrix", help="JSON k x n matrix A for LWE1 (known-answer vectors)")
    x = sub.add_parser("expand")
    x.add_argument("--seed", required=True)
    x.add_argument("--k", type=int, default=1)
    x.add_argument("--n", type=int, default=1024)
    x.add_argument("--modulus-bits", type=int, required=True)
    b = sub.add_parser("bench")
    b.add_argument("--k", type=int, default=4096)
    b.add_argument("--n", type=int, default=1024)
    b.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)

    try:
        if a.cmd == "decrypt":
            s = load_key(a.key)
            out = decrypt(open(a.ct, "rb").read(), s, a.modulus_bits, a.plaintext_bits)
            print(json.dumps([int(v) for v in out]))
        elif a.cmd == "encrypt":
            s = load_key(a.key)
            if a.values is not None:
                values = json.loads(a.values)
            elif a.plaintext is not None:
                values = np.frombuffer(open(a.plaintext, "rb").read(), dtype="<i8")
            else:
                raise ValueError("give --values or --plaintext")
            seed = bytes.fromhex(a.seed) if a.seed else None
            if seed is not None and len(seed) != 32:
                raise ValueError("seed must be 32 bytes")
            noise = json.loads(a.noise) if a.noise else None
            matrix = json.loads(a.matrix) if a.matrix else None
            ct = encrypt(values, s, a.format, a.modulus_bits, a.plaintext_bits, a.mu, seed, noise, matrix)
            with open(a.out, "wb") as f:
                f.write(ct)
            print(json.dumps({"bytes": len(ct), "sha256": hashlib.sha256(ct).hexdigest()}))
        elif a.cmd == "expand":
            q, _, _ = params(a.modulus_bits)
            m = expand_a(bytes.fromhex(a.seed), a.k, a.n, q)
            print(json.dumps({"prefix": [int(v) for v in m.reshape(-1)[:4]],
                              "sha256": hashlib.sha256(m.astype("<i8").tobytes()).hexdigest()}))
        elif a.cmd == "bench":
            print(json.dumps(bench(a.k, a.n, a.repeat), indent=1))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
