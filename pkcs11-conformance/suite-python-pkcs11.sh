# Suite: python-pkcs11's own upstream tests, from its PyPI source distribution (sourced by run.sh).
#
# The sdist of exactly the installed python-pkcs11 version is downloaded once into out/cache/; only its tests/
# directory is used (copied alone, so `import pkcs11` resolves to the installed, compiled package). The
# selected files run unmodified via pytest; skips come only from the suite's own decorators.

PYPKCS11_FILES=(test_sessions.py test_slots_and_tokens.py test_threading.py test_iterators.py test_attributes.py)

suite_python_pkcs11() {
  suite_begin python-pkcs11
  local W="$WORK/python-pkcs11" PY="${PYTHON:-python3}"
  token_env "$W"
  local LBL="conf-pypkcs11" LOGD; LOGD="$(log_dir_for "$SUITE")"
  local ver sdist cache="$ROOT/out/cache"

  _pp_fetch() {
    ver="$("$PY" -c 'import importlib.metadata as m; print(m.version("python-pkcs11"))')" || { echo "python-pkcs11 not installed for $PY (make deps)"; return 1; }
    sdist="$cache/python_pkcs11-$ver.tar.gz"
    if [ ! -s "$sdist" ]; then
      mkdir -p "$cache"
      # --no-binary for this package only: its build requirements (setuptools, cython) may come as wheels.
      "$PY" -m pip download -q --no-deps --no-binary python-pkcs11 "python-pkcs11==$ver" -d "$cache" || return 1
    fi
    [ -s "$sdist" ] || { echo "sdist not found at $sdist"; ls -la "$cache"; return 1; }
    mkdir -p "$W/upstream"
    tar -xzf "$sdist" -C "$W/upstream" "python_pkcs11-$ver/tests" || return 1
    mv "$W/upstream/python_pkcs11-$ver/tests" "$W/tests"
    local f; for f in "${PYPKCS11_FILES[@]}"; do [ -f "$W/tests/$f" ] || { echo "upstream tests/$f missing in $ver"; return 1; }; done
    echo "python-pkcs11 $ver: tests from $(basename "$sdist")"
  }
  check "python-pkcs11 sdist tests fetched (version = installed)" _pp_fetch
  [ -d "$W/tests" ] || { suite_end; return 0; }
  check "token initialised" token_init "$LBL" "$SO_PIN" "$USER_PIN"

  local sel deselect=() legacy=()
  while read -r sel; do [ -n "$sel" ] && deselect+=(--deselect "$sel"); done < <(not_applicable python-pkcs11)
  if ((${#deselect[@]})); then
    echo "  note  python-pkcs11: $(( ${#deselect[@]} / 2 )) upstream tests not applicable (RSA/EC; pkcs11-conformance/not-applicable.txt)"
  fi
  while read -r sel; do [ -n "$sel" ] && { deselect+=(--deselect "$sel"); legacy+=("$sel"); }; done < <(not_applicable python-pkcs11-mixed-roles)
  _pp_run python-pkcs11 "$W" "$LBL" "${deselect[@]}" "${PYPKCS11_FILES[@]/#/tests/}"
  if ((${#legacy[@]})); then
    # Refused by the separated-key-roles rule under the default configuration (not-applicable.txt says why):
    # run them again on a fresh token with the legacy policy, so that they keep counting.
    echo "  note  python-pkcs11: ${#legacy[@]} upstream tests ask mixed key roles; run on a token with allow_mixed_key_roles: true"
    local WL="$WORK/python-pkcs11-legacy"
    TOKEN_POLICY='{ allow_mixed_key_roles: true }' token_env "$WL"
    cp -r "$W/tests" "$WL/tests"
    check "token with policy allow_mixed_key_roles initialised" token_init "$LBL" "$SO_PIN" "$USER_PIN"
    _pp_run python-pkcs11-mixed-roles "$WL" "$LBL" "${legacy[@]}"
  fi
  suite_end
}

# _pp_run NAME DIR LABEL PYTEST-ARGS... — runs pytest in DIR against the current token environment and counts.
_pp_run() {
  local name="$1" dir="$2" lbl="$3"; shift 3
  local PY="${PYTHON:-python3}" LOGD; LOGD="$(log_dir_for "$SUITE")"
  local junit="$LOGD/junit-$name.xml" out="$LOGD/pytest-$name.log" rc=0
  ( cd "$dir" && PKCS11_MODULE="$MODULE" PKCS11_TOKEN_LABEL="$lbl" PKCS11_TOKEN_PIN="$USER_PIN" \
      PKCS11_TOKEN_SO_PIN="$SO_PIN" timeout "${PYPKCS11_TIMEOUT:-900}" \
      "$PY" -m pytest -p no:cacheprovider -q -rfEs --junitxml="$junit" "$@" ) >"$out" 2>&1 </dev/null || rc=$?
  local counts
  counts="$("$PY" - "$junit" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k, t)
EOF
)"
  local passed failed skipped total; read -r passed failed skipped total <<<"$counts"
  # pytest ran nothing (crash, import error, timeout): count it as one failure so it cannot pass silently.
  if [ "$total" = 0 ] || { [ "$rc" != 0 ] && [ "$failed" = 0 ]; }; then
    failed=$((failed + 1)); echo "  FAIL  $name: pytest exit $rc with $total tests recorded (log: ${out#"$ROOT"/})"
    tail -n 60 "$out" | sed 's/^/    | /'; show_module_log
  elif [ "$failed" != 0 ]; then
    echo "  FAIL  $name: $failed failing upstream tests (log: ${out#"$ROOT"/})"
    grep -E "^(FAILED|ERROR) " "$out" | sed 's/^/    | /'
    grep -B2 -A25 -m 3 -E "^_{5,} .* _{5,}$" "$out" | head -n 120 | sed 's/^/    | /'
    show_module_log
  fi
  if [ "${VERBOSE:-0}" = 1 ]; then grep -E "^SKIPPED" "$out" | sed "s/^/  skip  /" || true; fi
  count_result "$passed" "$failed" "$skipped"
}
