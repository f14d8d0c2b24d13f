#!/usr/bin/env bash
# Conformance: drive a built PKCS#11 module with tools nobody here wrote (DESIGN §7).
#
#   pkcs11-conformance/run.sh [--module ours|softhsm|/path/to/module.so] [--suite NAME]... [-v] [--keep]
#
# Suites (default: all, in this order):
#   pkcs11-tool    OpenSC pkcs11-tool: info/list, token + PIN admin, keygen, objects, wrap/unwrap, crypto, --test*
#   p11-kit        make install into a temp PREFIX, p11-kit list-modules, the p11-kit proxy, p11tool --list-all
#   python-pkcs11  python-pkcs11's own upstream tests (from its PyPI sdist) for sessions, slots and tokens,
#                  threading, iterators, attributes
#   pkcs11-check   pkcs11-check (PyPI) test suite; every non-skipped test must pass
#   nss            NSS tools: modutil -add/-list/-changepw, certutil -L/-K with login, symkeyutil AES key on the token
#   java           Java SunPKCS11: keytool -list -storetype PKCS11, a token AES key + AES/GCM round trip (java/)
#   p11-kit-rpc    p11-kit server on a unix socket + p11-kit-client.so: list, login, keygen, AES, HMAC remotely
#   pykcs11        PyKCS11's own upstream tests (from its PyPI sdist)
#   fresh-account  the module from a clean environment: zero-config default store (HOME / XDG_DATA_HOME created
#                  0700), unwritable data dir as nobody, read-only bind mount, a file in the way, a store shared via
#                  a symlink: -L exits 0, unusable tokens "not recognized", the others init + login at once
#
# Every suite gets a fresh token in a fresh temp directory (for ours: a config.yaml + store, found through
# TENSORGUARD_PKCS11_CONF; for SoftHSM2: a SOFTHSM2_CONF + token dir, token made with softhsm2-util).
# Prints one summary line per suite and finally `conformance: N passed, M failed`; exits 1 on any failure.
# Logs: out/conformance/<module>/<suite>/ (one file per check; failing checks are also printed).
# Env: VERBOSE=1 (= -v), PKCS11_CHECK_ARGS (default --skip-slow), PKCS11_CHECK_TIMEOUT, PKCS11_CHECK_STRICT_XFAIL=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/pkcs11-conformance"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# The whole run is one function, so that editing this file while a run is going cannot derail that run.
main() {
  MODULE_ARG="ours"
  SUITES=()
  KEEP=0
  VERBOSE="${VERBOSE:-0}"
  while (($#)); do
    case "$1" in
      --module) MODULE_ARG="$2"; shift 2 ;;
      --module=*) MODULE_ARG="${1#*=}"; shift ;;
      --suite) SUITES+=("$2"); shift 2 ;;
      --suite=*) SUITES+=("${1#*=}"); shift ;;
      -v|--verbose) VERBOSE=1; shift ;;
      --keep) KEEP=1; shift ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
  done
  ((${#SUITES[@]})) || SUITES=(pkcs11-tool p11-kit python-pkcs11 pkcs11-check nss java p11-kit-rpc pykcs11 fresh-account)

  case "$MODULE_ARG" in
    ours)    MODULE_KIND=ours;    MODULE="$ROOT/.build/release/libtensorguard-pkcs11.so" ;;
    softhsm) MODULE_KIND=softhsm; MODULE="$SOFTHSM_MODULE" ;;
    *)
      MODULE="$(readlink -f "$MODULE_ARG")"
      case "$MODULE" in
        *libtensorguard-pkcs11.so) MODULE_KIND=ours ;;
        *libsofthsm2.so) MODULE_KIND=softhsm ;;
        *) MODULE_KIND=other ;;
      esac ;;
  esac
  export MODULE MODULE_KIND VERBOSE
  [ -f "$MODULE" ] || { echo "conformance: module not found: $MODULE (run 'make build' first)"; echo "conformance: 0 passed, 1 failed"; exit 1; }

  TAG="$MODULE_KIND"; [ "$MODULE_KIND" = other ] && TAG="$(basename "$MODULE" .so)"
  LOGROOT="$ROOT/out/conformance/$TAG"
  mkdir -p "$ROOT/out/conformance"
  # Several people may run this at once in one tree: the first holds out/conformance/<module>/, others get their own.
  exec 9>"$ROOT/out/conformance/.$TAG.lock"
  if ! flock -n 9; then LOGROOT="$LOGROOT-$$"; fi
  rm -rf "$LOGROOT"; mkdir -p "$LOGROOT"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/tg-conformance.XXXXXX")"
  cleanup() {
    local p; for p in "${CLEANUP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done   # servers a suite started
    if [ "$KEEP" = 1 ]; then echo "conformance: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  }
  trap cleanup EXIT
  # Keep tools from reading the invoking user's PKCS#11 / module configuration.
  export HOME="$WORK/home"; mkdir -p "$HOME"
  export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
  unset TENSORGUARD_PKCS11_CONF TENSORGUARD_PKCS11_LOG SOFTHSM2_CONF || true

  echo "conformance: module $MODULE ($MODULE_KIND); logs in ${LOGROOT#"$ROOT"/}/"

  for s in "${SUITES[@]}"; do
    case "$s" in
      pkcs11-tool)   . "$HERE/suite-pkcs11-tool.sh";   suite_pkcs11_tool ;;
      p11-kit)       . "$HERE/suite-p11-kit.sh";       suite_p11_kit ;;
      python-pkcs11) . "$HERE/suite-python-pkcs11.sh"; suite_python_pkcs11 ;;
      pkcs11-check)  . "$HERE/suite-pkcs11-check.sh";  suite_pkcs11_check ;;
      nss)           . "$HERE/suite-nss.sh";           suite_nss ;;
      java)          . "$HERE/suite-java.sh";          suite_java ;;
      p11-kit-rpc)   . "$HERE/suite-p11-kit-rpc.sh";   suite_p11_kit_rpc ;;
      pykcs11)       . "$HERE/suite-pykcs11.sh";       suite_pykcs11 ;;
      fresh-account) . "$HERE/suite-fresh-account.sh"; suite_fresh_account ;;
      *) echo "run.sh: unknown suite $s" >&2; exit 2 ;;
    esac
  done

  {
    echo "# conformance summary ($MODULE)"
    printf '%s\n' "${SUMMARY_LINES[@]}"
    echo "conformance: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
  } >"$LOGROOT/summary.txt"
  ((${#SUITES[@]} > 1)) && { echo "---"; printf '%s\n' "${SUMMARY_LINES[@]}"; }
  echo "conformance: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
  if ((TOTAL_FAILED)); then exit 1; fi
  if ((TOTAL_PASSED == 0)); then echo "conformance: no check ran" >&2; exit 1; fi
  exit 0
}

main "$@"
