"""Exceptions of tensorguard_pkcs11. Every error from the token names its CK_RV and says what to do.

Messages never contain a PIN, key bytes or plaintext.
"""
from __future__ import annotations

import re
from typing import Optional

import pkcs11.exceptions as _px

# CK_RV values (PKCS#11 2.40 §11.1) of the errors this package explains; others are named by python-pkcs11's class.
CKR: "dict[str, int]" = {
    "CKR_OK": 0x00, "CKR_HOST_MEMORY": 0x02, "CKR_SLOT_ID_INVALID": 0x03, "CKR_GENERAL_ERROR": 0x05,
    "CKR_FUNCTION_FAILED": 0x06, "CKR_ARGUMENTS_BAD": 0x07, "CKR_ATTRIBUTE_READ_ONLY": 0x10,
    "CKR_ATTRIBUTE_SENSITIVE": 0x11, "CKR_ATTRIBUTE_TYPE_INVALID": 0x12, "CKR_ATTRIBUTE_VALUE_INVALID": 0x13,
    "CKR_DATA_INVALID": 0x20, "CKR_DATA_LEN_RANGE": 0x21, "CKR_DEVICE_ERROR": 0x30, "CKR_DEVICE_MEMORY": 0x31,
    "CKR_DEVICE_REMOVED": 0x32, "CKR_ENCRYPTED_DATA_INVALID": 0x40, "CKR_ENCRYPTED_DATA_LEN_RANGE": 0x41,
    "CKR_FUNCTION_CANCELED": 0x50, "CKR_FUNCTION_NOT_SUPPORTED": 0x54, "CKR_KEY_HANDLE_INVALID": 0x60,
    "CKR_KEY_SIZE_RANGE": 0x62, "CKR_KEY_TYPE_INCONSISTENT": 0x63, "CKR_KEY_FUNCTION_NOT_PERMITTED": 0x68,
    "CKR_MECHANISM_INVALID": 0x70, "CKR_MECHANISM_PARAM_INVALID": 0x71, "CKR_OBJECT_HANDLE_INVALID": 0x82,
    "CKR_OPERATION_ACTIVE": 0x90, "CKR_OPERATION_NOT_INITIALIZED": 0x91, "CKR_PIN_INCORRECT": 0xA0,
    "CKR_PIN_INVALID": 0xA1, "CKR_PIN_LEN_RANGE": 0xA2, "CKR_PIN_EXPIRED": 0xA3, "CKR_PIN_LOCKED": 0xA4,
    "CKR_SESSION_CLOSED": 0xB0, "CKR_SESSION_COUNT": 0xB1, "CKR_SESSION_HANDLE_INVALID": 0xB3,
    "CKR_SESSION_READ_ONLY": 0xB5, "CKR_TEMPLATE_INCOMPLETE": 0xD0, "CKR_TEMPLATE_INCONSISTENT": 0xD1,
    "CKR_TOKEN_NOT_PRESENT": 0xE0, "CKR_TOKEN_NOT_RECOGNIZED": 0xE1, "CKR_TOKEN_WRITE_PROTECTED": 0xE2,
    "CKR_USER_ALREADY_LOGGED_IN": 0x100, "CKR_USER_NOT_LOGGED_IN": 0x101, "CKR_USER_PIN_NOT_INITIALIZED": 0x102,
    "CKR_USER_TYPE_INVALID": 0x103, "CKR_BUFFER_TOO_SMALL": 0x150, "CKR_CRYPTOKI_NOT_INITIALIZED": 0x190,
    "CKR_CRYPTOKI_ALREADY_INITIALIZED": 0x191,
}
_NAME_OF = {v: k for k, v in CKR.items()}
# python-pkcs11 class names whose CKR spelling differs from the CamelCase → UPPER_SNAKE rule.
_CLASS_TO_CKR = {
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "SlotIDInvalid": "CKR_SLOT_ID_INVALID",
}


class TensorGuardPKCS11Error(Exception):
    """Base class. ``rv`` is the CK_RV (an int) when the token answered one, else None; ``rv_name`` its name."""

    def __init__(self, message: str, rv: Optional[int] = None, rv_name: Optional[str] = None) -> None:
        self.rv = rv
        self.rv_name = rv_name or (_NAME_OF.get(rv) if rv is not None else None)
        if self.rv_name and self.rv_name not in message:
            message = f"{message} [{self.rv_name}" + (f" 0x{rv:X}]" if rv is not None else "]")
        super().__init__(message)


class ModuleLoadError(TensorGuardPKCS11Error):
    """The PKCS#11 module was not found or could not be loaded / initialised."""


class TokenNotFoundError(TensorGuardPKCS11Error):
    """No usable token with the requested label."""


class PinError(TensorGuardPKCS11Error):
    """No PIN, a wrong PIN, or a locked PIN."""


class KeyNotFoundError(TensorGuardPKCS11Error):
    """No N2HE key with the requested label (or an ambiguous set of keys)."""


class KeyUsageError(TensorGuardPKCS11Error):
    """The key may not do this: not allowed to encrypt/decrypt, a policy limit reached, or its decryption rule."""


class DecryptionRefusedError(KeyUsageError):
    """The token refused a ciphertext under the key's decryption rule (seeded-once): LWE1 input, or a seed that
    was already decrypted under this key."""


