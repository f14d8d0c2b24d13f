"""tensorguard_pkcs11 — the TensorGuard SDK's N2HE encryptor with the key in a TensorGuard PKCS#11 token.

    from tensorguard_pkcs11 import PKCS11N2HEEncryptor
    enc = PKCS11N2HEEncryptor("fl-2026", token="fl-node", sdk="tensorguardflow")
    ct = enc.encrypt(b"...")            # inside the token (C_Encrypt)
    total = enc.add(ct_a, ct_b)         # no key: a seeded sum
    values = enc.decrypt_batch(total)   # inside the token (C_Decrypt), once per seed

See docs/python.md in the repository.
"""
from ._version import __version__
from . import constants, formats
from ._runtime import find_module, installed_module_locations
from .encryptor import PKCS11N2HEEncryptor
from .errors import (CiphertextFormatError, DecryptionRefusedError, KeyFileError, KeyNotFoundError, KeyUsageError,
                     ModuleLoadError, PinError, TensorGuardPKCS11Error, TokenNotFoundError)
from .formats import add, add_all
from .keys import import_sdk_key

__all__ = [
    "__version__", "PKCS11N2HEEncryptor", "import_sdk_key", "add", "add_all", "find_module",
    "installed_module_locations", "constants", "formats",
    "TensorGuardPKCS11Error", "ModuleLoadError", "TokenNotFoundError", "PinError", "KeyNotFoundError",
    "KeyUsageError", "DecryptionRefusedError", "CiphertextFormatError", "KeyFileError",
]
