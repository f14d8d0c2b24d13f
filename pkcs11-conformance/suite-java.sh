# Suite: Java's SunPKCS11 provider (Debian default-jdk-headless) against the module (sourced by run.sh).
#
# A provider configuration (name, library, slotListIndex) for the fresh token; `keytool -list -storetype PKCS11`
# logs in and lists the token's keystore; java/TokenAes.java (compiled with javac here) generates an AES-256 key
# with KeyGenerator "AES" on the provider (extractable through the configuration's `attributes(generate, ...)`),
# does AES/GCM/NoPadding encrypt + decrypt (and the same with SunJCE and the key's value), stores it as a token key through the PKCS11 KeyStore and uses that; a second JVM finds
# the token key and decrypts the first one's ciphertext (a flipped tag bit must fail); keytool lists and deletes
# the entry. The SunPKCS11 debug output is in the check logs with JAVA_PKCS11_DEBUG=1.

suite_java() {
  suite_begin java
  local W="$WORK/java"
  token_env "$W"
  local LBL="conf-java" CONF="$W/sunpkcs11.cfg" CLS="$W/classes"
  local t; for t in java javac keytool; do
    command -v "$t" >/dev/null || { check "$t installed (Debian default-jdk-headless; make deps)" false; suite_end; return 0; }
  done
  check "token initialised" token_init "$LBL" "$SO_PIN" "$USER_PIN"
  {
    echo "# SunPKCS11 configuration for the conformance token (written by pkcs11-conformance/suite-java.sh)"
    echo "name = Conformance"
    echo "library = $MODULE"
    echo "slotListIndex = 0"
    echo "# generated AES keys readable, so that TokenAes can check the GCM output against SunJCE"
    echo "attributes(generate, CKO_SECRET_KEY, CKK_AES) = {"
    echo "  CKA_EXTRACTABLE = true"
    echo "  CKA_SENSITIVE = false"
    echo "}"
  } >"$CONF"
  local JOPTS=(-Djava.security.egd=file:/dev/urandom)
  [ "${JAVA_PKCS11_DEBUG:-0}" = 1 ] && JOPTS+=(-Djava.security.debug=sunpkcs11,pkcs11)
  local KT=(keytool -J"${JOPTS[0]}" -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11
            -providerArg "$CONF" -storepass "$USER_PIN")

  _java_list_empty() {
    echo "--- $CONF"; cat "$CONF"
    run_to "$W/list0.out" "${KT[@]}" -list || return 1
    expect_grep "Keystore type: PKCS11" "$W/list0.out" && expect_grep "Keystore provider: SunPKCS11-Conformance" "$W/list0.out" &&
    expect_grep "Your keystore contains 0 entries" "$W/list0.out"
  }
  check "keytool -list -storetype PKCS11 (login, empty token)" _java_list_empty
  _java_bad_pin() {
    run_to "$W/badpin.out" keytool -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 \
      -providerArg "$CONF" -storepass 00000099 -list -v && { echo "keytool accepted a wrong PIN"; return 1; }
    expect_grep "CKR_PIN_INCORRECT" "$W/badpin.out"
  }
  check "keytool -list with a wrong PIN: CKR_PIN_INCORRECT" _java_bad_pin
  _java_build() { mkdir -p "$CLS" && javac -Xlint:all -Werror -d "$CLS" "$HERE/java/TokenAes.java"; }
  check "javac java/TokenAes.java" _java_build
  check "TokenAes gen: KeyGenerator AES on the provider, AES/GCM round trips, stored as token key" \
    java "${JOPTS[@]}" -cp "$CLS" TokenAes gen "$CONF" "$USER_PIN" "$W"
  check "TokenAes check: a new JVM finds the token key, decrypts, rejects a flipped tag bit" \
    java "${JOPTS[@]}" -cp "$CLS" TokenAes check "$CONF" "$USER_PIN" "$W"
  _java_list_key() {
    run_to "$W/list1.out" "${KT[@]}" -list || return 1
    expect_grep "Your keystore contains 1 entry" "$W/list1.out" && expect_grep "^java-aes, SecretKeyEntry" "$W/list1.out" || return 1
    run_to "$W/O.out" pkcs11-tool --module "$MODULE" --token-label "$LBL" --login --pin "$USER_PIN" -O --type secrkey || return 1
    expect_aes_key "$W/O.out" java-aes
  }
  check "keytool -list shows java-aes (SecretKeyEntry); pkcs11-tool -O sees it" _java_list_key
  _java_delete() {
    "${KT[@]}" -delete -alias java-aes || return 1
    run_to "$W/list2.out" "${KT[@]}" -list && expect_grep "Your keystore contains 0 entries" "$W/list2.out"
  }
  check "keytool -delete -alias java-aes (token key destroyed)" _java_delete
  suite_end
}
