#!/usr/bin/env bash
# ABI sweep: builds Tests/abi/*.c (main() in abi_sweep.c; abi_sweep.h lists the files) and runs it
# against the module.
#   bash Tests/abi/run.sh [path/to/libtensorguard-pkcs11.so]
# Environment: ABI_VALGRIND=1 runs the sweep under valgrind (--error-exitcode=1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
module="${1:-$root/.build/release/libtensorguard-pkcs11.so}"
case "$module" in /*) ;; *) module="$PWD/$module" ;; esac
if [ ! -f "$module" ]; then
    echo "run.sh: no module at $module (build it: swift build -c release --product tensorguard-pkcs11)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tg-abi.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# Every .c file in Tests/abi is part of the one abi_sweep program.
cc -O1 -Wall -Werror -I"$root" -o "$work/abi_sweep" "$root"/Tests/abi/*.c -ldl -lpthread

mkdir -p "$work/store" "$work/store2"
cat > "$work/config.yaml" <<YAML
audit: { file: $work/audit.log, sync: false }
tokens:
  - name: abi-test
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
  # A second slot whose name fills CK_SLOT_INFO.slotDescription (64 bytes) but one, in two-byte
  # characters (the config caps names at 64 bytes): the sweep checks the bytes and the blank padding.
  - name: "x$(printf 'é%.0s' $(seq 31))"
    store: $work/store2
    backend: { kind: local }
    pin_kdf_cost: 10
YAML
chmod 600 "$work/config.yaml"
export TENSORGUARD_PKCS11_CONF="$work/config.yaml"

if [ "${ABI_VALGRIND:-0}" = 1 ]; then
    # Debian 12's valgrind cannot read the DWARF 5 that the Swift toolchain's clang emits: run a copy
    # without debug sections.
    objcopy --strip-debug "$module" "$work/libtensorguard-pkcs11.so"
    module="$work/libtensorguard-pkcs11.so"
    exec_prefix=(valgrind --quiet --error-exitcode=1 --leak-check=no --track-origins=yes
                 --suppressions="$root/Tests/abi/valgrind.supp")
else
    exec_prefix=()
fi
"${exec_prefix[@]}" "$work/abi_sweep" "$module"
