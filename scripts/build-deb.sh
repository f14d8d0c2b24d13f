#!/usr/bin/env bash
# Build the Debian package tensorguard-pkcs11 from the release products (`make deb`), with dpkg-deb.
#
#   scripts/build-deb.sh [--out DIR] [--lib PATH] [--cli PATH]
#
# Defaults: .build/release/libtensorguard-pkcs11.so and .build/release/tg-pkcs11 (build them first: make build),
# output out/deb/tensorguard-pkcs11_<version>_<arch>.deb. The last line printed is the path of the .deb.
#
# Layout:   /usr/lib/<triplet>/pkcs11/libtensorguard-pkcs11.so      the module (multiarch pkcs11 directory)
#           /usr/lib/pkcs11/libtensorguard-pkcs11.so                 link to it, where tg-pkcs11 looks (../lib/pkcs11)
#           /usr/share/p11-kit/modules/tensorguard-pkcs11.module     p11-kit registration
#           /usr/include/tensorguard-pkcs11.h                        vendor values
#           /usr/bin/tg-pkcs11, /usr/share/man/man1/tg-pkcs11.1.gz  operator tool, man page made by help2man
#           /usr/share/doc/tensorguard-pkcs11/{copyright,changelog.gz}
# Version:  the module's own (CK_INFO.libraryVersion, ModuleIdentity.version in Sources/Cryptoki/Slots/Token.swift),
#           the one place it is written; DEB_VERSION overrides it.
# Depends:  dpkg-shlibdeps on both binaries, plus libcurl4 (dlopen'ed by the cloud backends). Both must be free of Swift toolchain libraries (checked here).
# Env:      DEB_VERSION, SOURCE_DATE_EPOCH (default: the last commit's time), LINTIAN=0 to skip lintian.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/out/deb"
LIB="$ROOT/.build/release/libtensorguard-pkcs11.so"
CLI="$ROOT/.build/release/tg-pkcs11"
HEADER="$ROOT/Include/tensorguard-pkcs11.h"
PACKAGING="$ROOT/packaging/debian"
PACKAGE=tensorguard-pkcs11

say() { echo "deb: $*"; }
die() { echo "deb: ERROR: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --lib) LIB="$2"; shift 2 ;;
    --cli) CLI="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

for t in dpkg-deb dpkg-shlibdeps dpkg-architecture help2man readelf strip gzip md5sum; do
  command -v "$t" >/dev/null || die "$t not found (make deps installs dpkg-dev, help2man and binutils)"
done
[ -f "$LIB" ] || die "$LIB missing: run 'make build' first"
[ -x "$CLI" ] || die "$CLI missing: run 'make build' first"

# ---- version, architecture --------------------------------------------------------------------------------
VERSION="${DEB_VERSION:-}"
if [ -z "$VERSION" ]; then
  VERSION="$(sed -nE 's/^[[:space:]]*static let version = Version\(([0-9]+), *([0-9]+)\).*/\1.\2/p' \
               "$ROOT/Sources/Cryptoki/Slots/Token.swift")"
  [ "$(wc -l <<<"$VERSION")" = 1 ] && [ -n "$VERSION" ] \
    || die "cannot read ModuleIdentity.version from Sources/Cryptoki/Slots/Token.swift"
fi
ARCH="$(dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)"
TRIPLET="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
[ -n "$ARCH" ] && [ -n "$TRIPLET" ] || die "cannot determine the Debian architecture"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH
COMMIT="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT plus uncommitted changes"; fi

# ---- the binaries must not need the Swift toolchain --------------------------------------------------------
for bin in "$LIB" "$CLI"; do
  needed="$(readelf -d "$bin" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')"
  bad="$(grep -E '^lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime)' <<<"$needed" || true)"
  [ -z "$bad" ] || die "$bin needs Swift toolchain libraries: $(tr '\n' ' ' <<<"$bad")(static linking: Package.swift)"
  runpath="$(readelf -d "$bin" | grep -E '\((RPATH|RUNPATH)\)' || true)"
  if grep -q '/opt/swift\|/usr/lib/swift' <<<"$runpath"; then
    die "$bin has a run path into the Swift toolchain"
  fi
done

# ---- the package tree (debian/<package>/, where dpkg-shlibdeps expects it) ---------------------------------
BUILD="$OUT/build"
PKG="$BUILD/debian/$PACKAGE"
rm -rf "$BUILD"
mkdir -p "$OUT"
trap 'rm -rf "$BUILD"' EXIT
MODDIR="usr/lib/$TRIPLET/pkcs11"
DOC="usr/share/doc/$PACKAGE"
install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/$MODDIR" "$PKG/usr/lib/pkcs11" "$PKG/usr/include" \
           "$PKG/usr/share/p11-kit/modules" "$PKG/usr/share/man/man1" "$PKG/$DOC"

# Stripped as dh_strip does (no -dbgsym package: the unstripped binaries stay in .build/).
install -m 0644 "$LIB" "$PKG/$MODDIR/libtensorguard-pkcs11.so"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$PKG/$MODDIR/libtensorguard-pkcs11.so"
install -m 0755 "$CLI" "$PKG/usr/bin/tg-pkcs11"
strip --remove-section=.comment --remove-section=.note "$PKG/usr/bin/tg-pkcs11"
# tg-pkcs11 finds the module at ../lib/pkcs11/ from its own directory (docs/cli.md).
ln -s "../$TRIPLET/pkcs11/libtensorguard-pkcs11.so" "$PKG/usr/lib/pkcs11/libtensorguard-pkcs11.so"
install -m 0644 "$HEADER" "$PKG/usr/include/tensorguard-pkcs11.h"
printf '%s\n' "# TensorGuard PKCS#11 (p11-kit module registration; package $PACKAGE)" \
  "module: /$MODDIR/libtensorguard-pkcs11.so" >"$PKG/usr/share/p11-kit/modules/$PACKAGE.module"
