"""The SDK's ciphertext wire formats (N2HE-SPEC.md §2) and this project's seeded sum (docs/n2he.md, LWS1).

Everything here is plain numpy on bytes: no key, no token. It is what an aggregator needs (:func:`add`) and
what the encryptor uses to check input before it reaches the token.

- LWE1: ``"LWE1" k:u32 n:u32 flags:u8`` then A (k·n int64) and B (k int64).
- LWE2: ``"LWE2" k n flags`` (bit 1 = seeded must be set) then a 32-byte seed and B.
- LWS1: ``"LWS1" k n flags m:u32`` then m seeds of 32 bytes and B = Σ B_j mod q.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import CiphertextFormatError

HEADER = struct.Struct("<4sIIB")
LWE1, LWE2, LWS1 = b"LWE1", b"LWE2", b"LWS1"
FORMATS = ("LWE1", "LWE2")
#: The largest seeded sum the module reads (docs/n2he.md); smaller limits follow from the key's parameters.
MAX_SEEDED_SUM_TERMS = 65536
SEED_BYTES = 32


@dataclass(frozen=True)
class CiphertextInfo:
    """What a ciphertext's header says, after its length was checked."""

    format: str  # "LWE1", "LWE2" or "LWS1"
    k: int
    n: int
    batch: bool
    seeds: "tuple[bytes, ...]"  # the LWE2 seed or the LWS1 seeds; empty for LWE1
    b_offset: int


def parse(ct: bytes, n_expected: Optional[int] = None) -> CiphertextInfo:
    """Checks a ciphertext's layout (magic, flags, k, n, exact length) and returns its header fields.

    Raises :class:`CiphertextFormatError` naming the defect. ``n_expected`` (the key's n) is compared with the
    header's n, as the module does (the SDK's own reader ignores it).
    """
    if not isinstance(ct, (bytes, bytearray, memoryview)):
        raise CiphertextFormatError(f"a ciphertext is bytes, not {type(ct).__name__}")
    ct = bytes(ct)
    if len(ct) < HEADER.size:
        raise CiphertextFormatError(f"ciphertext of {len(ct)} bytes is shorter than the 13-byte header")
    magic, k, n, flags = HEADER.unpack_from(ct, 0)
    if magic not in (LWE1, LWE2, LWS1):
        raise CiphertextFormatError(f"unknown ciphertext magic {magic!r} (expected LWE1, LWE2 or LWS1)")
    name = magic.decode()
    if k == 0:
        raise CiphertextFormatError(f"{name} ciphertext with k = 0 messages")
    if n == 0:
        raise CiphertextFormatError(f"{name} ciphertext with n = 0")
    if n_expected is not None and n != n_expected:
        raise CiphertextFormatError(
            f"{name} ciphertext is for n = {n} but the key has n = {n_expected}: it was made under another key")
    batch = bool(flags & 1)
    if not batch and k != 1:
        raise CiphertextFormatError(f"{name} scalar form (flag bit 0 clear) with k = {k} (must be 1)")
    if magic == LWE1:
        if flags & ~1:
            raise CiphertextFormatError(f"LWE1 flags 0x{flags:02x} have unknown bits")
        size = 13 + 8 * k * n + 8 * k
        if len(ct) != size:
            raise CiphertextFormatError(f"LWE1 with k = {k}, n = {n} is {size} bytes, got {len(ct)}")
        return CiphertextInfo("LWE1", k, n, batch, (), 13 + 8 * k * n)
    if not flags & 2 or flags & ~3:
        raise CiphertextFormatError(f"{name} flags 0x{flags:02x}: the seeded bit must be set and no other unknown bit")
    if magic == LWE2:
        size = 45 + 8 * k
        if len(ct) != size:
            raise CiphertextFormatError(f"LWE2 with k = {k} is {size} bytes, got {len(ct)}")
        return CiphertextInfo("LWE2", k, n, batch, (ct[13:45],), 45)
    if len(ct) < 17:
        raise CiphertextFormatError(f"LWS1 of {len(ct)} bytes is shorter than its 17-byte header")
    (m,) = struct.unpack_from("<I", ct, 13)
    if not 1 <= m <= MAX_SEEDED_SUM_TERMS:
        raise CiphertextFormatError(f"LWS1 with {m} seeds (1 to {MAX_SEEDED_SUM_TERMS})")
    size = 17 + 32 * m + 8 * k
    if len(ct) != size:
        raise CiphertextFormatError(f"LWS1 with k = {k}, m = {m} is {size} bytes, got {len(ct)}")
    seeds = tuple(ct[17 + 32 * j: 49 + 32 * j] for j in range(m))
    return CiphertextInfo("LWS1", k, n, batch, seeds, 17 + 32 * m)


def b_values(ct: bytes, info: CiphertextInfo) -> np.ndarray:
    """B of a parsed ciphertext as uint64."""
    return np.frombuffer(ct, dtype="<u8", count=info.k, offset=info.b_offset).astype(np.uint64)


def expand_a(seed: bytes, k: int, n: int, modulus_bits: int) -> np.ndarray:
    """LWE2's A from its seed, as the SDK makes it (N2HE-SPEC §3): numpy PCG64, row-major, values in [0, q)."""
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    return rng.integers(0, 1 << modulus_bits, size=(k, n), dtype=np.int64).astype(np.uint64)


