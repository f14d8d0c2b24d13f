#!/usr/bin/env bash
# Package test: the .deb made from the built release products, installed with dpkg on this host and used with the
# Swift toolchain hidden (an empty directory bind-mounted over /opt/swift in a private mount namespace), then
# purged again. Needs root (dpkg -i, unshare -m), as CI has.
#   bash Tests/package/run.sh [path/to/libtensorguard-pkcs11.so [path/to/tg-pkcs11]]   (default: .build/release/)
# Each step is one test; prints "package: N passed, M failed" last and exits non-zero on any failure.
# VERBOSE=1 prints every step's output, not only a failing one's.
# Leaves the host as it found it: refuses to start when the package or any of its files is already there, and
# purges the package (also when interrupted). Everything else lives in a temp directory, removed at the end.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACKAGE=tensorguard-pkcs11
TOOLCHAIN=/opt/swift
lib="${1:-$root/.build/release/libtensorguard-pkcs11.so}"
cli="${2:-$(dirname "$lib")/tg-pkcs11}"

passed=0 failed=0
summary() { echo "package: $passed passed, $failed failed"; }
if [ "$(id -u)" != 0 ]; then
    echo "package: needs root (dpkg -i, unshare -m); run it as root, as CI does"
    failed=1; summary; exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tg-package.XXXXXX")"
