#!/usr/bin/env bash
# Install what building, the demo, the tests and the benchmarks need. Idempotent and quiet:
# it only touches what is missing, and says so on one line each. Safe to run on every `make`.
#
#   Debian packages  — apt-get update + install, only for packages `dpkg -s` says are missing
#   Python (default) — python-pkcs11, pykcs11, pytest, numpy for python3 (pyenv 3.11), and this repository's
#                      package tensorguard-pkcs11 (python/) installed editable, so it is always this tree's
#   Python 3.12 venv — .venv-check/ holding pkcs11-check (needs Python >= 3.12)
#
# Env: PYTHON (default python3), PYTHON312 (default: pyenv's 3.12.1, else python3.12 on PATH),
#      CHECK_VENV (default <repo>/.venv-check).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CHECK_VENV="${CHECK_VENV:-$ROOT/.venv-check}"

say()  { echo "deps: $*"; }
die()  { echo "deps: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- Debian packages
APT_PACKAGES=(
  libssl-dev libsqlite3-dev libp11-kit-dev libcurl4-openssl-dev   # Swift system-library targets
  libyaml-dev                                                     # CYAML: the configuration file
  libpq-dev libpq5                                                # CLibPQ: libpq's header; libpq.so.5 (dlopen'ed)
  postgresql                                                      # PostgreSQL store tests: initdb, pg_ctl, postgres
  opensc softhsm2 gnutls-bin p11-kit                              # pkcs11-tool, SoftHSM2, p11tool, p11-kit + proxy
  sqlite3 pkg-config                                              # store inspection, build
  gcc make                                                        # bench/p11bench.c
  libnss3-tools                                                   # conformance nss: certutil, modutil, symkeyutil
  default-jdk-headless                                            # conformance java: java, javac, keytool (SunPKCS11)
  p11-kit-modules                                                 # conformance p11-kit-rpc: p11-kit-client.so (+ proxy)
  dpkg-dev help2man binutils                                      # make deb: dpkg-deb, dpkg-shlibdeps, man page, strip
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} by hand"
    SUDO="sudo"
  fi
  log="$(mktemp)"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2; die "apt-get update failed"
  fi
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2; die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$log"
fi

# Paths the scripts rely on, checked once here so failures are clear.
for f in /usr/lib/softhsm/libsofthsm2.so /usr/include/p11-kit-1/p11-kit/pkcs11.h \
         /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so /usr/include/postgresql/libpq-fe.h; do
  [ -e "$f" ] || die "$f missing although its package is installed"
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || die "no /usr/lib/postgresql/*/bin/initdb although postgresql is installed"
for t in pkcs11-tool softhsm2-util p11tool p11-kit certutil modutil symkeyutil java javac keytool; do
  command -v "$t" >/dev/null || die "$t not on PATH"
done

# ---------------------------------------------------------------- Python (default interpreter)
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
# import name : pip requirement
PY_PACKAGES=(
  "pkcs11:python-pkcs11>=0.10,<0.11"
  "PyKCS11:pykcs11"
  "asn1crypto:asn1crypto"   # imported by PyKCS11's upstream EC tests (conformance pykcs11 collects them)
  "pytest:pytest"
  "numpy:numpy"
  # Test servers of the cloud key-wrapping backends (Tests/servers): moto for aws-kms, the fakes' TLS material,
  # and the official clients the fakes' contract tests (make check) speak to them with.
  "moto:moto[server]"
  "flask:flask"
  "boto3:boto3"
  "cryptography:cryptography"
  "google.cloud.kms:google-cloud-kms"
  "azure.keyvault.keys:azure-keyvault-keys"
  "azure.identity:azure-identity"
)
pip_missing=()
for entry in "${PY_PACKAGES[@]}"; do
  mod="${entry%%:*}" req="${entry#*:}"
  "$PYTHON" -c "import $mod" >/dev/null 2>&1 || pip_missing+=("$req")
done
if ((${#pip_missing[@]})); then
  say "pip installing for $("$PYTHON" -c 'import sys; print(sys.executable)'): ${pip_missing[*]}"
  log="$(mktemp)"
  if ! "$PYTHON" -m pip install -q "${pip_missing[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2; die "pip install ${pip_missing[*]} failed"
  fi
  rm -f "$log"
fi

# The repository's own Python package (python/, docs/python.md): `pip install -e`, so examples and users of this
# checkout import this tree's code; reinstalled when the installed one is not this tree (another clone, or a
# plain `pip install ./python` copy). Its requirements (python-pkcs11, numpy) are installed above.
if ! "$PYTHON" - "$ROOT/python/src" <<'PYEOF' >/dev/null 2>&1
import os, sys, tensorguard_pkcs11 as t
sys.exit(0 if os.path.realpath(os.path.dirname(t.__file__)).startswith(os.path.realpath(sys.argv[1]) + os.sep) else 1)
PYEOF
then
  say "pip installing the tensorguard-pkcs11 Python package (editable, $ROOT/python)"
  log="$(mktemp)"
  # --no-deps: its requirements are the pip packages above; PIP_BREAK_SYSTEM_PACKAGES lets a Debian python3
  # (PEP 668) take it as well (the default python3 here is pyenv's, which needs no flag).
  # Not fatal: the tests and examples/federated_round.py use the tree's python/src directly; only users of
  # `import tensorguard_pkcs11` from elsewhere need the install.
  if ! PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q --no-deps -e "$ROOT/python" >"$log" 2>&1; then
    tail -n 20 "$log" >&2; say "WARNING: pip install -e python/ failed (the tests do not need it; see above)"
  fi
  rm -f "$log"
fi

# ---------------------------------------------------------------- Python 3.12 venv for pkcs11-check
if [ ! -x "$CHECK_VENV/bin/pkcs11-check" ]; then
  PY312="${PYTHON312:-}"
  if [ -z "$PY312" ]; then
    for c in /root/.pyenv/versions/3.12.*/bin/python3 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3 \
             "$(command -v python3.12 || true)"; do
      if [ -n "$c" ] && [ -x "$c" ]; then PY312="$c"; break; fi
    done
  fi
  [ -n "$PY312" ] && [ -x "$PY312" ] || die "no Python 3.12 found for pkcs11-check (set PYTHON312=/path/to/python3.12)"
  say "creating $CHECK_VENV (pkcs11-check on $("$PY312" --version 2>&1))"
  log="$(mktemp)"
  rm -rf "$CHECK_VENV"
  if ! { "$PY312" -m venv "$CHECK_VENV" && "$CHECK_VENV/bin/python" -m pip install -q pkcs11-check; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2; rm -rf "$CHECK_VENV"; die "creating the pkcs11-check venv failed"
  fi
  rm -f "$log"
fi

exit 0
