# Suite: fresh accounts and unusable stores (sourced by run.sh) — issue 10's "zero-config that works", from outside.
#
# Every command runs the module from a clean environment: `env -i` with PATH and only what the case names (HOME,
# XDG_DATA_HOME); no TENSORGUARD_PKCS11_CONF, no other XDG_* variable. Configuration, where a case needs one, is
# the file the module finds by itself: $HOME/.config/tensorguard-pkcs11/config.yaml.
#   (a) HOME an empty new directory, XDG unset: the default store $HOME/.local/share/tensorguard-pkcs11/default
#       and its missing parents are created 0700; --init-token works at once, then --init-pin and --login; the
#       audit log (on by default, next to the stores) is written 0600 and verifies.
#   (b) XDG_DATA_HOME naming a directory that does not exist (umask 000): the same, under XDG_DATA_HOME.
#   (c) a data directory the user cannot write (run as nobody): HOME=/nonexistent, and HOME a root-owned 0755
#       directory: -L exits 0, the slot is listed, the token is "(token not recognized)", a log line on stderr
#       (default level) names the store path and the errno, --init-token is refused, nothing is created.
#   (d) stores on a read-only bind mount (unshare -m; the mount lives only as long as the command): one store
#       that does not exist yet, one initialised before the mount; (e) a regular file as the store directory and
#       as its parent. Both: -L exits 0, those tokens are not recognized, the slot IDs keep the configuration's
#       order and the last configured token works (init, init-pin, login, key generation, -O).
#   (f) two tokens whose stores are one directory through a symlink (and a third through `..` and a trailing
#       slash): the later ones are not recognized, the first works.
# With --module softhsm: (a)-(c), (e)'s and (f)'s rules are ours (our default store, our config, per-token
# failure); SoftHSM2's counterpart — a fresh HOME with SOFTHSM2_CONF naming an empty token directory — runs as a
# check, and (c)/(d)/(e) run SoftHSM2 in the same situation and print what it does as not-applicable lines.

FA_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FA_SO_PIN=12345678
FA_PIN=123456
FA_AS=()      # run as this user (setpriv prefix), empty = the invoking user
FA_PRE=()     # a wrapper around the command (the read-only mount namespace), empty = none
FA_ENV=()     # NAME=value pairs for env -i

# _fa_tool ARGS... — pkcs11-tool on the module from the clean environment of the current case.
_fa_tool() {
  "${FA_AS[@]}" "${FA_PRE[@]}" env -i PATH="$FA_PATH" "${FA_ENV[@]}" pkcs11-tool --module "$MODULE" "$@"
}

# _fa_list DIR — pkcs11-tool -L into DIR/L.out (stdout) and DIR/L.err (stderr); passes when it exits 0.
_fa_list() {
  local d="$1" rc=0
  _fa_tool -L >"$d/L.out" 2>"$d/L.err" || rc=$?
  echo "+ pkcs11-tool -L (exit $rc)"; cat "$d/L.out"; echo "--- stderr"; cat "$d/L.err"
  [ "$rc" = 0 ] || { echo "pkcs11-tool -L exited $rc"; return 1; }
}

# _fa_slot OUT N NAME STATE — pkcs11-tool -L output OUT lists slot N (ID N) as NAME, and the line under it
# contains STATE ("token state:   uninitialized", "(token not recognized)", "token label        : x").
_fa_slot() {
  local out="$1" n="$2" name="$3" state="$4"
  awk -v n="$n" -v name="$name" -v state="$state" '
    $0 == sprintf("Slot %d (0x%x): %s", n, n, name) { getline; if (index($0, state)) found = 1 }
    END { exit !found }' "$out" ||
    { echo "expected slot $n (0x$n) '$name' followed by '$state' in $out:"; cat "$out"; return 1; }
}

# _fa_log ERR PATH ERRNO — the module's stderr ERR has an error line naming PATH and "errno ERRNO)" (the store's
# "(errno 13)" or, when the default audit log under the same data directory fails first, "(Permission denied, errno 13)").
_fa_log() {
  local err="$1" path="$2" errno="$3"
  grep -F "error" "$err" | grep -F -- "$path" | grep -q -- "errno $errno)" ||
    { echo "no error line naming $path and errno $errno in stderr:"; cat "$err"; return 1; }
}

