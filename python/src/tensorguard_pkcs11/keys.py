"""SDK key files into the token: ``import_sdk_key`` does what ``tg-pkcs11 key import`` does, through PKCS#11."""
from __future__ import annotations

import ast
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pkcs11.exceptions as px
from pkcs11 import Attribute, ObjectClass

from . import constants as C
from ._runtime import KEY_TYPE_N2HE, RUNTIME, VENDOR_ATTRIBUTES, find_module
from .errors import KeyFileError, KeyNotFoundError, translate

DEFAULT_NOISE_MILLI = 5120  # the module's default (σ ≈ 3.2); the SDK's μ = 0.5 is 500


@dataclass(frozen=True)
class KeyParameters:
    n: int
    modulus_bits: int = 32
    plaintext_bits: int = 16


def _log2_exact(v: object, what: str, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 2 or v & (v - 1):
        raise KeyFileError(f"{path}: params.{what} must be a power of two, not {v!r}")
    return v.bit_length() - 1


def load_meta(path: str) -> KeyParameters:
    """TensorGuardFlow's ``<name>.meta.json``: ``{"params": {"n", "q", "t", ...}}``."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise KeyFileError(f"cannot read key metadata {path!r}: {e}") from None
    params = doc.get("params") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        raise KeyFileError(f"{path}: no \"params\" object")
    n = params.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise KeyFileError(f"{path}: params.n must be a positive integer, not {n!r}")
    qb = _log2_exact(params.get("q"), "q", path)
    if qb not in (32, 48):
        raise KeyFileError(f"{path}: q = 2^{qb}; only 2^32 and 2^48 are supported")
    tb = _log2_exact(params.get("t"), "t", path)
    if not 1 <= tb < qb:
        raise KeyFileError(f"{path}: t = 2^{tb} must be below q")
    return KeyParameters(n, qb, tb)


def load_key_bytes(path: str) -> bytearray:
    """The key as the module's CKA_VALUE: 8n bytes of little-endian int64, each -1, 0 or 1. Reads the
    TensorGuard ``.npy`` (int64, shape (n,)) or the raw 8n-byte form; validates like the module does."""
    try:
        with open(path, "rb") as f:
            data = bytearray(f.read())
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path!r}: {e.strerror}") from None
    try:
        if data[:6] == b"\x93NUMPY":
            if len(data) < 10 or data[6] not in (1, 2, 3):
                raise KeyFileError(f"{path}: truncated or unknown .npy header")
            if data[6] == 1:
                hlen, start = int.from_bytes(data[8:10], "little"), 10
            else:
                hlen, start = int.from_bytes(data[8:12], "little"), 12
            try:
                header = ast.literal_eval(bytes(data[start:start + hlen]).decode("latin-1"))
            except (ValueError, SyntaxError):
                raise KeyFileError(f"{path}: unreadable .npy header") from None
            if not isinstance(header, dict) or header.get("descr") != "<i8" or header.get("fortran_order") is not False \
                    or not isinstance(header.get("shape"), tuple) or len(header["shape"]) != 1:
                raise KeyFileError(f"{path}: a key .npy holds int64 '<i8' of shape (n,), got {header!r:.120}")
            n = header["shape"][0]
            body = data[start + hlen:]
            if not isinstance(n, int) or n < 1 or len(body) != 8 * n:
                raise KeyFileError(f"{path}: .npy data is {len(body)} bytes, expected 8·n for shape ({n},)")
            raw = bytearray(body)
            body[:] = b"\0" * len(body)
        else:
            if not data or len(data) % 8:
                raise KeyFileError(f"{path}: a raw key is 8·n bytes of int64; {len(data)} bytes is not")
            raw = bytearray(data)
        values = np.frombuffer(bytes(raw), dtype="<i8")
        if not np.all((values >= -1) & (values <= 1)):
            raw[:] = b"\0" * len(raw)
            raise KeyFileError(f"{path}: key entries must be -1, 0 or 1 (is it an N2HE secret key?)")
        return raw
    finally:
        data[:] = b"\0" * len(data)


def import_sdk_key(path: str, label: str, *, token: str = "default", module: Optional[str] = None,
                   pin: Optional[str] = None, pin_env: str = "TG_PKCS11_PIN", meta: Optional[str] = None,
                   modulus_bits: Optional[int] = None, plaintext_bits: Optional[int] = None,
                   noise_milli: int = DEFAULT_NOISE_MILLI, decrypt_rule: str = "seeded-once",
                   extractable: bool = False, key_id: bytes = b"", decrypt: bool = True, warn: bool = True) -> str:
    """Moves an SDK key file (TensorGuard ``.npy`` or the raw ``.bin`` form) into the token as an N2HE key
    labelled ``label`` (C_CreateObject with CKA_VALUE = 8n bytes), like ``tg-pkcs11 key import``.

    n comes from the file; q and t from ``meta`` (TensorGuardFlow's ``.meta.json``) or ``modulus_bits`` /
    ``plaintext_bits`` (default 32 and 16). ``decrypt_rule`` is ``"seeded-once"`` (default: the key decrypts
    LWE2 and seeded sums only, each seed once) or ``"raw"`` — needed to decrypt the TensorGuard SDK's LWE1 files
    and ``tensorguard`` envelopes, and then **any holder of the user PIN can recover the key** through
    C_Decrypt (docs/n2he.md). The key is private, sensitive and not extractable unless ``extractable``.
    ``decrypt=False`` makes an encrypt-only key (CKA_DECRYPT false): what FL clients should hold, with only the
    aggregator's key decrypting (docs/n2he.md, "Recommended deployment").

    Returns the new key's CKA_UNIQUE_ID. Afterwards delete the key file (a warning says so unless ``warn`` is
    false): while it exists the token is not the key's only home.
    """
    if decrypt_rule not in C.DECRYPT_RULES:
        raise ValueError(f"decrypt_rule must be 'seeded-once' or 'raw', not {decrypt_rule!r}")
    if not label:
        raise ValueError("label must not be empty")
    params = load_meta(meta) if meta else None
    if params and modulus_bits is not None and modulus_bits != params.modulus_bits:
        raise KeyFileError(f"modulus_bits={modulus_bits} contradicts {meta} (q = 2^{params.modulus_bits})")
    if params and plaintext_bits is not None and plaintext_bits != params.plaintext_bits:
        raise KeyFileError(f"plaintext_bits={plaintext_bits} contradicts {meta} (t = 2^{params.plaintext_bits})")
    qb = params.modulus_bits if params else (modulus_bits or 32)
    tb = params.plaintext_bits if params else (plaintext_bits or 16)
    if qb not in (32, 48):
        raise ValueError(f"modulus_bits must be 32 or 48, not {qb!r}")
    raw = load_key_bytes(path)
    try:
        n = len(raw) // 8
        if params and params.n != n:
            raise KeyFileError(f"key file {path!r} holds n = {n} entries but {meta!r} says n = {params.n}")
        mod = find_module(module)
        login = RUNTIME.acquire_login(mod, token, pin if pin is not None else os.environ.get(pin_env))
        generation = RUNTIME.generation
        try:
            with login.lock:
                s = login.session
                if any(True for _ in s.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})):
                    raise KeyFileError(f"a secret key labelled '{label}' already exists on token '{token}'; "
                                       "choose another label")
                template = key_template(label, extractable=extractable, decrypt_rule=decrypt_rule, key_id=key_id)
                template[Attribute.DECRYPT] = bool(decrypt)
                template.update({
                    VENDOR_ATTRIBUTES["CKA_TG_N2HE_DIMENSION"]: n,
                    VENDOR_ATTRIBUTES["CKA_TG_N2HE_MODULUS_BITS"]: qb,
                    VENDOR_ATTRIBUTES["CKA_TG_N2HE_PLAINTEXT_BITS"]: tb,
                    VENDOR_ATTRIBUTES["CKA_TG_N2HE_NOISE_MILLI"]: noise_milli,
                    Attribute.VALUE: bytes(raw),
                })
                try:
                    key = s.create_object(template)
                    uid = str(key[Attribute.UNIQUE_ID])
                except px.PKCS11Error as e:
                    raise translate(e, f"importing {path!r} as '{label}' (C_CreateObject)", token=token, key=label) from None
        finally:
            RUNTIME.release_login(mod, token, login, generation)
    finally:
        raw[:] = b"\0" * len(raw)
    if warn:
        warnings.warn(f"the N2HE key from {path!r} is now on token '{token}' as '{label}'"
                      + (" (decryption rule raw: any PIN holder can recover it)" if decrypt_rule == "raw" else "")
                      + f"; delete {path!r} (and its backups) so the token is its only home", stacklevel=2)
    return uid


def key_template(label: str, *, extractable: bool = False, decrypt_rule: str = "seeded-once",
                 key_id: bytes = b"", token_object: bool = True) -> "dict[Any, Any]":
    """Class, type, storage and usage attributes of a new N2HE key, as tg-pkcs11 sets them (least privilege:
    encrypt and decrypt only)."""
    t = {
        VENDOR_ATTRIBUTES["CKA_TG_N2HE_DECRYPT_RULE"]: C.DECRYPT_RULES[decrypt_rule],
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KEY_TYPE_N2HE,
        Attribute.TOKEN: token_object,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: extractable,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
        Attribute.LABEL: label,
    }
    if key_id:
        t[Attribute.ID] = bytes(key_id)
    return t


__all__ = ["import_sdk_key", "load_key_bytes", "load_meta", "KeyParameters", "KeyNotFoundError"]
