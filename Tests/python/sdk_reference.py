"""numpy reference of the SDK's N2HEEncryptor envelopes (../shared/interop/README.md), on top of the suite's
reference of the scheme, tools/n2he_reference.py (N2HE-SPEC.md §1-§3). Independent of the package under test."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

_REF_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "n2he_reference.py")
_spec = importlib.util.spec_from_file_location("n2he_reference", _REF_PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


class N2HEEncryptor:
    """What the SDK's N2HEEncryptor(key_path).encrypt/decrypt do, with the key in memory (sdk: 'tensorguard'
    writes JSON of LWE1 chunks of 4n entries; 'tensorguardflow' one LWE2 ciphertext)."""

    def __init__(self, key: np.ndarray, sdk: str = "tensorguardflow", modulus_bits: int = 32, mu: float = 0.5,
                 rows_per_block: int = 4096) -> None:
        self.s = np.asarray(key, dtype=np.int64)
        self.n = len(self.s)
        self.sdk = sdk
        self.modulus_bits = modulus_bits
        self.mu = mu
        self.rows_per_block = rows_per_block  # LWE2 rows expanded per block (the SDK does it at once; memory)

    def _pack(self, data: bytes) -> np.ndarray:
        raw = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        padded = max(1, -(-len(raw) // self.n)) * self.n
        out = np.zeros(padded, dtype=np.int64)
        out[:len(raw)] = raw
        return out

    def _encrypt_lwe2(self, m: np.ndarray) -> bytes:
        """LWE2 of all of m under one seed; A expanded block by block (the same stream as expanding at once)."""
        q, t, delta = ref.params(self.modulus_bits)
        seed = os.urandom(32)
        rng_a = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
        rng = np.random.default_rng()
        k = len(m)
        b = np.empty(k, dtype=np.int64)
        for i in range(0, k, self.rows_per_block):
            rows = min(self.rows_per_block, k - i)
            a = rng_a.integers(0, q, size=(rows, self.n), dtype=np.int64)
            e = ref.skellam(rng, self.mu, rows)
            b[i:i + rows] = (a @ self.s + e + delta * (m[i:i + rows] % t)) % q
        return ref.HEADER.pack(b"LWE2", k, self.n, 3) + seed + b.astype("<i8").tobytes()

    def encrypt(self, data: bytes) -> bytes:
        m = self._pack(data)
        if self.sdk == "tensorguardflow":
            if self.modulus_bits == 32 and len(m) <= self.rows_per_block:
                return ref.encrypt(m, self.s, "lwe2", 32, mu=self.mu)
            return self._encrypt_lwe2(m)
        chunks = [ref.encrypt(m[i:i + 4 * self.n], self.s, "lwe1", self.modulus_bits, mu=self.mu).hex()
                  for i in range(0, len(m), 4 * self.n)]
        return json.dumps({"chunks": chunks, "len": len(data)}).encode()

    def decrypt(self, ct: bytes) -> bytes:
        if ct[:1] == b"{":
            doc = json.loads(ct)
            vals = np.concatenate([ref.decrypt(bytes.fromhex(c), self.s, self.modulus_bits) for c in doc["chunks"]])
            return vals[:doc["len"]].astype(np.uint8).tobytes()
        return ref.decrypt(ct, self.s, self.modulus_bits).astype(np.uint8).tobytes()
