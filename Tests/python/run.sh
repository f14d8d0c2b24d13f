#!/usr/bin/env bash
# The Python package's tests (pytest), as `make check` runs them:
#   bash Tests/python/run.sh [path/to/libtensorguard-pkcs11.so [path/to/tg-pkcs11]]   (default: .build/release/)
# Prints "python: N passed, M failed" last (a skip counts as a failure: these tests never skip) and exits non-zero
# on any failure or when no test ran. The full pytest log is out/python/pytest.log.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lib="${1:-$root/.build/release/libtensorguard-pkcs11.so}"
cli="${2:-$(dirname "$lib")/tg-pkcs11}"
PY="${PYTHON:-python3}"
out="$root/out/python"; mkdir -p "$out"
junit="$out/junit.xml" log="$out/pytest.log"
rm -f "$junit"
echo "python: pytest Tests/python against $lib"
rc=0
TENSORGUARD_PKCS11_MODULE="$(readlink -m "$lib")" TG_PKCS11_CLI="$cli" \
  timeout 900 "$PY" -m pytest -p no:cacheprovider -q -rfEs --junitxml="$junit" "$root/Tests/python" \
  >"$log" 2>&1 </dev/null || rc=$?
read -r passed failed skipped total < <("$PY" - "$junit" <<'PYEOF'
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
PYEOF
)
failed=$((failed + skipped))
if [ "$total" = 0 ] || { [ "$rc" != 0 ] && [ "$failed" = 0 ]; }; then
  failed=$((failed + 1)); echo "python: pytest exit $rc with $total tests recorded (log: ${log#"$root"/})"; tail -n 60 "$log"
elif [ "$failed" != 0 ]; then
  grep -E "^(FAILED|ERROR|SKIPPED)" "$log" | sed 's/^/  /'
  grep -B2 -A30 -m 4 -E "^_{5,} .* _{5,}$" "$log" | head -n 150 | sed 's/^/    | /'
fi
tail -n 1 "$log" | sed 's/^=* */python: pytest: /; s/ *=*$//'
echo "python: $passed passed, $failed failed"
[ "$failed" = 0 ]