chmod 0644 "$PKG/usr/share/p11-kit/modules/$PACKAGE.module"

# ---- man page: help2man over `tg-pkcs11 --help`, plus every subcommand's --help ------------------------------
H2M="$BUILD/help2man"
mkdir -p "$H2M"
# help2man wants GNU-style "Usage:"; ArgumentParser prints "OVERVIEW:"/"USAGE:". The wrapper only renames those.
cat >"$H2M/tg-pkcs11" <<WRAP
#!/bin/sh
"$PKG/usr/bin/tg-pkcs11" "\$@" | sed -e 's/^OVERVIEW: //' -e 's/^USAGE: /Usage: /'
WRAP
chmod 0755 "$H2M/tg-pkcs11"
# roff-escape a help text as a no-fill block.
roff_block() {
  printf '.nf\n'
  sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/—/\\(em/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  printf '.fi\n'
}
subcommands() {  # the names listed under SUBCOMMANDS: in a help text
  awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }' | grep -vx help || true
}
walk() {  # walk CMD...: the help of CMD, then of each of its subcommands
  local help sub
  help="$("$PKG/usr/bin/tg-pkcs11" "$@" --help)" || die "tg-pkcs11 $* --help failed"
  printf '.SS "tg\\-pkcs11 %s"\n' "$(sed 's/-/\\-/g' <<<"$*")"
  sed -e 's/^OVERVIEW: //' <<<"$help" | roff_block
  for sub in $(subcommands <<<"$help"); do walk "$@" "$sub"; done
}
{
  echo "[COMMANDS]"
  echo "Every command and its options, as printed by \\fBtg\\-pkcs11\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR."
  for sub in $("$PKG/usr/bin/tg-pkcs11" --help | subcommands); do walk "$sub"; done
} >"$H2M/commands.h2m"
LC_ALL=C.UTF-8 help2man --locale=C.UTF-8 --no-info --section=1 --version-string="$VERSION" \
  --source="TensorGuard PKCS#11" --manual="User Commands" \
  --include="$PACKAGING/tg-pkcs11.h2m" --include="$H2M/commands.h2m" \
  --output="$PKG/usr/share/man/man1/tg-pkcs11.1" "$H2M/tg-pkcs11"
grep -q '^\.SH "\?COMMANDS' "$PKG/usr/share/man/man1/tg-pkcs11.1" || die "help2man produced no COMMANDS section"
gzip -9n "$PKG/usr/share/man/man1/tg-pkcs11.1"
rm -rf "$H2M"

# ---- copyright, changelog --------------------------------------------------------------------------------
install -m 0644 "$PACKAGING/copyright" "$PKG/$DOC/copyright"
{
  echo "$PACKAGE ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Built by make deb from commit $COMMIT."
  echo "  * The module and tg-pkcs11 have the Swift runtime linked in statically"
  echo "    and need no Swift toolchain."
  echo
  echo " -- $(sed -n 's/^Maintainer: //p' "$PACKAGING/control")  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$PKG/$DOC/changelog.gz"
chmod 0644 "$PKG/$DOC/changelog.gz"

# ---- control ---------------------------------------------------------------------------------------------
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PACKAGE" "$PACKAGE" >"$BUILD/debian/control"
shlibs="$(cd "$BUILD" && dpkg-shlibdeps -O -e"$PKG/usr/bin/tg-pkcs11" -e"$PKG/$MODDIR/libtensorguard-pkcs11.so" 2>"$BUILD/shlibdeps.err")" \
  || { cat "$BUILD/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
DEPENDS="$(sed -n 's/^shlibs:Depends=//p' <<<"$shlibs")"
[ -n "$DEPENDS" ] || die "dpkg-shlibdeps found no dependencies"
# libcurl is loaded with dlopen by the cloud backends (Sources/CCurl), so dpkg-shlibdeps cannot see it.
grep -qE '(^|, )libcurl4( |,|$)' <<<"$DEPENDS" || DEPENDS="$DEPENDS, libcurl4 (>= 7.88)"
INSTALLED_SIZE="$(du -sk --apparent-size --exclude=DEBIAN "$PKG" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS/" "$PACKAGING/control" >"$PKG/DEBIAN/control"
! grep -q '@[A-Z_]*@' "$PKG/DEBIAN/control" || die "unfilled field in DEBIAN/control"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
  >"$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/md5sums"
find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

DEB="$OUT/${PACKAGE}_${VERSION}_${ARCH}.deb"
rm -f "$DEB"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
say "$PACKAGE $VERSION ($ARCH), Depends: $DEPENDS"
say "$(du -h "$DEB" | cut -f1) $DEB"
if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
  tags="$(lintian --tag-display-limit 0 "$DEB" 2>&1 | grep -E '^[EWIPXO]: ' || true)"
  if [ -n "$tags" ]; then say "lintian:"; sed 's/^/  /' <<<"$tags"; else say "lintian: clean"; fi
fi
echo "$DEB"
