# Shared helpers for the conformance suites (sourced by run.sh; not executable on its own).
#
# Module handling:   MODULE_KIND = ours | softhsm | other ; MODULE = absolute path of the .so
# Token handling:    token_env DIR   — fresh, empty token environment under DIR (exports the env the module reads)
#                    token_init LABEL SO_PIN PIN — initialise slot index 0 of that environment
# Checks:            check NAME CMD...  — one pass/fail unit; output goes to its own log, printed on failure
#                    count_result SUITE PASSED FAILED [SKIPPED] — add a runner's own counts (pytest, pkcs11-check)

SOFTHSM_MODULE="${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
P11KIT_PROXY="${P11KIT_PROXY:-/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so}"

# Demo values for conformance tokens (test-only tokens in temp dirs).
SO_PIN="${SO_PIN:-87654321}"
USER_PIN="${USER_PIN:-123456}"

SUITE=""            # current suite name, set by suite_begin
SUITE_PASSED=0 SUITE_FAILED=0 SUITE_SKIPPED=0
TOTAL_PASSED=0 TOTAL_FAILED=0 TOTAL_SKIPPED=0
SUMMARY_LINES=()
CHECK_NO=0
CLEANUP_PIDS=()     # background processes a suite started (servers); run.sh's exit trap stops those still running

log_dir_for() { echo "$LOGROOT/$1"; }

suite_begin() {
  SUITE="$1"; SUITE_PASSED=0; SUITE_FAILED=0; SUITE_SKIPPED=0; CHECK_NO=0
  mkdir -p "$(log_dir_for "$SUITE")"
  [ "${VERBOSE:-0}" = 1 ] && echo "== $SUITE"
  return 0
}

suite_end() {
  local line="$SUITE: $SUITE_PASSED passed, $SUITE_FAILED failed"
  ((SUITE_SKIPPED)) && line+=", $SUITE_SKIPPED skipped"
  echo "$line"
  SUMMARY_LINES+=("$line")
  TOTAL_PASSED=$((TOTAL_PASSED + SUITE_PASSED))
  TOTAL_FAILED=$((TOTAL_FAILED + SUITE_FAILED))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + SUITE_SKIPPED))
}

# Print the tail of the module's own log (ours writes one per token environment) after a failure.
show_module_log() {
  local f="${CURRENT_MODULE_LOG:-}"
  if [ -n "$f" ] && [ -s "$f" ]; then
    echo "    --- module log ($f, last 20 lines) ---"
    tail -n 20 "$f" | sed 's/^/    | /'
  fi
}

# check NAME CMD [ARGS...] — run CMD (a command or shell function) with all output in a log file.
# Passes when CMD exits 0. On failure the log is printed (last 60 lines), indented.
check() {
  local name="$1"; shift
  CHECK_NO=$((CHECK_NO + 1))
  local slug; slug="$(printf '%02d-%s' "$CHECK_NO" "$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_' | sed 's/_*$//')")"
  local log; log="$(log_dir_for "$SUITE")/$slug.log"
  local rc=0
  { echo "# $SUITE / $name"; echo "# module: $MODULE"; } >"$log"
  ( set +e; set -o pipefail; "$@" ) >>"$log" 2>&1 </dev/null || rc=$?
  if [ "$rc" = 0 ]; then
    SUITE_PASSED=$((SUITE_PASSED + 1))
    [ "${VERBOSE:-0}" = 1 ] && echo "  ok    $name"
  else
    SUITE_FAILED=$((SUITE_FAILED + 1))
    echo "  FAIL  $SUITE: $name (exit $rc; log: ${log#"$ROOT"/})"
    tail -n 60 "$log" | sed 's/^/    | /'
    show_module_log
  fi
  return 0
}