chmod 700 "$work"
installed=0
cleanup() {
    if [ "$installed" = 1 ]; then dpkg --purge "$PACKAGE" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# step NAME CMD...: one test; its output goes to a log, shown when it fails.
n=0
step() {
    local name="$1"; shift
    n=$((n + 1))
    local log="$work/step-$n.log"
    if "$@" >"$log" 2>&1; then
        echo "ok: $name"
        [ "${VERBOSE:-0}" = 0 ] || sed 's/^/    /' "$log"
        passed=$((passed + 1))
        return 0
    fi
    echo "FAIL: $name"
    sed 's/^/    /' "$log" | tail -n 40
    failed=$((failed + 1))
    return 1
}
# hidden CMD...: CMD in a private mount namespace where the Swift toolchain directory is an empty directory
# (at most 5 minutes).
mkdir -p "$work/empty"
hidden() {
    if [ -d "$TOOLCHAIN" ]; then
        timeout -k 10 300 unshare -m --propagation private -- \
            /bin/sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' "$work/empty" "$TOOLCHAIN" "$@"
    else
        timeout -k 10 300 "$@"   # no toolchain on this host: nothing to hide
    fi
}

pkg_status() { dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null || true; }
triplet="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
module="/usr/lib/$triplet/pkcs11/libtensorguard-pkcs11.so"

# A token in the temp directory; HOME and the XDG directories too, so that nothing is written for root.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share"
mkdir -p "$HOME"
unset TG_PKCS11_MODULE TENSORGUARD_PKCS11_LOG || true
mkdir -p "$work/store"
cat >"$work/config.yaml" <<YAML
log: { level: error }
audit: { file: $work/audit.log }
tokens:
  - name: pkgtest
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
YAML
chmod 600 "$work/config.yaml"
export TENSORGUARD_PKCS11_CONF="$work/config.yaml"
export TG_PKCS11_PIN=246810 TG_PKCS11_SO_PIN=13579111

# ---- 1. build ----------------------------------------------------------------------------------------------
build_deb() {
    LINTIAN=0 bash "$root/scripts/build-deb.sh" --lib "$lib" --cli "$cli" --out "$work/deb" || return 1
    deb="$(ls "$work"/deb/${PACKAGE}_*.deb)" && [ -f "$deb" ]
}
deb=""
step "make deb from the release products (scripts/build-deb.sh)" build_deb
deb="$(ls "$work"/deb/${PACKAGE}_*.deb 2>/dev/null | head -n1)"
if [ -z "$deb" ]; then summary; exit 1; fi
version="$(dpkg-deb -f "$deb" Version)"

# ---- 2. contents ---------------------------------------------------------------------------------------------
contents() {
    local list; list="$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')"
    echo "$list"
    local f
    for f in "$module" /usr/lib/pkcs11/libtensorguard-pkcs11.so /usr/bin/tg-pkcs11 \
             /usr/include/tensorguard-pkcs11.h /usr/share/p11-kit/modules/tensorguard-pkcs11.module \
             /usr/share/man/man1/tg-pkcs11.1.gz /usr/share/doc/$PACKAGE/copyright /usr/share/doc/$PACKAGE/changelog.gz; do
        grep -qx "$f" <<<"$list" || { echo "missing: $f"; return 1; }
    done
    local depends; depends="$(dpkg-deb -f "$deb" Depends)"
    echo "Depends: $depends"
    for d in libssl3 libsqlite3-0 libcurl4 libc6; do
        grep -qE "(^|, )$d( |,|$)" <<<"$depends" || { echo "Depends lacks $d"; return 1; }
    done
    ! grep -qi swift <<<"$depends" || { echo "Depends names a Swift package"; return 1; }
    mkdir -p "$work/x" && dpkg-deb -x "$deb" "$work/x" || return 1
    local man; man="$(zcat "$work/x/usr/share/man/man1/tg-pkcs11.1.gz")" || return 1
    grep -q '^\.TH TG-PKCS11 "1"' <<<"$man" || { echo "man page: no .TH"; return 1; }
    grep -q '^\.SS "tg\\-pkcs11 key generate"' <<<"$man" || { echo "man page: no section for key generate"; return 1; }
    grep -qx "module: $module" "$work/x/usr/share/p11-kit/modules/tensorguard-pkcs11.module" \
        || { echo "module file does not name $module"; return 1; }
    rm -rf "$work/x"
}
step "package contents: multiarch module, p11-kit module file, header, tg-pkcs11, man page, copyright, changelog, Depends" contents

# ---- 3. install ----------------------------------------------------------------------------------------------
install_deb() {
    local status; status="$(pkg_status)"
    if [ -n "$status" ] && [ "$status" != "unknown ok not-installed" ]; then
        echo "$PACKAGE is already known to dpkg on this host ($status); not touching it (dpkg --purge $PACKAGE, then rerun)"
        return 1
    fi
    local f clash=0
    for f in $(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|'); do
        if [ -e "$f" ] || [ -L "$f" ]; then echo "already on this host (would be overwritten, then removed): $f"; clash=1; fi
    done
    [ "$clash" = 0 ] || return 1
    installed=1
    dpkg -i "$deb" || return 1
    dpkg-query -W -f='${Status} ${Version}\n' "$PACKAGE"
    [ "$(pkg_status)" = "install ok installed" ]
}
if ! step "dpkg -i $(basename "$deb")" install_deb; then
    [ "$installed" = 1 ] || { summary; exit 1; }
fi
dpkg -L "$PACKAGE" >"$work/files" 2>/dev/null || true

# ---- 4. with the toolchain hidden ---------------------------------------------------------------------------------
toolchain_hidden() {
    if [ -d "$TOOLCHAIN" ]; then
        local entries; entries="$(hidden ls -A "$TOOLCHAIN")" || return 1
        [ -z "$entries" ] || { echo "$TOOLCHAIN is not empty in the namespace: $entries"; return 1; }
        if [ -e "$TOOLCHAIN/usr/bin/swift" ] && hidden test -e "$TOOLCHAIN/usr/bin/swift"; then
            echo "$TOOLCHAIN/usr/bin/swift still visible in the namespace"; return 1
        fi
        echo "$TOOLCHAIN: hidden (empty) in the namespace"
    else
        echo "no $TOOLCHAIN on this host"
    fi
    local bin out
    for bin in /usr/bin/tg-pkcs11 "$module"; do
        out="$(hidden ldd "$bin")" || return 1
        echo "$bin:"; echo "$out"
        ! grep -q 'not found' <<<"$out" || return 1
        ! grep -qE 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime|/opt/swift' <<<"$out" || return 1
    done
}
step "toolchain hidden: $TOOLCHAIN empty, no Swift library resolved by tg-pkcs11 or the module" toolchain_hidden

help_runs() { local out; out="$(hidden tg-pkcs11 --help)" || return 1; echo "$out"; grep -q '^USAGE: tg-pkcs11' <<<"$out"; }
step "tg-pkcs11 --help" help_runs

token_init() { hidden tg-pkcs11 token init --slot 0 --label pkgtest --so-pin-env TG_PKCS11_SO_PIN --pin-env TG_PKCS11_PIN; }
step "tg-pkcs11 token init (module found at /usr/lib/pkcs11, token in a temp config)" token_init

list_modules() {
    local dir; dir="$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null || echo /usr/share/p11-kit/modules)"
    echo "p11-kit package module directory: $dir"
    [ -f "$dir/tensorguard-pkcs11.module" ] || { echo "no $dir/tensorguard-pkcs11.module"; return 1; }
    local out; out="$(hidden p11-kit list-modules 2>&1)"
    echo "$out"
    grep -qx "tensorguard-pkcs11: $module" <<<"$out" || return 1
    grep -q 'library-description: TensorGuard PKCS#11' <<<"$out" || return 1
    grep -qE '^ +token: pkgtest$' <<<"$out"
}
step "p11-kit list-modules shows the registered module and its token" list_modules

key_generate() { hidden tg-pkcs11 key generate --token pkgtest --label pkg-key; }
step "tg-pkcs11 key generate" key_generate

round_trip() {
    hidden tg-pkcs11 encrypt --token pkgtest --key pkg-key --format lwe2 --values '[1, 2, 3, 0, 65535, 4242]' \
        --output "$work/values.ct" || return 1
    local out; out="$(hidden tg-pkcs11 decrypt --token pkgtest --key pkg-key --input "$work/values.ct")" || return 1
    echo "decrypted: $out"
    [ "$(tr -d ' \n' <<<"$out")" = "[1,2,3,0,65535,4242]" ]
}
step "tg-pkcs11 encrypt/decrypt round trip (LWE2)" round_trip

pkcs11_tool() {
    local out; out="$(hidden pkcs11-tool --module "$module" -L -O --login --pin "$TG_PKCS11_PIN" 2>&1)" || { echo "$out"; return 1; }
    echo "$out"
    grep -q 'pkgtest' <<<"$out" || return 1
    grep -q 'label: *pkg-key' <<<"$out" || return 1
    out="$(hidden pkcs11-tool --module "$module" -I 2>&1)" || return 1
    echo "$out"
    # The package version is the module's CK_INFO.libraryVersion (scripts/build-deb.sh).
    grep -qE "^Library +TensorGuard PKCS#11 \(ver ${version//./\\.}\)" <<<"$out" \
        || { echo "pkcs11-tool -I does not report library version $version"; return 1; }
}
step "pkcs11-tool --module $module -L -O --login, -I" pkcs11_tool

# Footprint guard (issue 10, docs/footprint.md): the installed module stays under 10 MB and loads only these
# libraries; libcurl (and the ~30 libraries behind it) only when a cloud backend sends its first request.
footprint_guard() {
    local size; size="$(stat -L -c %s "$module")" || return 1
    echo "installed module: $size bytes"
    [ "$size" -le 10000000 ] || { echo "larger than 10 MB"; return 1; }
    local needed; needed="$(readelf -d "$module" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | sort | tr '\n' ' ')"
    echo "NEEDED: $needed"
    local allowed=" ld-linux-x86-64.so.2 libc.so.6 libcrypto.so.3 libgcc_s.so.1 libm.so.6 libsqlite3.so.0 libstdc++.so.6 libyaml-0.so.2 "
    local lib
    for lib in $needed; do
        [[ "$allowed" == *" $lib "* ]] || { echo "unexpected NEEDED: $lib"; return 1; }
    done
}
step "installed module: at most 10 MB, NEEDED only libc/libstdc++/libcrypto/libsqlite3/libyaml (no libcurl)" footprint_guard

# A host without libcurl: the module still loads and lists every slot; a cloud token's first request fails with
# a message naming the missing library, once (not retried), and the local token keeps working.
without_libcurl() {
    local curl; curl="$(readlink -f "/usr/lib/$triplet/libcurl.so.4")"
    [ -f "$curl" ] || { echo "no libcurl.so.4 on this host to hide"; return 1; }
    mkdir -p "$work/nocurl/store-cloud"
    cat >"$work/nocurl/config.yaml" <<YAML2
log: { level: error, file: $work/nocurl/module.log }
audit: { file: $work/nocurl/audit.log }
tokens:
  - name: pkgtest
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
  - name: cloud
    store: $work/nocurl/store-cloud
    backend: { kind: aws-kms, key_id: 11111111-2222-3333-4444-555555555555, region: us-east-1, endpoint: "http://127.0.0.1:9" }
YAML2
    chmod 600 "$work/nocurl/config.yaml"
    local script='mount --bind /dev/null "$1" || exit 1; shift; "$@"'
    local out
    out="$(TENSORGUARD_PKCS11_CONF="$work/nocurl/config.yaml" AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example \
        timeout -k 10 120 unshare -m --propagation private -- /bin/sh -c "$script" sh "$curl" /bin/sh -c '
        pkcs11-tool --module "$0" -L || exit 10
        pkcs11-tool --module "$0" --token-label pkgtest -O --login --pin "$TG_PKCS11_PIN" || exit 11
        pkcs11-tool --module "$0" --slot-index 1 --init-token --label cloud --so-pin 12345678 && exit 12
        exit 0' "$module" 2>&1)" || { echo "$out"; return 1; }
    echo "$out"
    grep -q 'label: *pkg-key' <<<"$out" || { echo "local token's key not listed"; return 1; }
    grep -q 'cannot load libcurl.so.4 (install libcurl4)' "$work/nocurl/module.log" || { cat "$work/nocurl/module.log"; return 1; }
    ! grep -q 'after [0-9]* attempts' "$work/nocurl/module.log" || { echo "a missing libcurl was retried"; return 1; }
}
step "libcurl hidden: slots listed, local token works, cloud token says 'install libcurl4'" without_libcurl

# ---- 5. purge --------------------------------------------------------------------------------------------------
purge() {
    dpkg --purge "$PACKAGE" || return 1
    installed=0
    local status; status="$(pkg_status)"
    [ -z "$status" ] || [ "$status" = "unknown ok not-installed" ] || { echo "still known to dpkg: $status"; return 1; }
    local f left=0
    while read -r f; do
        [ -d "$f" ] && ! [ -L "$f" ] && continue     # shared directories (/usr/lib/pkcs11, ...) may stay
        if [ -e "$f" ] || [ -L "$f" ]; then echo "left behind: $f"; left=1; fi
    done <"$work/files"
    [ "$left" = 0 ]
}
step "dpkg --purge: package and every file gone" purge

summary
[ "$failed" = 0 ]
