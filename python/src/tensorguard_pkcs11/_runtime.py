"""The process-wide side of the package: finding and loading the module, fork detection, one login per token.

PKCS#11 login state belongs to the application (the process), not to a session: the first session of a
token logs in and every other session of the process shares that login, and a C_Logout on any of them logs
all of them out. So the package keeps one login per (module, token) with a reference count; encryptors open
their per-thread sessions without a PIN and the last one to close logs out.

After ``fork()`` the module answers CKR_CRYPTOKI_NOT_INITIALIZED in the child (docs/abi.md, "Fork"): the first
call in the child finalises python-pkcs11's view of the library, initialises it again and forgets every login
and session the parent had (they belong to the parent's module instance).
"""
from __future__ import annotations

import os
import sys
import sysconfig
import threading
from typing import Any, Dict, Optional, Tuple

import pkcs11
import pkcs11.exceptions as px
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.attributes import AttributeMapper, handle_ulong

from . import constants as C
from .errors import ModuleLoadError, PinError, TokenNotFoundError, translate

MODULE_NAME = "libtensorguard-pkcs11.so"
MODULE_ENV = "TENSORGUARD_PKCS11_MODULE"
CLI_MODULE_ENV = "TG_PKCS11_MODULE"  # what tg-pkcs11 reads; honoured second


def installed_module_locations() -> "list[str]":
    """Where ``make install`` (``$PREFIX/lib/pkcs11``) and ``make deb`` (``/usr/lib/<triplet>/pkcs11``, with a
    link in ``/usr/lib/pkcs11``) put the module, in the order they are tried."""
    triplet = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    dirs = [f"/usr/lib/{triplet}/pkcs11", "/usr/lib/pkcs11", "/usr/local/lib/pkcs11", "/usr/lib64/pkcs11",
            os.path.join(sys.prefix, "lib", "pkcs11")]
    seen: "list[str]" = []
    for d in dirs:
        p = os.path.join(d, MODULE_NAME)
        if p not in seen:
            seen.append(p)
    return seen


def find_module(module: Optional[str] = None) -> str:
    """The module's path: the argument, then $TENSORGUARD_PKCS11_MODULE, then $TG_PKCS11_MODULE, then the
    installed locations (:func:`installed_module_locations`). Raises :class:`ModuleLoadError` naming what was
    tried."""
    for source, value in (("module argument", module), (MODULE_ENV, os.environ.get(MODULE_ENV)),
                          (CLI_MODULE_ENV, os.environ.get(CLI_MODULE_ENV))):
        if value:
            if not os.path.isfile(value):
                raise ModuleLoadError(f"PKCS#11 module {value!r} (from {source}) does not exist; build it "
                                      "(make build) or install it (make install / the .deb)")
            return os.path.realpath(value)
    tried = installed_module_locations()
    for p in tried:
        if os.path.isfile(p):
            return os.path.realpath(p)
    raise ModuleLoadError(
        f"TensorGuard PKCS#11 module not found: no module argument, ${MODULE_ENV} unset, and none of "
        + ", ".join(tried) + " exists. Install the module (make install PREFIX=/usr/local, or the .deb) or set "
        + f"{MODULE_ENV}=/path/to/{MODULE_NAME}")


def vendor_member(enum_cls: Any, value: int, name: str) -> Any:
    """An instance of a python-pkcs11 IntEnum for a vendor value it does not know (python-pkcs11 insists on
    ``isinstance(mechanism, Mechanism)`` and ``isinstance(key_type, KeyType)``). Not registered in the enum:
    python-pkcs11's own tables stay untouched."""
    try:
        return enum_cls(value)
    except ValueError:
        obj = int.__new__(enum_cls, value)
        obj._name_ = name
        obj._value_ = value
        return obj


MECH_KEY_GEN = vendor_member(Mechanism, C.CKM_TG_N2HE_KEY_GEN, "TG_N2HE_KEY_GEN")
MECH_LWE1 = vendor_member(Mechanism, C.CKM_TG_N2HE_LWE1, "TG_N2HE_LWE1")
MECH_LWE2 = vendor_member(Mechanism, C.CKM_TG_N2HE_LWE2, "TG_N2HE_LWE2")
KEY_TYPE_N2HE = vendor_member(KeyType, C.CKK_TG_N2HE, "TG_N2HE")
VENDOR_ATTRIBUTES = {name: vendor_member(Attribute, value, name[4:]) for name, value in C.HEADER_VALUES.items()
                     if name.startswith("CKA_TG_")}


def _unpack_key_type(raw: bytes) -> Any:
    v = handle_ulong[1](raw)
    try:
        return KeyType(v)
    except ValueError:
        return KEY_TYPE_N2HE if v == C.CKK_TG_N2HE else v