# _fa_token_works SLOT LABEL DIR — at once: --init-token on SLOT, --init-pin, then a user login that generates a
# token AES key and lists it with -O (C_InitToken, C_InitPIN, C_Login and object creation are audited: these fail
# with CKR_DEVICE_ERROR if the audit log cannot be written).
_fa_token_works() {
  local slot="$1" label="$2" d="$3"
  run_to "$d/init.out" _fa_tool --init-token --slot "$slot" --label "$label" --so-pin "$FA_SO_PIN" || return 1
  run_to "$d/pin.out" _fa_tool --slot "$slot" --login --login-type so --so-pin "$FA_SO_PIN" --init-pin --pin "$FA_PIN" ||
    return 1
  run_to "$d/keygen.out" _fa_tool --slot "$slot" --login --pin "$FA_PIN" --keygen --key-type AES:32 --label fa-key ||
    return 1
  run_to "$d/O.out" _fa_tool --slot "$slot" --login --pin "$FA_PIN" -O || return 1
  expect_aes_key "$d/O.out" fa-key
}
# SoftHSM2 gives an initialised token a new slot ID: after --init-token, address it by label.
_fa_softhsm_token_works() {
  local label="$1" d="$2"
  run_to "$d/init.out" _fa_tool --init-token --slot 0 --label "$label" --so-pin "$FA_SO_PIN" || return 1
  run_to "$d/pin.out" _fa_tool --token-label "$label" --login --login-type so --so-pin "$FA_SO_PIN" \
    --init-pin --pin "$FA_PIN" || return 1
  run_to "$d/keygen.out" _fa_tool --token-label "$label" --login --pin "$FA_PIN" --keygen --key-type AES:32 \
    --label fa-key || return 1
  run_to "$d/O.out" _fa_tool --token-label "$label" --login --pin "$FA_PIN" -O || return 1
  expect_aes_key "$d/O.out" fa-key
}

# _fa_refused SLOT DIR — --init-token on an unusable token fails with CKR_TOKEN_NOT_RECOGNIZED.
_fa_refused() {
  local slot="$1" d="$2" rc=0
  _fa_tool --init-token --slot "$slot" --label x --so-pin "$FA_SO_PIN" >"$d/refused.out" 2>&1 || rc=$?
  cat "$d/refused.out"
  [ "$rc" != 0 ] || { echo "--init-token on slot $slot succeeded"; return 1; }
  expect_grep CKR_TOKEN_NOT_RECOGNIZED "$d/refused.out"
}

# _fa_modes MODE PATH... — each PATH is a directory (or with MODE 600 a file) of exactly that mode.
_fa_modes() {
  local want="$1" p m bad=0; shift
  for p in "$@"; do
    m="$(stat -c %a "$p" 2>/dev/null)" || { echo "missing: $p"; bad=1; continue; }
    echo "$m $p"
    [ "$m" = "$want" ] || { echo "  mode $m, expected $want"; bad=1; }
  done
  return $bad
}

# _fa_na CASE REASON — a case that does not apply to this module: printed, counted as skipped.
_fa_na() {
  echo "  n/a   $SUITE: $1 — $2"
  SUITE_SKIPPED=$((SUITE_SKIPPED + 1))
}

# _fa_observe DIR — run -L in the current case's environment and describe the outcome in one phrase.
_fa_observe() {
  local d="$1" rc=0
  _fa_tool -L >"$d/L.out" 2>"$d/L.err" || rc=$?
  if [ "$rc" = 0 ]; then echo "observed: pkcs11-tool -L exit 0"
  else echo "observed: pkcs11-tool -L exit $rc ($(grep -o 'CKR_[A-Z_]*' "$d/L.err" "$d/L.out" | head -1 | cut -d: -f2))"; fi
}

