# Suite: NSS (Mozilla Network Security Services, Debian libnss3-tools) loading the module (sourced by run.sh).
#
# A fresh NSS database (certutil -N --empty-password) gets the module with `modutil -add`; then modutil, certutil
# and symkeyutil drive the token through NSS's own PKCS#11 layer (the one Firefox, Thunderbird and NSS-based
# servers use): module and token listed, login for -L / -K (right PIN, wrong PIN refused), an AES key generated
# on the token by NSS (symkeyutil -K, checked with pkcs11-tool too), listed and deleted, the PIN changed through
# NSS (modutil -changepw) and back, and the module removed again. Passwords go through -f / -pwfile files.
# NSS has no way here to exercise private keys or certificates on the token (the module has no RSA/EC), so
# `certutil -K` is expected to find no keys: it must still log in and check the token.

suite_nss() {
  suite_begin nss
  local W="$WORK/nss"
  token_env "$W"
  local LBL="conf-nss" NAME="conformance-module" DB="sql:$W/nssdb"
  local NEW_PIN=24681357
  mkdir -p "$W/nssdb"
  printf '%s\n' "$USER_PIN" >"$W/pin.txt"
  printf '%s\n' "$NEW_PIN" >"$W/newpin.txt"
  printf '%s\n' "00000099" >"$W/badpin.txt"
  chmod 600 "$W"/*.txt

  for t in certutil modutil symkeyutil; do
    command -v "$t" >/dev/null || { check "$t installed (Debian libnss3-tools; make deps)" false; suite_end; return 0; }
  done
  check "token initialised" token_init "$LBL" "$SO_PIN" "$USER_PIN"
  check "certutil -N --empty-password (fresh NSS db)" certutil -N -d "$DB" --empty-password
  _nss_add() { printf '\n' | modutil -add "$NAME" -libfile "$MODULE" -dbdir "$DB" -force; }
  check "modutil -add NAME -libfile MODULE -force" _nss_add

  _nss_list() {
    run_to "$W/list.out" modutil -list -dbdir "$DB" || return 1
    # The module's block: from "N. NAME" to the next module or the end.
    awk -v n="$NAME" '$0 ~ "^ *[0-9]+\\. "n"$" { on = 1; print; next } on && /^ *[0-9]+\. / { on = 0 } on' \
      "$W/list.out" >"$W/list-module.out"
    [ -s "$W/list-module.out" ] || { echo "module $NAME not listed"; return 1; }
    expect_grep "library name: $MODULE" "$W/list-module.out" || return 1
    expect_grep "status: loaded" "$W/list-module.out" || return 1
    grep -Eq "token: $LBL\$" "$W/list-module.out" || { echo "token $LBL not listed under $NAME"; return 1; }
    expect_grep "uri: pkcs11:token=$LBL;" "$W/list-module.out"
  }
  check "modutil -list shows the module (loaded) and its token" _nss_list
  _nss_list_one() {
    run_to "$W/list-one.out" modutil -list "$NAME" -dbdir "$DB" || return 1
    expect_grep "Token Name: $LBL" "$W/list-one.out" && expect_grep "Status: Enabled" "$W/list-one.out" &&
    expect_grep "Login Type: Login required" "$W/list-one.out" && expect_grep "User Pin: Initialized" "$W/list-one.out"
  }
  check "modutil -list NAME: token enabled, login required, user PIN initialised" _nss_list_one
  _nss_tokens() { run_to "$W/U.out" certutil -U -d "$DB" && expect_grep "token: $LBL\$" "$W/U.out"; }
  check "certutil -U lists the token" _nss_tokens

  check "certutil -L -h all (logs in to every token with the PIN file)" certutil -L -h all -d "$DB" -f "$W/pin.txt"
  # No private keys on the token: certutil -K logs in, looks, says "no keys found" and exits 255.
  _nss_keys() {
    local rc=0; run_to "$W/K.out" certutil -K -h "$LBL" -d "$DB" -f "$1" || rc=$?
    expect_grep "Checking token \"$LBL\"" "$W/K.out" || return 1
    if grep -Eq "SEC_ERROR_BAD_PASSWORD|Incorrect password" "$W/K.out"; then echo "(login refused)"; return 3; fi
    grep -q "no keys found" "$W/K.out" && { echo "(logged in, no private keys: rc $rc)"; return 0; }
    [ "$rc" = 0 ]
  }
  check "certutil -h TOKEN -K (login with the user PIN)" _nss_keys "$W/pin.txt"
  _nss_keys_bad() { _nss_keys "$W/badpin.txt"; [ $? = 3 ] || { echo "wrong PIN not refused"; return 1; }; }
  check "certutil -h TOKEN -K with a wrong PIN: SEC_ERROR_BAD_PASSWORD" _nss_keys_bad

  # Secret keys through NSS: symkeyutil generates with PK11_TokenKeyGen on the token.
  local SK=(-d "$DB" -h "$LBL" -f "$W/pin.txt")
  _nss_symkey_gen() {
    run_to "$W/symgen.out" symkeyutil -K -n nss-aes -t aes -s 32 "${SK[@]}" || return 1
    run_to "$W/symlist.out" symkeyutil -L "${SK[@]}" || return 1
    grep -Eq "^nss-aes +32 +256 +aes" "$W/symlist.out" || { echo "nss-aes (32 bytes, aes) not listed"; return 1; }
    # The same key seen by another consumer.
    run_to "$W/symkey-O.out" pkcs11-tool --module "$MODULE" --token-label "$LBL" --login --pin "$USER_PIN" -O --type secrkey ||
      return 1
    expect_aes_key "$W/symkey-O.out" nss-aes
  }
  check "symkeyutil -K -t aes -s 32 (AES key generated on the token by NSS), -L, pkcs11-tool -O" _nss_symkey_gen
  _nss_symkey_del() {
    run_to "$W/symdel.out" symkeyutil -D -n nss-aes "${SK[@]}" || return 1
    run_to "$W/symlist2.out" symkeyutil -L "${SK[@]}" || return 1
    if grep -q "^nss-aes " "$W/symlist2.out"; then echo "nss-aes still listed after -D"; return 1; fi
  }
  check "symkeyutil -D (key deleted through NSS)" _nss_symkey_del

  _nss_changepw() {
    modutil -changepw "$LBL" -pwfile "$W/pin.txt" -newpwfile "$W/newpin.txt" -dbdir "$DB" -force || return 1
    _nss_keys "$W/newpin.txt" || { echo "new PIN not accepted"; return 1; }
    _nss_keys "$W/pin.txt"; [ $? = 3 ] || { echo "old PIN still accepted"; return 1; }
    modutil -changepw "$LBL" -pwfile "$W/newpin.txt" -newpwfile "$W/pin.txt" -dbdir "$DB" -force || return 1
    _nss_keys "$W/pin.txt"
  }
  check "modutil -changepw (new PIN works, old refused, change back)" _nss_changepw

  _nss_delete() {
    printf '\n' | modutil -delete "$NAME" -dbdir "$DB" -force || return 1
    run_to "$W/list-after.out" modutil -list -dbdir "$DB" || return 1
    if grep -q "$NAME" "$W/list-after.out"; then echo "module still listed after -delete"; return 1; fi
  }
  check "modutil -delete NAME (module gone from -list)" _nss_delete
  suite_end
}