class CiphertextFormatError(TensorGuardPKCS11Error, ValueError):
    """A ciphertext or envelope that is not well formed (found before or by the token)."""


class KeyFileError(TensorGuardPKCS11Error, ValueError):
    """An SDK key file or metadata file that cannot be imported."""


def rv_of(exc: BaseException) -> "tuple[Optional[int], str]":
    """(CK_RV value or None, CKR name) of a python-pkcs11 exception."""
    text = str(exc)
    m = re.search(r"Unmapped error code (0x[0-9a-fA-F]+)", text)
    if m:
        v = int(m.group(1), 16)
        return v, _NAME_OF.get(v, f"CKR_0x{v:X}")
    if "not initialized" in text:
        return CKR["CKR_CRYPTOKI_NOT_INITIALIZED"], "CKR_CRYPTOKI_NOT_INITIALIZED"
    if "already initialized" in text:
        return CKR["CKR_CRYPTOKI_ALREADY_INITIALIZED"], "CKR_CRYPTOKI_ALREADY_INITIALIZED"
    cls = type(exc).__name__
    name = _CLASS_TO_CKR.get(cls) or "CKR_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls).upper()
    return CKR.get(name), name


def translate(exc: BaseException, action: str, *, token: str = "", key: str = "", hint: str = "") -> TensorGuardPKCS11Error:
    """A python-pkcs11 error raised while doing ``action`` as one of ours, with what to do about it."""
    rv, name = rv_of(exc)
    where = f"token '{token}'" if token else "the token"
    cls: type = TensorGuardPKCS11Error
    if isinstance(exc, _px.PinIncorrect):
        cls, advice = PinError, (f"the user PIN for {where} is wrong; check TG_PKCS11_PIN (or the pin argument). "
                                 "Each wrong attempt counts towards the token's max_pin_retries lockout")
    elif isinstance(exc, _px.PinLocked):
        cls, advice = PinError, (f"the user PIN of {where} is locked after too many wrong attempts; the security "
                                 "officer must reset it (C_InitPIN, e.g. pkcs11-tool --init-pin --login-type so)")
    elif isinstance(exc, (_px.PinLenRange, _px.PinInvalid)):
        cls, advice = PinError, "the PIN has an invalid length or characters (4 to 255 bytes)"
    elif isinstance(exc, _px.UserPinNotInitialized):
        cls, advice = PinError, f"{where} has no user PIN yet; initialise it (tg-pkcs11 token init)"
    elif isinstance(exc, _px.UserNotLoggedIn):
        cls, advice = PinError, "the session is not logged in; give the user PIN (pin= or TG_PKCS11_PIN)"
    elif isinstance(exc, _px.TokenNotRecognised):
        cls, advice = TokenNotFoundError, (f"{where} is configured but cannot be used (not initialised, or its store "
                                           "or backend failed: see the module log and `tg-pkcs11 doctor`)")
    elif isinstance(exc, _px.EncryptedDataInvalid):
        cls, advice = CiphertextFormatError, (
            "the token refused the ciphertext: malformed, for another key's n, the wrong layout for the mechanism, "
            "or refused by the key's decryption rule (seeded-once: no LWE1, each seed decrypts once)")
    elif isinstance(exc, _px.EncryptedDataLenRange):
        cls, advice = CiphertextFormatError, "the ciphertext's length does not match its header"
    elif isinstance(exc, (_px.DataLenRange, _px.DataInvalid)):
        cls, advice = CiphertextFormatError, "the token refused the input data"
    elif isinstance(exc, _px.KeyTypeInconsistent):
        cls, advice = KeyUsageError, f"key '{key}' is not an N2HE key (CKK_TG_N2HE)"
    elif isinstance(exc, _px.MechanismInvalid):
        cls, advice = KeyUsageError, ("the token does not offer this N2HE mechanism (its policy.allowed_mechanisms "
                                      "may exclude it)")
    elif name == "CKR_KEY_FUNCTION_NOT_PERMITTED":
        cls, advice = KeyUsageError, (f"key '{key}' may not do this: it is not allowed to (CKA_ENCRYPT/CKA_DECRYPT "
                                      "false, e.g. a rotated generation) or a token policy limit was reached "
                                      "(max_key_uses, max_key_age_days): rotate it with `tg-pkcs11 key rotate`")
    elif isinstance(exc, _px.TemplateInconsistent):
        cls, advice = KeyUsageError, ("the token refused the key's attributes (unsupported parameters, or a token "
                                      "policy such as min_n2he_security_bits or allow_extractable)")
    elif isinstance(exc, _px.AttributeValueInvalid):
        cls, advice = KeyFileError, "the token refused an attribute value (an N2HE key's entries must be -1, 0, 1)"
    elif isinstance(exc, (_px.DeviceError, _px.DeviceRemoved)):
        advice = "the token's store, audit log or key-wrapping backend failed; see the module log"
    elif name == "CKR_CRYPTOKI_NOT_INITIALIZED":
        cls, advice = ModuleLoadError, "the module is not initialised in this process (after fork, re-open)"
    else:
        advice = "see the module log (log.level: info) for the reason"
    msg = f"{action} failed: {advice}"
    if hint:
        msg += f". {hint}"
    err: TensorGuardPKCS11Error = cls(msg, rv, name)
    return err