# _fa_ro_ns DIR... — FA_PRE for commands that must see DIRs read-only: a private mount namespace per command
# (unshare -m), DIRs bind-mounted onto themselves read-only; the mounts end with the command.
_fa_ro_ns() {
  # shellcheck disable=SC2016
  FA_PRE=(unshare -m --propagation private sh -c \
    'for d; do [ "$d" = -- ] && break; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 125; done
     while [ "$1" != -- ]; do shift; done; shift; exec "$@"' sh "$@" --)
}

_fa_config() {  # _fa_config HOME — writes HOME/.config/tensorguard-pkcs11/config.yaml from stdin (0600)
  mkdir -p "$1/.config/tensorguard-pkcs11"
  cat >"$1/.config/tensorguard-pkcs11/config.yaml"
  chmod 600 "$1/.config/tensorguard-pkcs11/config.yaml"
}

suite_fresh_account() {
  suite_begin fresh-account
  local W="$WORK/fresh-account"
  rm -rf "$W"; mkdir -p "$W"
  local TGCLI="$ROOT/.build/release/tg-pkcs11"

  # ------------------------------------------------------------ (a) HOME empty, XDG unset
  local A="$W/a" AH="$W/a/home"
  mkdir -p "$AH"
  FA_AS=() FA_PRE=() FA_ENV=("HOME=$AH")
  if [ "$MODULE_KIND" = ours ]; then
    local AD="$AH/.local/share/tensorguard-pkcs11"
    _fa_a_list() { _fa_list "$A" && _fa_slot "$A/L.out" 0 default "token state:   uninitialized" &&
      { ! grep -q error "$A/L.err" || { echo "unexpected error lines on stderr"; return 1; }; }; }
    check "(a) HOME empty, XDG unset: -L exits 0, slot 0 'default' uninitialized, no error" _fa_a_list
    _fa_a_modes() {
      _fa_modes 700 "$AH/.local" "$AH/.local/share" "$AD" "$AD/default" || return 1
      [ -f "$AD/default/token.sqlite" ] || { echo "no $AD/default/token.sqlite"; return 1; }
    }
    check "(a) default store ~/.local/share/tensorguard-pkcs11/default and its parents created 0700" _fa_a_modes
    check "(a) at once: --init-token --slot 0, --init-pin, --login keygen + -O" _fa_token_works 0 x "$A"
    _fa_a_audit() {
      _fa_modes 600 "$AD/audit.log" || return 1
      local e; for e in token_init pin_init login object_generate; do
        grep -q "\"event\":\"$e\"" "$AD/audit.log" || { echo "no $e record in $AD/audit.log"; cat "$AD/audit.log"; return 1; }
      done
      if [ -x "$TGCLI" ]; then
        echo "+ tg-pkcs11 audit verify --token default (the HMAC checkpoints too)"
        env -i PATH="$FA_PATH" "${FA_ENV[@]}" FA_PIN="$FA_PIN" "$TGCLI" audit verify --token default --pin-env FA_PIN
      else
        echo "($TGCLI not built: chain not verified)"
      fi
    }
    check "(a) default audit log ~/.local/share/tensorguard-pkcs11/audit.log: 0600, records, verifies" _fa_a_audit
  else
    _fa_na "(a) HOME empty, XDG unset" "our default store layout; without SOFTHSM2_CONF SoftHSM2 uses the system-wide token directory of /etc/softhsm/softhsm2.conf, which this suite does not touch"
    if [ "$MODULE_KIND" = softhsm ]; then
      # SoftHSM2's fresh account: its configuration names an empty token directory; initialisation works at once.
      mkdir -p "$A/tokens"
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$A/tokens" >"$A/softhsm2.conf"
      FA_ENV=("HOME=$AH" "SOFTHSM2_CONF=$A/softhsm2.conf")
      check "(a, SoftHSM2 counterpart) fresh HOME + SOFTHSM2_CONF: -L exits 0" _fa_list "$A"
      check "(a, SoftHSM2 counterpart) at once: --init-token, --init-pin, --login keygen + -O" \
        _fa_softhsm_token_works x "$A"
    fi
  fi

  # ------------------------------------------------------------ (b) XDG_DATA_HOME does not exist
  local B="$W/b" BH="$W/b/home" BX="$W/b/xdg/data/share"
  mkdir -p "$BH"
  FA_AS=() FA_PRE=() FA_ENV=("HOME=$BH" "XDG_DATA_HOME=$BX")
  if [ "$MODULE_KIND" = ours ]; then
    local BD="$BX/tensorguard-pkcs11"
    _fa_b_list() { ( umask 000; _fa_list "$B" ) && _fa_slot "$B/L.out" 0 default "token state:   uninitialized"; }
    check "(b) XDG_DATA_HOME missing (umask 000): -L exits 0, slot 0 'default' uninitialized" _fa_b_list
    _fa_b_modes() {
      _fa_modes 700 "$W/b/xdg" "$W/b/xdg/data" "$BX" "$BD" "$BD/default" || return 1
      [ ! -e "$BH/.local" ] || { echo "created under HOME although XDG_DATA_HOME is set:"; find "$BH"; return 1; }
    }
    check "(b) \$XDG_DATA_HOME/tensorguard-pkcs11/default and every missing parent created 0700, nothing in HOME" _fa_b_modes
    check "(b) at once: --init-token --slot 0, --init-pin, --login keygen + -O" _fa_token_works 0 x "$B"
    _fa_b_audit() {
      _fa_modes 600 "$BD/audit.log" || return 1
      grep -q '"event":"object_generate"' "$BD/audit.log" || { echo "no object_generate record in $BD/audit.log"; return 1; }
    }
    check "(b) audit log \$XDG_DATA_HOME/tensorguard-pkcs11/audit.log: 0600 with the records" _fa_b_audit
  else
    _fa_na "(b) XDG_DATA_HOME missing" "our default store layout (SoftHSM2 does not read XDG_DATA_HOME)"
  fi

  # ------------------------------------------------------------ (c) a data directory the user cannot write
  local C="$W/c" CH="$W/c/home"
  mkdir -p "$CH"; chmod 755 "$W" "$C" "$CH"
  if [ "$(id -u)" = 0 ]; then
    chmod 711 "$WORK"                    # nobody must reach $CH (p11-kit does the same)
    FA_AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    local WHO=nobody
  else
    chmod 555 "$CH"                      # not root: the invoking user, a directory it cannot write
    FA_AS=()
    local WHO="$(id -un)"
  fi
  FA_PRE=()
  if [ "$MODULE_KIND" = ours ]; then
    if [ -e /nonexistent ]; then
      _fa_na "(c) HOME=/nonexistent as $WHO" "/nonexistent exists on this machine"
    else
      mkdir -p "$C/1"
      FA_ENV=("HOME=/nonexistent")
      _fa_c1() { _fa_list "$C/1" && _fa_slot "$C/1/L.out" 0 default "(token not recognized)" &&
        _fa_log "$C/1/L.err" /nonexistent/.local/share/tensorguard-pkcs11/default 13; }
      check "(c) as $WHO, HOME=/nonexistent: -L exits 0, 'default' not recognized, stderr names the store and errno 13" _fa_c1
      _fa_c1_refused() { _fa_refused 0 "$C/1" && { [ ! -e /nonexistent ] || { echo "/nonexistent was created"; return 1; }; }; }
      check "(c) as $WHO, HOME=/nonexistent: --init-token refused (CKR_TOKEN_NOT_RECOGNIZED), nothing created" _fa_c1_refused
    fi
    mkdir -p "$C/2"
    FA_ENV=("HOME=$CH")
    _fa_c2() { _fa_list "$C/2" && _fa_slot "$C/2/L.out" 0 default "(token not recognized)" &&
      _fa_log "$C/2/L.err" "$CH/.local/share/tensorguard-pkcs11/default" 13; }
    check "(c) as $WHO, HOME unwritable: -L exits 0, 'default' not recognized, stderr names the store and errno 13" _fa_c2
    _fa_c2_refused() { _fa_refused 0 "$C/2" &&
      { [ -z "$(ls -A "$CH")" ] || { echo "created in the unwritable HOME:"; find "$CH"; return 1; }; }; }
    check "(c) as $WHO, HOME unwritable: --init-token refused (CKR_TOKEN_NOT_RECOGNIZED), HOME still empty" _fa_c2_refused
  else
    local obs=""
    if [ "$MODULE_KIND" = softhsm ]; then
      mkdir -p "$C/2"
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$CH/tokens" >"$C/softhsm2.conf"
      chmod 644 "$C/softhsm2.conf"
      FA_ENV=("HOME=$CH" "SOFTHSM2_CONF=$C/softhsm2.conf")
      obs="; SoftHSM2 as $WHO with its token directory under an unwritable HOME: $(_fa_observe "$C/2")"
    fi
    _fa_na "(c) unwritable data directory as $WHO" "per-token failure with the slot kept is our rule (docs/abi.md)$obs"
  fi
  FA_AS=()
  [ "$(id -u)" = 0 ] || chmod 755 "$CH"

  # ------------------------------------------------------------ (d) stores on a read-only bind mount
  local D="$W/d" DH="$W/d/home" RO="$W/d/ro"
  mkdir -p "$DH" "$RO"
  FA_AS=() FA_PRE=() FA_ENV=("HOME=$DH")
  local can_ns=0
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
     unshare -m --propagation private sh -c "mount --bind '$RO' '$RO' && mount -o remount,bind,ro '$RO' && ! touch '$RO/probe' 2>/dev/null"; then
    can_ns=1
  fi
  rm -f "$RO/probe"
  if [ "$MODULE_KIND" != ours ]; then
    local obs=""
    if [ "$MODULE_KIND" = softhsm ] && [ $can_ns = 1 ]; then
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$RO" >"$D/softhsm2.conf"
      FA_ENV=("HOME=$DH" "SOFTHSM2_CONF=$D/softhsm2.conf"); _fa_ro_ns "$RO"
      obs="; SoftHSM2 with its token directory on a read-only bind mount: $(_fa_observe "$D")"
    fi
    _fa_na "(d) stores on a read-only bind mount" "needs our configuration (several tokens, one unusable)$obs"
  elif [ $can_ns = 0 ]; then
    _fa_na "(d) stores on a read-only bind mount" "needs root and unshare -m with a working bind mount (uid $(id -u))"
  else
    # The token in ro/existing is initialised before the mount, through a configuration with only that token.
    mkdir -p "$D/prep-home"
    _fa_config "$D/prep-home" <<EOF
tokens:
  - name: existing
    store: $RO/existing
    pin_kdf_cost: 10
EOF
    _fa_d_prep() { FA_ENV=("HOME=$D/prep-home"); _fa_token_works 0 before "$D"; }
    check "(d) a token initialised in ro/existing before the mount" _fa_d_prep
    _fa_config "$DH" <<EOF
tokens:
  - name: missing
    store: $RO/missing
    pin_kdf_cost: 10
  - name: existing
    store: $RO/existing
    pin_kdf_cost: 10
  - name: good
    store: $D/good
    pin_kdf_cost: 10
EOF
    FA_ENV=("HOME=$DH"); _fa_ro_ns "$RO"
    _fa_d_list() {
      _fa_list "$D" || return 1
      _fa_slot "$D/L.out" 0 missing "(token not recognized)" &&
        _fa_slot "$D/L.out" 1 existing "(token not recognized)" &&
        _fa_slot "$D/L.out" 2 good "token state:   uninitialized" &&
        _fa_log "$D/L.err" "$RO/missing" 30 &&
        { grep -F error "$D/L.err" | grep -qF "$RO/existing" || { echo "no error line naming $RO/existing"; return 1; }; }
    }
    check "(d) read-only bind: -L exits 0, 'missing' (EROFS logged) and 'existing' not recognized, 'good' slot 2" _fa_d_list
    _fa_d_refused() { _fa_refused 0 "$D" && { [ ! -e "$RO/missing" ] || { echo "$RO/missing was created"; return 1; }; }; }
    check "(d) read-only bind: --init-token on 'missing' refused (CKR_TOKEN_NOT_RECOGNIZED)" _fa_d_refused
    check "(d) read-only bind: 'good' at once: --init-token --slot 2, --init-pin, --login keygen + -O" \
      _fa_token_works 2 good "$D"
    _fa_d_gone() {
      ! grep -F " $RO " /proc/self/mountinfo || { echo "the read-only mount is still there"; return 1; }
      touch "$RO/probe" && rm "$RO/probe"
    }
    check "(d) no mount left behind (the namespace ended with each command)" _fa_d_gone
  fi
  FA_PRE=()

  # ------------------------------------------------------------ (e) a regular file in the way
  local E="$W/e" EH="$W/e/home"
  mkdir -p "$EH"
  echo "not a store" >"$E/store-file"
  echo "not a directory" >"$E/parent-file"
  FA_AS=() FA_PRE=() FA_ENV=("HOME=$EH")
  if [ "$MODULE_KIND" = ours ]; then
    _fa_config "$EH" <<EOF
tokens:
  - name: file-store
    store: $E/store-file
    pin_kdf_cost: 10
  - name: file-parent
    store: $E/parent-file/store
    pin_kdf_cost: 10
  - name: good
    store: $E/good
    pin_kdf_cost: 10
EOF
    _fa_e_list() {
      _fa_list "$E" || return 1
      _fa_slot "$E/L.out" 0 file-store "(token not recognized)" &&
        _fa_slot "$E/L.out" 1 file-parent "(token not recognized)" &&
        _fa_slot "$E/L.out" 2 good "token state:   uninitialized" &&
        _fa_log "$E/L.err" "$E/store-file" 20 && _fa_log "$E/L.err" "$E/parent-file/store" 20
    }
    check "(e) file in the way: -L exits 0, both not recognized with ENOTDIR logged, 'good' slot 2" _fa_e_list
    _fa_e_refused() {
      _fa_refused 1 "$E" || return 1
      [ "$(cat "$E/store-file")" = "not a store" ] && [ "$(cat "$E/parent-file")" = "not a directory" ] ||
        { echo "a file in the way was changed"; return 1; }
    }
    check "(e) file in the way: --init-token on 'file-parent' refused, the files untouched" _fa_e_refused
    check "(e) file in the way: 'good' at once: --init-token --slot 2, --init-pin, --login keygen + -O" \
      _fa_token_works 2 good "$E"
  else
    local obs=""
    if [ "$MODULE_KIND" = softhsm ]; then
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$E/store-file" >"$E/softhsm2.conf"
      FA_ENV=("HOME=$EH" "SOFTHSM2_CONF=$E/softhsm2.conf")
      obs="; SoftHSM2 with a regular file as its token directory: $(_fa_observe "$E")"
    fi
    _fa_na "(e) a regular file in the way" "needs our configuration (several tokens, one unusable)$obs"
  fi

  # ------------------------------------------------------------ (f) one store through a symlink
  local F="$W/f" FH="$W/f/home"
  mkdir -p "$FH"
  ln -s "$F/a" "$F/b"                    # dangling until the first token creates a
  FA_AS=() FA_PRE=() FA_ENV=("HOME=$FH")
  if [ "$MODULE_KIND" = ours ]; then
    _fa_config "$FH" <<EOF
tokens:
  - name: first
    store: $F/a
    pin_kdf_cost: 10
  - name: second
    store: $F/b
    pin_kdf_cost: 10
  - name: third
    store: $F/a/../a/
    pin_kdf_cost: 10
EOF
    _fa_f_list() {
      _fa_list "$F" || return 1
      _fa_slot "$F/L.out" 0 first "token state:   uninitialized" &&
        _fa_slot "$F/L.out" 1 second "(token not recognized)" &&
        _fa_slot "$F/L.out" 2 third "(token not recognized)" &&
        expect_grep "token 'second'.*already the store of token 'first'" "$F/L.err" &&
        expect_grep "token 'third'.*already the store of token 'first'" "$F/L.err"
    }
    check "(f) store shared through a symlink / '..': -L exits 0, 'first' usable, 'second' and 'third' not recognized" _fa_f_list
    check "(f) 'first' at once: --init-token --slot 0, --init-pin, --login keygen + -O" _fa_token_works 0 first "$F"
    _fa_f_after() {
      _fa_list "$F" && _fa_slot "$F/L.out" 0 first "token label        : first" &&
        _fa_slot "$F/L.out" 1 second "(token not recognized)" && _fa_refused 1 "$F"
    }
    check "(f) after init: 'second' still not recognized and refuses --init-token" _fa_f_after
  else
    _fa_na "(f) two tokens on one store via a symlink" "needs our configuration (SoftHSM2 has one token directory)"
  fi

  FA_AS=() FA_PRE=() FA_ENV=()
  suite_end
}
