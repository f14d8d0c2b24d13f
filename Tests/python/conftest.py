"""Fixtures of the Python package's tests: the built module, tg-pkcs11, the SDK fixtures, and a pool of fresh
tokens in a throwaway configuration (the approach of pkcs11-conformance/lib.sh: TENSORGUARD_PKCS11_CONF names a
config in a temp dir; C_InitToken + C_InitPIN through `tg-pkcs11 token init`).

Env: TENSORGUARD_PKCS11_MODULE (default .build/release/libtensorguard-pkcs11.so), TG_PKCS11_CLI (default
tg-pkcs11 beside the module), TG_INTEROP_DIR (default ../shared/interop from the repository root).
Nothing is skipped: a missing module, CLI or fixture directory fails the tests that need it.

The PINs below are test values for throwaway tokens."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python", "src"))  # the package under test: this tree, installed or not
sys.path.insert(0, os.path.dirname(__file__))

MODULE = os.path.abspath(os.environ.get("TENSORGUARD_PKCS11_MODULE")
                         or os.path.join(REPO, ".build", "release", "libtensorguard-pkcs11.so"))
CLI = os.path.abspath(os.environ.get("TG_PKCS11_CLI") or os.path.join(os.path.dirname(MODULE), "tg-pkcs11"))
INTEROP = os.path.abspath(os.environ.get("TG_INTEROP_DIR") or os.path.join(REPO, "..", "shared", "interop"))
SO_PIN = "87654321"   # test value
USER_PIN = "123456"   # test value
POOL_SIZE = 24
LOCK_RETRIES = 3      # max_pin_retries of the token the lockout test locks
LIMITED_USES = 3      # policy max_key_uses of the token 'limited'


def _require(path: str, what: str, how: str) -> None:
    if not os.path.exists(path):
        pytest.fail(f"{what} missing: {path} ({how})", pytrace=False)


class TokenPool:
    """POOL_SIZE configured tokens t0..t{N-1}, 'locktest' (max_pin_retries 3), 'limited' (policy max_key_uses 3)
    and 'blank' (never initialised)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tg-python-tests.")
        os.chmod(self.dir, 0o700)
        self.names = [f"t{i}" for i in range(POOL_SIZE)]
        lines = ["# throwaway configuration of Tests/python (conftest.py)", "log:", "  level: error",
                 f"  file: {self.dir}/module.log", "audit:", f"  file: {self.dir}/audit.log", "tokens:"]
        for name in self.names + ["locktest", "limited", "blank"]:
            lines += [f"  - name: {name}", f"    store: {self.dir}/{name}", "    backend:", "      kind: local",
                      f"    max_pin_retries: {LOCK_RETRIES if name == 'locktest' else 10}", "    pin_kdf_cost: 10"]
            if name == "limited":
                lines.append(f"    policy: {{ max_key_uses: {LIMITED_USES} }}")
        self.config = os.path.join(self.dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config, 0o600)
        self._next = itertools.count()
        self.slots = {name: i for i, name in enumerate(self.names + ["locktest", "limited", "blank"])}

    def env(self) -> dict:
        return dict(os.environ, TENSORGUARD_PKCS11_CONF=self.config, TENSORGUARD_PKCS11_MODULE=MODULE,
                    TG_TEST_SO_PIN=SO_PIN, TG_PKCS11_PIN=USER_PIN)

    def init(self, name: str) -> None:
        r = subprocess.run([CLI, "token", "init", "--module", MODULE, "--slot", str(self.slots[name]), "--label", name,
                            "--so-pin-env", "TG_TEST_SO_PIN", "--pin-env", "TG_PKCS11_PIN"],
                           env=self.env(), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            pytest.fail(f"tg-pkcs11 token init {name} failed: {r.stdout}{r.stderr}", pytrace=False)

    def fresh(self) -> str:
        i = next(self._next)
        if i >= POOL_SIZE:
            pytest.fail(f"token pool exhausted (POOL_SIZE = {POOL_SIZE} in conftest.py)", pytrace=False)
        return self.names[i]


_POOL = None


@pytest.fixture(scope="session")
def pool():
    global _POOL
    _require(MODULE, "the built module", "make build, or set TENSORGUARD_PKCS11_MODULE")
    _require(CLI, "tg-pkcs11", "make build, or set TG_PKCS11_CLI")
    if _POOL is None:
        _POOL = TokenPool()
        # Before the first C_Initialize in this process: the module reads its configuration there.
        os.environ.update(TENSORGUARD_PKCS11_CONF=_POOL.config, TENSORGUARD_PKCS11_MODULE=MODULE,
                          TG_PKCS11_PIN=USER_PIN)
        for name in _POOL.names + ["locktest", "limited"]:
            _POOL.init(name)
    yield _POOL


def pytest_sessionfinish(session, exitstatus):
    if _POOL is not None and exitstatus == 0:
        shutil.rmtree(_POOL.dir, ignore_errors=True)


@pytest.fixture
def token(pool) -> str:
    """A token no other test used: its seed ledgers are empty."""
    return pool.fresh()


@pytest.fixture(scope="session")
def interop() -> str:
    _require(INTEROP, "the SDK fixtures (../shared/interop)", "clone shared/ beside the repository or set TG_INTEROP_DIR")
    return INTEROP


@pytest.fixture(scope="session")
def sdk_key(interop) -> np.ndarray:
    import sdk_reference
    return sdk_reference.ref.load_key(os.path.join(interop, "sdk-key-1.npy"))


@pytest.fixture(scope="session")
def cases(interop) -> list:
    with open(os.path.join(interop, "sdk-key-1.cases.json")) as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="session")
def envelope_cases(interop) -> list:
    with open(os.path.join(interop, "sdk-key-1.envelopes.json")) as f:
        return json.load(f)["cases"]


def import_sdk(interop: str, token: str, label: str, *, rule: str = "seeded-once", modulus_bits: int = 32) -> None:
    import tensorguard_pkcs11 as tg
    tg.import_sdk_key(os.path.join(interop, "sdk-key-1.npy"), label, token=token, decrypt_rule=rule,
                      modulus_bits=modulus_bits, warn=False)


def run_child(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Runs Python code in a fresh interpreter with the test environment (for cases that could crash one)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "python", "src"), os.path.dirname(__file__)]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