# Helpers usable inside check commands.
expect_fail() { if "$@"; then echo "expected failure, got success: $*"; return 1; fi; return 0; }
expect_grep() { local pat="$1" file="$2"; grep -q -- "$pat" "$file" || { echo "expected /$pat/ in $file:"; cat "$file"; return 1; }; }
run_to() { local out="$1"; shift; echo "+ $*"; "$@" >"$out" 2>&1; local rc=$?; cat "$out"; return $rc; }
# expect_aes_key FILE LABEL — FILE (pkcs11-tool -O output) lists an AES-256 secret key object labelled LABEL.
expect_aes_key() {
  awk -v l="$2" '/^[^ \t].*[Oo]bject/ { aes = ($0 ~ /^Secret Key Object; AES length 32$/) }
                 aes && $1 == "label:" && $2 == l { found = 1 } END { exit !found }' "$1" ||
    { echo "no AES-256 secret key labelled $2 in $1:"; cat "$1"; return 1; }
}
same_files() { cmp "$1" "$2" || { echo "files differ: $1 $2"; xxd "$1" | head -5; xxd "$2" | head -5; return 1; }; }

count_result() {  # SUITE-level counts taken from another runner's summary
  SUITE_PASSED=$((SUITE_PASSED + ${1:-0}))
  SUITE_FAILED=$((SUITE_FAILED + ${2:-0}))
  SUITE_SKIPPED=$((SUITE_SKIPPED + ${3:-0}))
}

# not_applicable SUITE — selectors of pkcs11-conformance/not-applicable.txt for SUITE, one per line; empty unless the
# module under test is ours (those tests assert mechanisms only other tokens offer; see the file's header).
not_applicable() {
  [ "$MODULE_KIND" = ours ] || return 0
  awk -v s="$1" '$1 == s { print $2 }' "$ROOT/pkcs11-conformance/not-applicable.txt"
}

# ---------------------------------------------------------------- token environments
# token_env DIR — make DIR a fresh, empty environment for one token and export what the module reads.
#                TOKEN_POLICY (ours only), e.g. '{ allow_mixed_key_roles: true }', becomes the token's policy.
token_env() {
  local dir="$1"
  rm -rf "$dir"; mkdir -p "$dir"
  case "$MODULE_KIND" in
    ours)
      mkdir -p "$dir/store"
      cat >"$dir/config.yaml" <<EOF
# TensorGuard PKCS#11 — conformance test token (throwaway, created by pkcs11-conformance/run.sh)
log:
  level: ${TG_LOG_LEVEL:-error}
  file: $dir/module.log
audit:
  file: $dir/audit.log
tokens:
  - name: conformance
    store: $dir/store
    backend:
      kind: local
    max_pin_retries: 10
    pin_kdf_cost: 10
${TOKEN_POLICY:+    policy: $TOKEN_POLICY}
EOF
      chmod 600 "$dir/config.yaml"
      export TENSORGUARD_PKCS11_CONF="$dir/config.yaml"
      CURRENT_MODULE_LOG="$dir/module.log"
      ;;
    softhsm)
      mkdir -p "$dir/tokens"
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" >"$dir/softhsm2.conf"
      export SOFTHSM2_CONF="$dir/softhsm2.conf"
      CURRENT_MODULE_LOG=""
      ;;
    *) CURRENT_MODULE_LOG="" ;;   # another module: whatever token it has
  esac
}

# token_init LABEL SO_PIN PIN — initialise the first slot of the current environment and set the user PIN.
token_init() {
  local label="$1" so="$2" pin="$3"
  if [ "$MODULE_KIND" = softhsm ]; then
    softhsm2-util --init-token --free --label "$label" --so-pin "$so" --pin "$pin" >/dev/null
  else
    pkcs11-tool --module "$MODULE" --slot-index 0 --init-token --label "$label" --so-pin "$so" >/dev/null &&
    pkcs11-tool --module "$MODULE" --token-label "$label" --login --login-type so --so-pin "$so" \
      --init-pin --pin "$pin" >/dev/null
  fi
}