def matrix(ct: bytes, info: CiphertextInfo, modulus_bits: int) -> np.ndarray:
    """A of any ciphertext as uint64 k×n, reduced mod q (LWE2/LWS1: expanded from the seeds)."""
    mask = np.uint64((1 << modulus_bits) - 1)
    if info.format == "LWE1":
        a = np.frombuffer(ct, dtype="<u8", count=info.k * info.n, offset=13).reshape(info.k, info.n)
        return a & mask
    a = np.zeros((info.k, info.n), dtype=np.uint64)
    for seed in info.seeds:
        a += expand_a(seed, info.k, info.n, modulus_bits)  # uint64 wraps mod 2^64; q divides 2^64
    return a & mask


def write_lwe1(a: np.ndarray, b: np.ndarray, batch: bool = True) -> bytes:
    k, n = a.shape
    return HEADER.pack(LWE1, k, n, 1 if batch else 0) + a.astype("<u8").tobytes() + b.astype("<u8").tobytes()


def write_lws1(seeds: "list[bytes]", b: np.ndarray, n: int, batch: bool = True) -> bytes:
    if not 1 <= len(seeds) <= MAX_SEEDED_SUM_TERMS:
        raise CiphertextFormatError(f"a seeded sum holds 1 to {MAX_SEEDED_SUM_TERMS} ciphertexts, not {len(seeds)}")
    k = len(b)
    return (HEADER.pack(LWS1, k, n, 3 if batch else 2) + struct.pack("<I", len(seeds)) + b"".join(seeds)
            + np.asarray(b, dtype="<u8").tobytes())


def add(ct_a: bytes, ct_b: bytes, modulus_bits: int = 32) -> bytes:
    """Homomorphic sum of two ciphertexts of the same k and n; needs no key.

    Two seeded inputs (LWE2 or LWS1) give a seeded sum LWS1 (their seeds in order and B = B₁ + B₂ mod q), which a
    ``seeded-once`` key decrypts — once, and only if no seed appears twice (so adding a ciphertext to itself, or
    two sums sharing an update, is refused here). Any LWE1 input gives LWE1 (A₁ + A₂, B₁ + B₂), as the SDK
    writes sums; such a sum decrypts only under a ``raw`` key. The result is batch unless both inputs are scalar.
    ``modulus_bits`` is the key's log2 q (32 or 48; not in the header).
    """
    if modulus_bits not in (32, 48):
        raise ValueError(f"modulus_bits must be 32 or 48, not {modulus_bits!r}")
    ia, ib = parse(ct_a), parse(ct_b)
    if ia.n != ib.n:
        raise CiphertextFormatError(f"cannot add ciphertexts of n = {ia.n} and n = {ib.n} (different keys)")
    if ia.k != ib.k:
        raise CiphertextFormatError(f"cannot add ciphertexts of k = {ia.k} and k = {ib.k} messages")
    mask = np.uint64((1 << modulus_bits) - 1)
    b = (b_values(bytes(ct_a), ia) + b_values(bytes(ct_b), ib)) & mask
    batch = ia.batch or ib.batch
    if ia.seeds and ib.seeds:
        seeds = list(ia.seeds) + list(ib.seeds)
        if len(set(seeds)) != len(seeds):
            raise CiphertextFormatError(
                "the two ciphertexts share a seed (the same update added twice): a seeded-once key would refuse "
                "the sum; add each update once")
        return write_lws1(seeds, b, ia.n, batch)
    a = (matrix(bytes(ct_a), ia, modulus_bits) + matrix(bytes(ct_b), ib, modulus_bits)) & mask
    return write_lwe1(a, b, batch)


def add_all(ciphertexts: "list[bytes]", modulus_bits: int = 32) -> bytes:
    """The sum of one or more ciphertexts (see :func:`add`), written once: a list of seeded ciphertexts gives one
    LWS1 without rewriting the growing seed list at each step."""
    cts = [bytes(c) for c in ciphertexts]
    if not cts:
        raise ValueError("add_all needs at least one ciphertext")
    infos = [parse(c) for c in cts]
    if all(i.seeds for i in infos) and len(cts) > 1:
        first = infos[0]
        for i in infos[1:]:
            if (i.n, i.k) != (first.n, first.k):
                raise CiphertextFormatError(
                    f"cannot add ciphertexts of (k, n) = ({first.k}, {first.n}) and ({i.k}, {i.n})")
        mask = np.uint64((1 << modulus_bits) - 1)
        b = np.zeros(first.k, dtype=np.uint64)
        seeds: "list[bytes]" = []
        for c, i in zip(cts, infos):
            b = (b + b_values(c, i)) & mask
            seeds.extend(i.seeds)
        if len(set(seeds)) != len(seeds):
            raise CiphertextFormatError("two of the ciphertexts share a seed (an update added twice)")
        return write_lws1(seeds, b, first.n, any(i.batch for i in infos))
    total = cts[0]
    for c in cts[1:]:
        total = add(total, c, modulus_bits)
    return total
