"""``PKCS11N2HEEncryptor``: the SDK's ``N2HEEncryptor`` / ``N2HEContext`` with the key in a TensorGuard token."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, Dict, Optional

import numpy as np
import pkcs11.exceptions as px
from pkcs11 import Attribute, ObjectClass
from pkcs11.constants import DEFAULT

from . import constants as C
from . import formats
from ._runtime import MAPPER, MECH_KEY_GEN, MECH_LWE1, MECH_LWE2, KEY_TYPE_N2HE, RUNTIME, VENDOR_ATTRIBUTES, find_module
from .errors import (CiphertextFormatError, DecryptionRefusedError, KeyNotFoundError, KeyUsageError,
                     TensorGuardPKCS11Error, translate)
from .keys import key_template

SDKS = ("tensorguard", "tensorguardflow")
_RULE_NAMES = {v: k for k, v in C.DECRYPT_RULES.items()}
_ROTATION_MAGIC = b"TGR\x01"
_RAW_HINT = ("LWE1 (the TensorGuard SDK's format, also inside 'tensorguard' envelopes) decrypts only under a key "
             "whose decryption rule is raw: import the SDK key with import_sdk_key(..., decrypt_rule='raw') or "
             "`tg-pkcs11 key import --decrypt-rule raw` under another label — and know that any holder of the user "
             "PIN can then recover that key (docs/n2he.md). New data: use sdk='tensorguardflow' (LWE2)")


class _ThreadSession:
    """One PKCS#11 session of one thread and its key objects; closes the session when the thread ends."""

    def __init__(self, owner: "PKCS11N2HEEncryptor", session: Any, enc_key: Any, dec_key: Any) -> None:
        self.owner_id = id(owner)
        self.session = session
        self.enc_key = enc_key
        self.dec_key = dec_key
        self.pid = os.getpid()
        self.generation = RUNTIME.generation
        self._sessions = owner._sessions
        self._lock = owner._lock
        with self._lock:
            self._sessions[id(self)] = session

    def valid(self) -> bool:
        return self.pid == os.getpid() and self.generation == RUNTIME.generation

    def __del__(self) -> None:
        try:
            with self._lock:
                s = self._sessions.pop(id(self), None)
            if s is not None and self.valid():
                s.close()
        except Exception:
            pass


def _generation_of(key_id: bytes) -> Optional["tuple[bytes, int]"]:
    if len(key_id) == 24 and key_id[:4] == _ROTATION_MAGIC:
        g = int.from_bytes(key_id[20:24], "big")
        if g >= 2:
            return key_id[4:20], g
    return None


def _lineage_of_root(unique_id: str) -> bytes:
    return hashlib.sha256(b"TG-N2HE-LINEAGE\x00" + unique_id.encode()).digest()[:16]


