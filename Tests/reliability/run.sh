#!/usr/bin/env bash
# Reliability tests: two processes writing one token at once, and a SIGKILL mid key generation.
#   bash Tests/reliability/run.sh [path/to/libtensorguard-pkcs11.so]
# Prints "reliability: N passed, M failed" last; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
module="${1:-$root/.build/release/libtensorguard-pkcs11.so}"
case "$module" in /*) ;; *) module="$PWD/$module" ;; esac
if [ ! -f "$module" ]; then
    echo "run.sh: no module at $module (build it: swift build -c release --product tensorguard-pkcs11)" >&2
    echo "reliability: 0 passed, 1 failed"
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tg-rel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

cc -O1 -Wall -Werror -D_GNU_SOURCE -I/usr/include/p11-kit-1 -o "$work/reliability" \
   "$root/Tests/reliability/reliability.c" -ldl

mkdir -p "$work/store"
cat > "$work/config.yaml" <<YAML
audit: { file: $work/audit.log }
tokens:
  - name: reliability
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
YAML
chmod 600 "$work/config.yaml"
export TENSORGUARD_PKCS11_CONF="$work/config.yaml"

set +e
timeout -k 10 600 "$work/reliability" "$module" "$work/store" | tee "$work/output"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 124 ] || [ "$rc" -ge 128 ]; then
    echo "run.sh: the test program was killed or timed out (exit $rc)"
    echo "reliability: 0 passed, 1 failed"
fi
# Both processes and the killed one appended to one audit log (docs/audit.md): it must still be one valid chain.
# Counted as one more test in the summary line, which is printed again, last.
cli="$(dirname "$module")/tg-pkcs11"
summary="$(grep -aE '^reliability: [0-9]+ passed, [0-9]+ failed$' "$work/output" | tail -n1 || true)"
if [ "$rc" = 0 ] && [ -x "$cli" ] && [ -n "$summary" ]; then
    passed="$(sed -E 's/^reliability: ([0-9]+) passed.*/\1/' <<<"$summary")"
    failed="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$summary")"
    echo "test 3: the audit log written by both processes and the killed one"
    if "$cli" audit verify --file "$work/audit.log"; then
        echo "ok: tg-pkcs11 audit verify"
        passed=$((passed + 1))
    else
        echo "FAIL: tg-pkcs11 audit verify"
        failed=$((failed + 1))
        rc=1
    fi
    echo "reliability: $passed passed, $failed failed"
fi
exit "$rc"