def make_mapper() -> AttributeMapper:
    """python-pkcs11's attribute mapper plus the vendor attributes (CK_ULONG) and vendor key types."""
    m = AttributeMapper()
    for attr in VENDOR_ATTRIBUTES.values():
        m.register_handler(attr, *handle_ulong)
    m.register_handler(Attribute.KEY_TYPE, lambda v: handle_ulong[0](int(v)), _unpack_key_type)
    return m


MAPPER = make_mapper()


class _Login:
    """One login of this process on one token, shared by every encryptor of it."""

    def __init__(self, token: Any, session: Any) -> None:
        self.token = token
        self.session = session  # read-write, logged in; also used (under lock) for key creation and import
        self.refs = 0
        self.lock = threading.RLock()


class Runtime:
    """Process-wide state; one instance (RUNTIME)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.generation = 0  # bumped in a forked child: every session and login of the parent is void
        self.libs: Dict[str, Any] = {}
        self.logins: Dict[Tuple[str, str], _Login] = {}

    def check_fork(self) -> None:
        if os.getpid() == self.pid:
            return
        with self.lock:  # a fresh lock in the child (after_fork_in_child below)
            if os.getpid() == self.pid:
                return
            self.pid = os.getpid()
            self.generation += 1
            self.logins.clear()
            for lib in self.libs.values():
                try:
                    lib.finalize()  # CKR_CRYPTOKI_NOT_INITIALIZED in the child; clears python-pkcs11's flag
                except px.PKCS11Error:
                    pass
                try:
                    lib.initialize()
                except px.PKCS11Error as e:
                    raise translate(e, "C_Initialize in the forked child") from None

    def after_fork_in_child(self) -> None:
        # A parent thread may have held the lock at fork(): the child starts with a fresh one.
        self.lock = threading.RLock()

    def lib(self, path: str) -> Any:
        self.check_fork()
        with self.lock:
            lib = self.libs.get(path)
            if lib is None:
                try:
                    lib = pkcs11.lib(path)
                except px.PKCS11Error as e:
                    text = str(e)
                    if "loading" in text:
                        raise ModuleLoadError(f"cannot load PKCS#11 module {path!r}: {text}") from None
                    err = translate(e, f"C_Initialize of {path}")
                    raise ModuleLoadError(
                        f"{err}. The module reads its configuration at C_Initialize: check "
                        "$TENSORGUARD_PKCS11_CONF (docs/config.md; the file must not be group/world writable) "
                        "and the module log", err.rv, err.rv_name) from None
                self.libs[path] = lib
            return lib

    def find_token(self, path: str, label: str) -> Any:
        lib = self.lib(path)
        unusable = []
        labels = []
        try:
            slots = lib.get_slots(token_present=True)
        except px.PKCS11Error as e:
            raise translate(e, "C_GetSlotList") from None
        for slot in slots:
            try:
                tok = slot.get_token()
            except px.PKCS11Error:
                unusable.append(slot.slot_description.strip())
                continue
            labels.append(tok.label)
            if tok.label == label:
                return tok
        hint = ""
        if label in unusable:
            hint = f" A slot named '{label}' has a token that cannot be used (see the module log, tg-pkcs11 doctor)."
        elif any(not lbl for lbl in labels):
            hint = (" An uninitialised token is present: initialise it with `tg-pkcs11 token init --slot N "
                    f"--label {label}`.")
        raise TokenNotFoundError(
            f"no token labelled '{label}' (tokens: {', '.join(repr(lbl) for lbl in labels if lbl) or 'none'}).{hint}")

    def acquire_login(self, path: str, label: str, pin: Optional[str]) -> _Login:
        """The process's login on this token, made now with ``pin`` if there is none; counted."""
        self.check_fork()
        with self.lock:
            key = (path, label)
            login = self.logins.get(key)
            if login is None:
                tok = self.find_token(path, label)
                if pin is None:
                    raise PinError(f"no user PIN for token '{label}': pass pin= or set the environment variable "
                                   "named by pin_env (default TG_PKCS11_PIN)")
                try:
                    session = tok.open(rw=True, user_pin=pin, attribute_mapper=MAPPER)
                except px.UserAlreadyLoggedIn:
                    # Logged in by other code of this process (raw python-pkcs11): share it, do not log it out.
                    session = tok.open(rw=True, attribute_mapper=MAPPER)
                except px.PKCS11Error as e:
                    raise translate(e, f"C_Login on token '{label}'", token=label) from None
                login = _Login(tok, session)
                self.logins[key] = login
            login.refs += 1
            return login

    def release_login(self, path: str, label: str, login: _Login, generation: int) -> None:
        with self.lock:
            if generation != self.generation or os.getpid() != self.pid:
                return  # the parent's login: nothing to close in this process
            login.refs -= 1
            if login.refs <= 0 and self.logins.get((path, label)) is login:
                del self.logins[(path, label)]
                try:
                    login.session.close()  # C_Logout (if it logged in) + C_CloseSession
                except px.PKCS11Error:
                    pass


RUNTIME = Runtime()
os.register_at_fork(after_in_child=RUNTIME.after_fork_in_child)
