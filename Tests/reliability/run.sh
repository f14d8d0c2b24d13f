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
tokens:
  - name: reliability
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
YAML
chmod 600 "$work/config.yaml"
export TENSORGUARD_PKCS11_CONF="$work/config.yaml"

rc=0
timeout -k 10 600 "$work/reliability" "$module" "$work/store" || rc=$?
if [ "$rc" = 124 ] || [ "$rc" -ge 128 ]; then
    echo "run.sh: the test program was killed or timed out (exit $rc)"
    echo "reliability: 0 passed, 1 failed"
fi
exit "$rc"