class PKCS11N2HEEncryptor:
    """The TensorGuard SDK's ``N2HEEncryptor`` with the N2HE key held by a TensorGuard PKCS#11 token.

    ``PKCS11N2HEEncryptor("fl-2026", token="fl-node")`` replaces ``N2HEEncryptor(key_path="fl-2026.npy")``:

    - finds the module (``module``, then ``$TENSORGUARD_PKCS11_MODULE``, then the installed locations), the token
      by label, logs in with ``pin`` or the environment variable ``pin_env`` (never logged), and finds the N2HE
      key labelled ``key_label`` — the newest active generation if it was rotated (``generation=`` picks the key
      that decrypts; encryption always uses the active one). ``create=True`` generates the key on the token
      with the module's defaults (n = 1024, q = 2^32, t = 2^16) when there is none.
    - ``encrypt``/``decrypt`` read and write the SDK's byte envelopes of ``sdk`` ("tensorguard": JSON of LWE1
      chunks; "tensorguardflow": one LWE2 ciphertext). ``decrypt`` accepts either envelope.
    - ``encrypt_batch``/``decrypt_batch`` are ``N2HEContext``'s vector calls (LWE1 or LWE2, LWE2 by default);
      ``add`` is the homomorphic sum, done here in numpy without the key.

    Thread-safe: each thread gets its own PKCS#11 session. Fork-safe: in a child process the first call
    re-initialises the module and opens new sessions. Use it as a context manager or call :meth:`close`.

    Decryption follows the key's rule (issue 17, docs/n2he.md): under the default ``seeded-once`` a key decrypts
    LWE2 and seeded sums only, each seed once; LWE1 (the TensorGuard SDK's format) needs a key imported with the
    ``raw`` rule.
    """

    def __init__(self, key_label: str, *, token: str = "default", module: Optional[str] = None,
                 pin: Optional[str] = None, pin_env: str = "TG_PKCS11_PIN", sdk: str = "tensorguard",
                 create: bool = False, generation: Optional[int] = None) -> None:
        if sdk not in SDKS:
            raise ValueError(f"sdk must be 'tensorguard' or 'tensorguardflow', not {sdk!r}")
        if not isinstance(key_label, str) or not key_label:
            raise ValueError("key_label must be a non-empty string")
        self.key_label = key_label
        self.token_label = token
        self.sdk = sdk
        self._module = find_module(module)
        self._lock = threading.Lock()
        self._sessions: Dict[int, Any] = {}
        self._local = threading.local()
        self._closed = False
        # The PIN is not logged; a forked child logs in again from the same source (the argument, or the variable).
        self._pin_source = (lambda p=pin: p) if pin is not None else (lambda e=pin_env: os.environ.get(e))
        self._login = RUNTIME.acquire_login(self._module, token, self._pin_source())
        self._login_generation = RUNTIME.generation
        try:
            with self._login.lock:
                self._select_keys(self._login.session, create, generation)
        except BaseException:
            RUNTIME.release_login(self._module, token, self._login, self._login_generation)
            self._closed = True
            raise

    # ------------------------------------------------------------------------------------------- keys
    def _keys_labelled(self, session: Any) -> "list[Dict[str, Any]]":
        out = []
        try:
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: self.key_label}):
                kt = obj[Attribute.KEY_TYPE]
                out.append({"obj": obj, "key_type": int(kt), "id": bytes(obj[Attribute.ID]),
                            "uid": obj[Attribute.UNIQUE_ID], "encrypt": bool(obj[Attribute.ENCRYPT]),
                            "decrypt": bool(obj[Attribute.DECRYPT])})
        except px.PKCS11Error as e:
            raise translate(e, f"looking up key '{self.key_label}'", token=self.token_label, key=self.key_label) from None
        return out

    def _generations(self, keys: "list[Dict[str, Any]]") -> "list[Dict[str, Any]]":
        """The keys labelled key_label as one rotation lineage, oldest first (docs/policies.md, "Key rotation")."""
        rotated, others, lineages = [], [], set()
        for k in keys:
            g = _generation_of(k["id"])
            if g:
                lineages.add(g[0])
                rotated.append(dict(k, generation=g[1]))
            else:
                others.append(dict(k, generation=1))
        where = f"on token '{self.token_label}'"
        if not lineages:
            if len(others) > 1:
                raise KeyNotFoundError(f"{len(others)} N2HE keys are labelled '{self.key_label}' {where} and they are "
                                       "not generations of one rotated key; give each key its own label")
            return others
        if len(lineages) > 1:
            raise KeyNotFoundError(f"the keys labelled '{self.key_label}' {where} belong to {len(lineages)} rotation "
                                   "lineages; relabel them")
        (lineage,) = lineages
        for k in others:
            if not k["uid"] or _lineage_of_root(k["uid"]) != lineage:
                raise KeyNotFoundError(f"a key labelled '{self.key_label}' {where} is not a generation of the rotated "
                                       "key of that label; relabel it")
        allk = sorted(rotated + others, key=lambda k: k["generation"])
        for a, b in zip(allk, allk[1:]):
            if a["generation"] == b["generation"]:
                raise KeyNotFoundError(f"two keys labelled '{self.key_label}' {where} claim generation {a['generation']}")
        return allk

    def _select_keys(self, session: Any, create: bool, generation: Optional[int]) -> None:
        keys = self._keys_labelled(session)
        if not keys and create:
            self._generate(session)
            keys = self._keys_labelled(session)
        if not keys:
            raise KeyNotFoundError(
                f"no secret key labelled '{self.key_label}' on token '{self.token_label}'; generate one "
                "(create=True, or `tg-pkcs11 key generate`) or import the SDK's (import_sdk_key)")
        wrong = [k for k in keys if k["key_type"] != C.CKK_TG_N2HE]
        if wrong:
            raise KeyNotFoundError(f"the secret key labelled '{self.key_label}' on token '{self.token_label}' is not "
                                   "an N2HE key (CKK_TG_N2HE)")
        gens = self._generations(keys)
        active = [k for k in gens if k["encrypt"]]
        self._enc = active[-1] if active else None
        if generation is None:
            self._dec = self._enc or gens[-1]
        else:
            match = [k for k in gens if k["generation"] == generation]
            if not match:
                raise KeyNotFoundError(f"key '{self.key_label}' has no generation {generation} (generations: "
                                       + ", ".join(str(k["generation"]) for k in gens) + ")")
            self._dec = match[0]
        ref = self._dec["obj"]
        try:
            self.n = int(ref[VENDOR_ATTRIBUTES["CKA_TG_N2HE_DIMENSION"]])
            self.modulus_bits = int(ref[VENDOR_ATTRIBUTES["CKA_TG_N2HE_MODULUS_BITS"]])
            self.plaintext_bits = int(ref[VENDOR_ATTRIBUTES["CKA_TG_N2HE_PLAINTEXT_BITS"]])
            rule = int(ref[VENDOR_ATTRIBUTES["CKA_TG_N2HE_DECRYPT_RULE"]])
            self.noise_milli = int(ref[VENDOR_ATTRIBUTES["CKA_TG_N2HE_NOISE_MILLI"]])
        except px.PKCS11Error as e:
            raise translate(e, f"reading the N2HE attributes of '{self.key_label}'", token=self.token_label) from None
        self.decrypt_rule = _RULE_NAMES.get(rule, f"unknown ({rule})")
        self.generation = self._dec["generation"]
        self.active_generation = self._enc["generation"] if self._enc else None
        self._uids = (self._enc["uid"] if self._enc else None, self._dec["uid"])

    def _generate(self, session: Any) -> None:
        template = key_template(self.key_label)
        template[Attribute.VALUE_LEN] = DEFAULT  # python-pkcs11 adds CKA_VALUE_LEN; an N2HE key has none to give
        try:
            session.generate_key(KEY_TYPE_N2HE, 0, label=self.key_label, store=True, capabilities=0,
                                 mechanism=MECH_KEY_GEN, template=template)
        except px.PKCS11Error as e:
            raise translate(e, f"generating N2HE key '{self.key_label}' (C_GenerateKey)", token=self.token_label,
                            key=self.key_label) from None

    # ------------------------------------------------------------------------------------------- sessions
    def _thread(self) -> _ThreadSession:
        if self._closed:
            raise TensorGuardPKCS11Error("this PKCS11N2HEEncryptor is closed")
        RUNTIME.check_fork()
        ts = getattr(self._local, "s", None)
        if isinstance(ts, _ThreadSession) and ts.valid():
            return ts
        if RUNTIME.generation != self._login_generation:
            # A forked child: the parent's login is void here; log in again with the same PIN source.
            err = self._relogin()
            if err:
                raise err
        login = self._login
        try:
            session = login.token.open(rw=False, attribute_mapper=MAPPER)
        except px.PKCS11Error as e:
            raise translate(e, f"C_OpenSession on token '{self.token_label}'", token=self.token_label) from None
        by_uid = {k["uid"]: k["obj"] for k in self._rebind(session)}
        enc_uid, dec_uid = self._uids
        ts = _ThreadSession(self, session, by_uid.get(enc_uid) if enc_uid else None, by_uid.get(dec_uid))
        if ts.dec_key is None:
            raise KeyNotFoundError(f"key '{self.key_label}' disappeared from token '{self.token_label}'")
        self._local.s = ts
        return ts

    def _rebind(self, session: Any) -> "list[Dict[str, Any]]":
        out = []
        try:
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: self.key_label}):
                out.append({"uid": obj[Attribute.UNIQUE_ID], "obj": obj})
        except px.PKCS11Error as e:
            raise translate(e, f"looking up key '{self.key_label}'", token=self.token_label, key=self.key_label) from None
        return out

    def _relogin(self) -> Optional[BaseException]:
        with self._lock:
            if RUNTIME.generation == self._login_generation:
                return None
            pin = self._pin_source()
            if pin is None:
                return TensorGuardPKCS11Error(
                    "this encryptor was opened before fork() and its PIN's environment variable is unset in the "
                    "child: set it, or open a new PKCS11N2HEEncryptor in the child")
            self._login = RUNTIME.acquire_login(self._module, self.token_label, pin)
            self._login_generation = RUNTIME.generation
            self._sessions.clear()
            return None

    # ------------------------------------------------------------------------------------------- vectors
    @property
    def t(self) -> int:
        """The plaintext modulus t = 2^plaintext_bits: values come back in [0, t)."""
        return 1 << self.plaintext_bits

    def _plaintext(self, values: Any) -> bytes:
        arr = np.asarray(values)
        if arr.size == 0:
            raise ValueError("nothing to encrypt: values is empty")
        if arr.dtype == object:
            try:
                flat = [int(v) % self.t for v in arr.reshape(-1).tolist()]
            except (TypeError, ValueError):
                raise TypeError("values must be integers") from None
            arr = np.asarray(flat, dtype=np.int64)
        elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"values must be integers, not {arr.dtype} (quantise floats first)")
        arr = arr.reshape(-1)
        if arr.size == 0:
            raise ValueError("nothing to encrypt: values is empty")
        if arr.dtype == np.uint64:
            arr = (arr % np.uint64(self.t)).astype(np.int64)
        else:
            arr = np.mod(arr.astype(np.int64, copy=False), self.t)
        return arr.astype("<i8", copy=False).tobytes()

    def encrypt_batch(self, values: Any, format: str = "LWE2") -> bytes:
        """Encrypts integers (any integer array-like, reduced mod t with Python semantics) into one ciphertext of
        the SDK's wire format ``format``: "LWE2" (default; seeded, 45 + 8k bytes) or "LWE1" (A in full)."""
        fmt = format.upper() if isinstance(format, str) else format
        if fmt not in formats.FORMATS:
            raise ValueError(f"format must be 'LWE1' or 'LWE2', not {format!r}")
        data = self._plaintext(values)
        ts = self._thread()
        if ts.enc_key is None:
            raise KeyUsageError(f"key '{self.key_label}' on token '{self.token_label}' has no generation that may "
                                "encrypt (all are decrypt-only after rotation): rotate it (tg-pkcs11 key rotate)")
        try:
            return bytes(ts.enc_key.encrypt(data, mechanism=MECH_LWE2 if fmt == "LWE2" else MECH_LWE1))
        except px.PKCS11Error as e:
            raise translate(e, f"C_Encrypt ({fmt}) with key '{self.key_label}'", token=self.token_label,
                            key=self.key_label) from None

    def decrypt_batch(self, ciphertext: bytes) -> np.ndarray:
        """Decrypts one ciphertext (LWE1, LWE2, or a seeded sum LWS1) inside the token; returns int64 in [0, t)."""
        info = formats.parse(ciphertext, self.n)
        if not self._dec["decrypt"]:
            raise KeyUsageError(f"key '{self.key_label}' (generation {self.generation}) on token '{self.token_label}' "
                                "is encrypt-only (CKA_DECRYPT false): decrypt with the aggregator's key")
        if info.format == "LWE1" and self.decrypt_rule != "raw":
            raise DecryptionRefusedError(f"key '{self.key_label}' has the decryption rule {self.decrypt_rule}, "
                                         f"which refuses LWE1 input. {_RAW_HINT}")
        if info.format == "LWS1":
            limit = self.max_seeded_sum_terms()
            if len(info.seeds) > limit:
                raise CiphertextFormatError(f"a seeded sum of {len(info.seeds)} ciphertexts exceeds what key "
                                            f"'{self.key_label}' decrypts exactly ({limit} at these parameters)")
        ts = self._thread()
        try:
            out = ts.dec_key.decrypt(bytes(ciphertext), mechanism=MECH_LWE1 if info.format == "LWE1" else MECH_LWE2)
        except px.EncryptedDataInvalid as e:
            if self.decrypt_rule == "seeded-once":
                raise DecryptionRefusedError(
                    f"C_Decrypt of a well-formed {info.format} refused by key '{self.key_label}' (decryption rule "
                    "seeded-once): a seed in it was already decrypted under this key — each seed decrypts once, "
                    "alone or in one sum — or it is not under this key's parameters", 0x40) from None
            raise translate(e, f"C_Decrypt ({info.format})", token=self.token_label, key=self.key_label) from None
        except px.PKCS11Error as e:
            raise translate(e, f"C_Decrypt ({info.format}) with key '{self.key_label}'", token=self.token_label,
                            key=self.key_label) from None
        return np.frombuffer(out, dtype="<i8").astype(np.int64)

    def max_seeded_sum_terms(self) -> int:
        """How many ciphertexts a seeded sum may hold under this key and still decrypt exactly under smudging
        (docs/n2he.md: 64·2μ·m ≤ (Δ/4)², capped at 65,536), with this key's noise μ (CKA_TG_N2HE_NOISE_MILLI).
        Ciphertexts made elsewhere with a larger μ need a smaller sum."""
        mu = self.noise_milli / 1000.0
        delta = 1 << (self.modulus_bits - self.plaintext_bits)
        if mu <= 0:
            return formats.MAX_SEEDED_SUM_TERMS
        return int(min(formats.MAX_SEEDED_SUM_TERMS, (delta / 4) ** 2 // (64 * 2 * mu)))

    def add(self, ct_a: bytes, ct_b: bytes) -> bytes:
        """Homomorphic sum (no key, no token): a seeded sum LWS1 for two seeded inputs, else LWE1
        (:func:`tensorguard_pkcs11.formats.add`), with this key's modulus."""
        for ct in (ct_a, ct_b):
            formats.parse(ct, self.n)
        return formats.add(ct_a, ct_b, self.modulus_bits)

    # ------------------------------------------------------------------------------------------- bytes
    def encrypt(self, data: bytes) -> bytes:
        """The SDK's ``N2HEEncryptor.encrypt``: one int64 entry per byte, zero-padded to a multiple of n, then
        for ``sdk="tensorguardflow"`` one LWE2 ciphertext (raw bytes), for ``sdk="tensorguard"`` LWE1 chunks of
        4n entries in UTF-8 JSON ``{"chunks": [hex, ...], "len": <bytes>}``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"encrypt takes bytes, not {type(data).__name__}")
        raw = np.frombuffer(bytes(data), dtype=np.uint8)
        padded_len = max(1, -(-len(raw) // self.n)) * self.n
        entries = np.zeros(padded_len, dtype="<i8")
        entries[:len(raw)] = raw
        if self.sdk == "tensorguardflow":
            return self.encrypt_batch(entries, "LWE2")
        chunk = 4 * self.n
        chunks = [self.encrypt_batch(entries[i:i + chunk], "LWE1").hex() for i in range(0, padded_len, chunk)]
        return json.dumps({"chunks": chunks, "len": len(raw)}).encode("utf-8")

    def decrypt(self, ciphertext: bytes) -> bytes:
        """The SDK's ``N2HEEncryptor.decrypt`` for either envelope: a TensorGuard JSON envelope gives exactly its
        ``len`` bytes, a TensorGuardFlow LWE2 envelope the padded bytes (a multiple of n; the caller trims)."""
        if not isinstance(ciphertext, (bytes, bytearray, memoryview)):
            raise TypeError(f"decrypt takes bytes, not {type(ciphertext).__name__}")
        ct = bytes(ciphertext)
        if ct.lstrip()[:1] == b"{":
            return self._decrypt_json(ct)
        if ct[:4] in (formats.LWE1, formats.LWE2, formats.LWS1):
            return self._to_bytes(self.decrypt_batch(ct), "TensorGuardFlow envelope")
        raise CiphertextFormatError("not an N2HEEncryptor envelope: neither TensorGuard JSON ({\"chunks\": ...}) nor "
                                    "a TensorGuardFlow ciphertext (LWE2)")

    def _decrypt_json(self, ct: bytes) -> bytes:
        try:
            doc = json.loads(ct.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CiphertextFormatError(f"TensorGuard envelope is not valid UTF-8 JSON ({type(e).__name__})") from None
        if not isinstance(doc, dict) or set(doc) != {"chunks", "len"}:
            raise CiphertextFormatError("TensorGuard envelope must be a JSON object with exactly \"chunks\" and \"len\"")
        chunks, length = doc["chunks"], doc["len"]
        if not isinstance(chunks, list) or not chunks or not all(isinstance(c, str) for c in chunks):
            raise CiphertextFormatError("TensorGuard envelope: \"chunks\" must be a non-empty list of hex strings")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise CiphertextFormatError("TensorGuard envelope: \"len\" must be a non-negative integer")
        parts = []
        for i, c in enumerate(chunks):
            try:
                blob = bytes.fromhex(c)
            except ValueError:
                raise CiphertextFormatError(f"TensorGuard envelope: chunk {i} is not hex") from None
            try:
                parts.append(self.decrypt_batch(blob))
            except CiphertextFormatError as e:
                raise CiphertextFormatError(f"TensorGuard envelope chunk {i}: {e}", e.rv, e.rv_name) from None
        values = np.concatenate(parts)
        if length > len(values):
            raise CiphertextFormatError(f"TensorGuard envelope says len = {length} but its chunks hold {len(values)} entries")
        return self._to_bytes(values[:length], "TensorGuard envelope")

    def _to_bytes(self, values: np.ndarray, what: str) -> bytes:
        if values.size and (values.min() < 0 or values.max() > 255):
            raise CiphertextFormatError(f"{what} decrypted to entries outside 0..255: it was made under another key "
                                        "(or holds a sum: use decrypt_batch)")
        return values.astype(np.uint8).tobytes()

    # ------------------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Closes this encryptor's sessions; the last encryptor of the token in this process logs out."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions.values())
            self._sessions.clear()
        if os.getpid() == RUNTIME.pid:
            for s in sessions:
                try:
                    s.close()
                except px.PKCS11Error:
                    pass
        RUNTIME.release_login(self._module, self.token_label, self._login, self._login_generation)

    def __enter__(self) -> "PKCS11N2HEEncryptor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed and os.getpid() == RUNTIME.pid:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"<PKCS11N2HEEncryptor key={self.key_label!r} token={self.token_label!r} sdk={self.sdk!r} "
                f"n={getattr(self, 'n', '?')} rule={getattr(self, 'decrypt_rule', '?')}>")
