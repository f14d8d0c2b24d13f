# Suite: PyKCS11's own upstream tests, from its PyPI source distribution (sourced by run.sh).
#
# The sdist of exactly the installed PyKCS11 version is downloaded once into out/cache/ (--no-binary for PyKCS11
# only: its build requirements come as wheels); only its test/ directory is used (copied alone, so `import
# PyKCS11` is the installed, compiled package). The files run unmodified with pytest against the module named by
# PYKCS11LIB, the variable upstream's run_test.py uses. Upstream hard-codes the PINs (user 1234, SO 123456) and
# uses the first slot with a token, so the fresh token is made with those. pykcs11/conftest.py is copied next to
# the tests: PyKCS11 reads libraryVersion as SoftHSM's version to skip tests, and for a module that is not SoftHSM
# it reports 99.0 so that those guards do not skip (see the file). Tests in not-applicable.txt are deselected for
# our module and each run says how many.

suite_pykcs11() {
  suite_begin pykcs11
  local W="$WORK/pykcs11" PY="${PYTHON:-python3}"
  token_env "$W"
  local LBL="conf-pykcs11" UP_PIN=1234 UP_SO_PIN=123456 LOGD; LOGD="$(log_dir_for "$SUITE")"
  local ver sdist cache="$ROOT/out/cache"

  _pk_fetch() {
    ver="$("$PY" -c 'import importlib.metadata as m; print(m.version("PyKCS11"))')" || { echo "PyKCS11 not installed for $PY (make deps)"; return 1; }
    sdist="$(ls "$cache"/[Pp]y[Kk][Cc][Ss]11-"$ver".tar.gz 2>/dev/null | head -1)"
    if [ -z "$sdist" ]; then
      mkdir -p "$cache"
      "$PY" -m pip download -q --no-deps --no-binary PyKCS11 "PyKCS11==$ver" -d "$cache" || return 1
      sdist="$(ls "$cache"/[Pp]y[Kk][Cc][Ss]11-"$ver".tar.gz 2>/dev/null | head -1)"
    fi
    [ -s "$sdist" ] || { echo "sdist PyKCS11-$ver.tar.gz not found in $cache"; ls -la "$cache"; return 1; }
    local top; top="$(tar -tzf "$sdist" | head -1 | cut -d/ -f1)"
    mkdir -p "$W/upstream"
    tar -xzf "$sdist" -C "$W/upstream" "$top/test" || return 1
    mv "$W/upstream/$top/test" "$W/test"
    ls "$W"/test/test_*.py >/dev/null || { echo "no test/test_*.py in $(basename "$sdist")"; return 1; }
    cp "$HERE/pykcs11/conftest.py" "$W/test/conftest.py"
    echo "PyKCS11 $ver: $(ls "$W"/test/test_*.py | wc -l) test files from $(basename "$sdist")"
  }
  check "PyKCS11 sdist tests fetched (version = installed)" _pk_fetch
  [ -d "$W/test" ] || { suite_end; return 0; }
  check "token initialised (upstream's PINs)" token_init "$LBL" "$UP_SO_PIN" "$UP_PIN"

  local junit="$LOGD/junit.xml" out="$LOGD/pytest.log" rc=0 sel deselect=()
  while read -r sel; do [ -n "$sel" ] && deselect+=(--deselect "$sel"); done < <(not_applicable pykcs11)
  [ "$MODULE_KIND" = softhsm ] || echo "  note  pykcs11: SoftHSM version guards see libraryVersion 99.0 (pkcs11-conformance/pykcs11/conftest.py)"
  ( cd "$W" && PYKCS11LIB="$MODULE" timeout "${PYKCS11_TIMEOUT:-300}" \
      "$PY" -m pytest -p no:cacheprovider -q -rfEs --junitxml="$junit" "${deselect[@]}" test ) >"$out" 2>&1 </dev/null || rc=$?
  # Counts from pytest's own summary line ("81 passed, 11 skipped, 13 subtests passed in 7.4s"): a test counts
  # once, whatever its subtests did; a failed subtest without a failed test still counts one failure.
  local counts
  counts="$("$PY" - "$out" <<'PYEOF'
import re, sys
lines = [l for l in open(sys.argv[1], errors="replace") if re.search(r"\d+ (passed|failed|skipped|errors?|deselected)\b.* in [\d.]+s", l)]
c = {}
for n, what in re.findall(r"(\d+) ((?:subtests )?(?:passed|failed|skipped|errors?|deselected|xfailed|xpassed))", lines[-1] if lines else ""):
    c[what] = c.get(what, 0) + int(n)
failed = c.get("failed", 0) + c.get("error", 0) + c.get("errors", 0) + c.get("xpassed", 0)
if failed == 0 and c.get("subtests failed", 0):
    failed = 1
passed, skipped = c.get("passed", 0), c.get("skipped", 0) + c.get("xfailed", 0)
print(passed, failed, skipped, passed + failed + skipped, c.get("deselected", 0))
PYEOF
)"
  local passed failed skipped total deselected; read -r passed failed skipped total deselected <<<"$counts"
  echo "  pykcs11: passed=$passed failed=$failed skipped=$skipped deselected=$deselected (pytest exit $rc)" >>"$out"
  if ((${#deselect[@]})); then
    echo "  note  pykcs11: $deselected upstream tests not applicable, deselected ($(( ${#deselect[@]} / 2 )) entries in pkcs11-conformance/not-applicable.txt: RSA/EC/GOST, derivation, AES-CTR, SoftHSM identity, duplicate attribute, wrapping-key rule)"
  fi
  # pytest ran nothing (crash, import error, timeout): count it as one failure so it cannot pass silently.
  if [ "$total" = 0 ] || { [ "$rc" != 0 ] && [ "$failed" = 0 ]; }; then
    failed=$((failed + 1)); echo "  FAIL  pykcs11: pytest exit $rc with $total tests recorded (log: ${out#"$ROOT"/})"
    tail -n 60 "$out" | sed 's/^/    | /'; show_module_log
  elif [ "$failed" != 0 ]; then
    echo "  FAIL  pykcs11: $failed failing upstream tests (log: ${out#"$ROOT"/})"
    grep -E "^(FAILED|ERROR) " "$out" | sed 's/^/    | /'
    grep -B2 -A25 -m 3 -E "^_{5,} .* _{5,}$" "$out" | head -n 120 | sed 's/^/    | /'
    show_module_log
  fi
  if [ "${VERBOSE:-0}" = 1 ]; then grep -E "^SKIPPED" "$out" | sed "s/^/  skip  /" || true; fi
  count_result "$passed" "$failed" "$skipped"
  suite_end
}
