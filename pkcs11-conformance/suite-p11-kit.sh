# Suite: p11-kit module registration, the p11-kit proxy and GnuTLS p11tool (sourced by run.sh).
#
# `make install PREFIX=<tmp>` installs the module and its p11-kit module file; the file is then registered in a
# user configuration ($HOME/.config/pkcs11/modules/, HOME = a temp dir). p11-kit 0.24 ignores user
# configuration when running as root, so as root the p11-kit commands run as `nobody` (setpriv) on a token
# directory owned by nobody. SoftHSM2 (`--module softhsm`) is "installed" the same way from a copy of its .so.

P11KIT_AS=()

suite_p11_kit() {
  suite_begin p11-kit
  local W="$WORK/p11-kit"
  token_env "$W"
  local LBL="conf-p11kit" PREFIX_DIR="$W/prefix" NAME
  export HOME_P11="$W/home"
  mkdir -p "$HOME_P11/.config/pkcs11/modules"

  if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null || { echo "p11-kit: setpriv (util-linux) needed to run as nobody"; }
    chmod 711 "$WORK"
    P11KIT_AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  fi
  # Everything p11-kit's user session may touch belongs to that user.
  _p11_as() { "${P11KIT_AS[@]}" env HOME="$HOME_P11" XDG_CONFIG_HOME="$HOME_P11/.config" "$@"; }

  local INSTALLED_LIB MODFILE
  if [ "$MODULE_KIND" = ours ]; then
    NAME=tensorguard-pkcs11
    # LIB= installs the module under test (it may be another build than .build/release).
    _p11_install() { make -C "$ROOT" --no-print-directory install PREFIX="$PREFIX_DIR" LIB="$MODULE"; }
    check "make install PREFIX=<tmp>" _p11_install
    INSTALLED_LIB="$PREFIX_DIR/lib/pkcs11/libtensorguard-pkcs11.so"
    MODFILE="$PREFIX_DIR/share/p11-kit/modules/tensorguard-pkcs11.module"
    _p11_layout() {
      local f; for f in "$INSTALLED_LIB" "$PREFIX_DIR/include/tensorguard-pkcs11.h" "$MODFILE"; do
        [ -f "$f" ] || { echo "missing after install: $f"; return 1; }
      done
      echo "--- $MODFILE"; cat "$MODFILE"
      grep -qx "module: $INSTALLED_LIB" "$MODFILE" || { echo "module file does not name $INSTALLED_LIB"; return 1; }
    }
    check "installed layout: lib/pkcs11/*.so, include/*.h, share/p11-kit/modules/*.module" _p11_layout
  else
    # Same layout for another module (the suite is debugged against SoftHSM2 this way). SoftHSM2 is already
    # registered system-wide as "softhsm2": a user file of that name overrides it, so it is loaded once.
    NAME="$(basename "$MODULE" .so)"; NAME="${NAME#lib}"; [ "$MODULE_KIND" = softhsm ] && NAME=softhsm2
    mkdir -p "$PREFIX_DIR/lib/pkcs11" "$PREFIX_DIR/share/p11-kit/modules"
    INSTALLED_LIB="$PREFIX_DIR/lib/pkcs11/$(basename "$MODULE")"
    cp "$(readlink -f "$MODULE")" "$INSTALLED_LIB"
    MODFILE="$PREFIX_DIR/share/p11-kit/modules/$NAME.module"
    printf 'module: %s\n' "$INSTALLED_LIB" >"$MODFILE"
  fi
  [ -f "$MODFILE" ] && cp "$MODFILE" "$HOME_P11/.config/pkcs11/modules/$NAME.module"

  # The token: made before handing the directory to the unprivileged user.
  local PROXY_TOOL="pkcs11-tool --module $P11KIT_PROXY --token-label $LBL"
  _p11_token() {
    token_init "$LBL" "$SO_PIN" "$USER_PIN" || return 1
    [ ${#P11KIT_AS[@]} = 0 ] || chown -R 65534:65534 "$W"
  }
  check "token initialised for the p11-kit run" _p11_token

  _p11_list() {
    _p11_as p11-kit list-modules >"$W/list-modules.out" 2>&1; local rc=$?
    cat "$W/list-modules.out"; [ $rc = 0 ] || return 1
    grep -q "^$NAME: $INSTALLED_LIB" "$W/list-modules.out" || { echo "module $NAME ($INSTALLED_LIB) not listed"; return 1; }
    grep -q "token: $LBL" "$W/list-modules.out" || { echo "token $LBL not listed under the module"; return 1; }
  }
  check "p11-kit list-modules shows the module and its token" _p11_list

  _p11_proxy_list() {
    _p11_as pkcs11-tool --module "$P11KIT_PROXY" -L >"$W/proxy-L.out" 2>&1; local rc=$?
    cat "$W/proxy-L.out"; [ $rc = 0 ] && expect_grep "token label *: $LBL" "$W/proxy-L.out"
  }
  check "p11-kit proxy: pkcs11-tool -L shows the token" _p11_proxy_list
  _p11_proxy_objects() {
    echo "p11-kit conformance data" >"$W/data.txt"; chmod 644 "$W/data.txt"
    _p11_as $PROXY_TOOL --login --pin "$USER_PIN" --keygen --key-type AES:32 --label p11kit-key --id 0a || return 1
    _p11_as $PROXY_TOOL --login --pin "$USER_PIN" --write-object "$W/data.txt" --type data --label p11kit-data || return 1
    _p11_as $PROXY_TOOL --login --pin "$USER_PIN" -O >"$W/proxy-O.out" 2>&1 || { cat "$W/proxy-O.out"; return 1; }
    cat "$W/proxy-O.out"; expect_grep p11kit-key "$W/proxy-O.out" && expect_grep p11kit-data "$W/proxy-O.out"
  }
  check "p11-kit proxy: login, keygen, write-object, -O" _p11_proxy_objects

  _p11tool_list() {
    local uri="pkcs11:token=$LBL"
    _p11_as p11tool --list-all --login --set-pin="$USER_PIN" "$uri" >"$W/p11tool.out" 2>&1; local rc=$?
    cat "$W/p11tool.out"; [ $rc = 0 ] || return 1
    local want; for want in "token=$LBL;.*object=p11kit-key;type=secret-key" "token=$LBL;.*object=p11kit-data;type=data"; do
      grep -Eq "URL: pkcs11:.*$want" "$W/p11tool.out" || { echo "no object URI matching /$want/"; return 1; }
    done
  }
  check "p11tool --list-all --login <token URI> lists objects with URIs" _p11tool_list

  _p11tool_tokens() {
    _p11_as p11tool --list-tokens >"$W/p11tool-tokens.out" 2>&1; local rc=$?
    cat "$W/p11tool-tokens.out"; [ $rc = 0 ] && expect_grep "token=$LBL" "$W/p11tool-tokens.out"
  }
  check "p11tool --list-tokens shows the token URI" _p11tool_tokens

  if [ "$MODULE_KIND" = ours ]; then
    # DESIGN §3/§6: the config path may arrive in C_Initialize's pReserved (p11-kit `x-init-reserved`).
    # No TENSORGUARD_PKCS11_CONF and no config under XDG_CONFIG_HOME here: only pReserved names the token.
    _p11_reserved() {
      { cat "$MODFILE"; echo "x-init-reserved: $TENSORGUARD_PKCS11_CONF"; } >"$HOME_P11/.config/pkcs11/modules/$NAME.module"
      _p11_as env -u TENSORGUARD_PKCS11_CONF pkcs11-tool --module "$P11KIT_PROXY" -L >"$W/reserved.out" 2>&1; local rc=$?
      cp "$MODFILE" "$HOME_P11/.config/pkcs11/modules/$NAME.module"
      cat "$W/reserved.out"; [ $rc = 0 ] && expect_grep "token label *: $LBL" "$W/reserved.out"
    }
    check "p11-kit x-init-reserved passes the config path in pReserved" _p11_reserved
  fi
  suite_end
}
