# Suite: OpenSC pkcs11-tool against the module (sourced by run.sh).
# Every step is one check; values that an independent implementation can compute (SHA-256, AES-CBC with a
# known key, HMAC-SHA256 with a known key) are compared with coreutils/OpenSSL.

suite_pkcs11_tool() {
  suite_begin pkcs11-tool
  local W="$WORK/pkcs11-tool"
  token_env "$W"
  local LBL="conf-tool"
  local P="pkcs11-tool --module $MODULE"
  local T="$P --token-label $LBL"
  local U="$T --login --pin $USER_PIN"
  local IV=000102030405060708090a0b0c0d0e0f
  # A known key value (test vector for the OpenSSL cross-check).
  local KHEX=603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4
  echo -n "$KHEX" | xxd -r -p >"$W/known-aes.key"
  head -c 1000 /dev/urandom >"$W/plain.bin"          # not a multiple of the block size on purpose
  head -c 3000 /dev/urandom >"$W/data-object.bin"

  check "-I (show info)"                  $P -I
  check "-L (list slots)"                 $P -L
  check "--init-token --label --so-pin"   $P --slot-index 0 --init-token --label "$LBL" --so-pin "$SO_PIN"
  check "--init-pin (SO login)"           $T --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$USER_PIN"
  _t_list_tokens() { run_to "$W/T.out" $P -T && expect_grep "$LBL" "$W/T.out"; }
  check "-T (list token slots) shows the label" _t_list_tokens
  _t_mechs() {
    run_to "$W/M.out" $T -M || return 1
    local m; for m in AES-KEY-GEN GENERIC-SECRET-KEY-GEN AES-CBC-PAD AES-KEY-WRAP SHA256 SHA256-HMAC; do
      grep -q -- "$m" "$W/M.out" || { echo "mechanism $m not listed"; return 1; }
    done
  }
  check "-M (list mechanisms) has the ones used below" _t_mechs
  check "-O (list objects, logged in)"    $U -O
  _t_login() {
    $U -I || return 1
    run_to "$W/badpin.out" $T --login --pin 000000999 -O && { echo "login with a wrong PIN succeeded"; return 1; }
    expect_grep CKR_PIN_INCORRECT "$W/badpin.out"
  }
  check "--login (right PIN ok, wrong PIN CKR_PIN_INCORRECT)" _t_login
  _t_change_pin() {
    local NEW=24681357
    $T --login --pin "$USER_PIN" --change-pin --new-pin "$NEW" || return 1
    $T --login --pin "$NEW" -O >/dev/null || { echo "login with the new PIN failed"; return 1; }
    expect_fail $T --login --pin "$USER_PIN" -O >/dev/null || { echo "old PIN still accepted"; return 1; }
    $T --login --pin "$NEW" --change-pin --new-pin "$USER_PIN" || return 1
    $U -O >/dev/null
  }
  check "--change-pin (new PIN works, old refused, change back)" _t_change_pin
  # A wrapping key is only a wrapping key (separated roles, docs/threat-model.md): --usage-wrap alone, and
  # sensitive (pkcs11-tool asks CKA_SENSITIVE false unless told; a readable wrapping key is refused).
  check "--keygen --key-type AES:32 (wrapping key)" \
    $U --keygen --key-type AES:32 --label kek --id 01 --usage-wrap --sensitive
  if [ "$MODULE_KIND" = ours ]; then
    check "--keygen --usage-wrap without --sensitive refused (CKR_TEMPLATE_INCONSISTENT: a readable wrapping key)" \
      expect_fail $U --keygen --key-type AES:32 --label readable-kek --id 0e --usage-wrap
  fi
  if [ "$MODULE_KIND" = ours ]; then   # other modules (SoftHSM2) allow mixed roles
    check "--keygen --usage-wrap --usage-decrypt refused (CKR_TEMPLATE_INCONSISTENT: mixed roles)" \
      expect_fail $U --keygen --key-type AES:32 --label mixed --id 0f --usage-wrap --usage-decrypt
  fi
  check "--keygen --key-type AES:32 (extractable)" \
    $U --keygen --key-type AES:32 --label target --id 02 --extractable --usage-decrypt
  check "--keygen --key-type GENERIC:32" \
    $U --keygen --key-type GENERIC:32 --label hmac --id 03 --usage-sign
  check "--write-object data" \
    $U --write-object "$W/data-object.bin" --type data --label dobj --application-label conformance
  _t_read_data() {
    $U --read-object --type data --label dobj -o "$W/data-read.bin" && same_files "$W/data-object.bin" "$W/data-read.bin"
  }
  check "--read-object data (logged in) = written bytes" _t_read_data
  _t_read_public() {
    $T --read-object --type data --label dobj -o "$W/data-read2.bin" && same_files "$W/data-object.bin" "$W/data-read2.bin"
  }
  check "--read-object data (public object, no login)" _t_read_public
  check "--write-object secrkey AES:32 (known value)" \
    $U --write-object "$W/known-aes.key" --type secrkey --key-type AES:32 --label known-aes --id 04 --usage-decrypt --extractable
  # Only keys nobody can know may wrap: a key written with a value may not (CKR_TEMPLATE_INCONSISTENT).
  if [ "$MODULE_KIND" = ours ]; then
    check "--write-object secrkey --usage-wrap refused (known value may not wrap)" \
      expect_fail $U --write-object "$W/known-aes.key" --type secrkey --key-type AES:32 --label known-kek --id 06 --usage-wrap
  fi
  _t_read_secret() {
    $U --read-object --type secrkey --id 04 -o "$W/known-aes.read" && same_files "$W/known-aes.key" "$W/known-aes.read"
  }
  check "--read-object secrkey (non-sensitive) = written bytes" _t_read_secret
  _t_delete() {
    $U --write-object "$W/data-object.bin" --type data --label dgone || return 1
    $U --delete-object --type data --label dgone || return 1
    $U -O >"$W/O.after" 2>&1
    if grep -q "dgone" "$W/O.after"; then echo "deleted object still listed"; cat "$W/O.after"; return 1; fi
    expect_grep "dobj" "$W/O.after"
  }
  check "--delete-object data (gone from -O, others kept)" _t_delete
  _t_encdec() {
    $U --encrypt -m AES-CBC-PAD --id 02 --iv $IV -i "$W/plain.bin" -o "$W/cbc.ct" || return 1
    $U --decrypt -m AES-CBC-PAD --id 02 --iv $IV -i "$W/cbc.ct" -o "$W/cbc.pt" || return 1
    same_files "$W/plain.bin" "$W/cbc.pt"
  }
  check "--encrypt/--decrypt AES-CBC-PAD round trip" _t_encdec
  _t_cbc_openssl() {
    $U --encrypt -m AES-CBC-PAD --id 04 --iv $IV -i "$W/plain.bin" -o "$W/cbc-known.ct" || return 1
    openssl enc -aes-256-cbc -K "$KHEX" -iv "$IV" -in "$W/plain.bin" -out "$W/cbc-known.ossl" || return 1
    same_files "$W/cbc-known.ossl" "$W/cbc-known.ct"
  }
  check "AES-CBC-PAD ciphertext = OpenSSL (known key)" _t_cbc_openssl
  # --wrap/--unwrap: wrap the extractable key under the generated KEK, unwrap it as a new (sensitive) key, and
  # show that both keys encrypt identically. Ours refuses the unwrap pkcs11-tool asks by default (CKA_SENSITIVE
  # false): the wrapping key's unwrap template says sensitive (docs/threat-model.md, unwrap-as-non-sensitive).
  _t_wrap() {
    local mech="$1" newid="$2"
    $U --wrap -m "$mech" --id 01 --application-id 02 -o "$W/wrapped-$newid.bin" || return 1
    local n; n=$(stat -c %s "$W/wrapped-$newid.bin"); echo "wrapped length $n"
    [ "$n" = 40 ] || { echo "expected 40 bytes for a wrapped 32-byte key"; return 1; }
    if [ "$MODULE_KIND" = ours ]; then   # unwrapping as readable would hand out the value: refused
      expect_fail $U --unwrap -m "$mech" --id 01 --key-type AES: --application-id 3$newid \
        -i "$W/wrapped-$newid.bin" --extractable || { echo "unwrap as a non-sensitive key was not refused"; return 1; }
    fi
    $U --unwrap -m "$mech" --id 01 --key-type AES: --application-id "$newid" --application-label "unwrapped-$newid" \
       -i "$W/wrapped-$newid.bin" --extractable --sensitive || return 1
    $U --encrypt -m AES-CBC-PAD --id 02 --iv $IV -i "$W/plain.bin" -o "$W/orig.ct" || return 1
    $U --encrypt -m AES-CBC-PAD --id "$newid" --iv $IV -i "$W/plain.bin" -o "$W/unwrapped-$newid.ct" || return 1
    same_files "$W/orig.ct" "$W/unwrapped-$newid.ct"
  }
  check "--wrap/--unwrap -m AES-KEY-WRAP (unwrapped key encrypts the same)" _t_wrap AES-KEY-WRAP 12
  check "--wrap/--unwrap -m 0x210A (AES-KEY-WRAP-PAD)"                      _t_wrap 0x210A 13
  _t_hash() {
    $T --hash -m SHA256 -i "$W/plain.bin" -o "$W/sha256.bin" || return 1
    local got want; got=$(xxd -p -c 64 "$W/sha256.bin"); want=$(sha256sum "$W/plain.bin" | cut -d' ' -f1)
    echo "token: $got"; echo "sha256sum: $want"; [ "$got" = "$want" ]
  }
  check "--hash -m SHA256 = sha256sum" _t_hash
  _t_random() {
    $T --generate-random 64 -o "$W/r1.bin" && $T --generate-random 64 -o "$W/r2.bin" || return 1
    [ "$(stat -c %s "$W/r1.bin")" = 64 ] || { echo "wrong length"; return 1; }
    if cmp -s "$W/r1.bin" "$W/r2.bin"; then echo "two random draws are equal"; return 1; fi
  }
  check "--generate-random 64 (two draws differ)" _t_random
  _t_hmac() {
    $U --sign -m SHA256-HMAC --id 03 -i "$W/plain.bin" -o "$W/hmac.sig" || return 1
    $U --verify -m SHA256-HMAC --id 03 -i "$W/plain.bin" --signature-file "$W/hmac.sig" || return 1
    cp "$W/plain.bin" "$W/plain.tampered"; printf 'X' | dd of="$W/plain.tampered" bs=1 seek=10 conv=notrunc 2>/dev/null
    run_to "$W/verify-bad.out" $U --verify -m SHA256-HMAC --id 03 -i "$W/plain.tampered" --signature-file "$W/hmac.sig" \
      && { grep -q "Signature is valid" "$W/verify-bad.out" && { echo "tampered data verified"; return 1; }; }
    return 0
  }
  check "--sign/--verify -m SHA256-HMAC (tampered data rejected)" _t_hmac
  # HMAC against OpenSSL: a generated GENERIC key that may be read (not sensitive), its value read back with
  # --read-object, the token's SHA256-HMAC compared with OpenSSL's under that value. (pkcs11-tool 0.23 cannot
  # --write-object a GENERIC key: "Unknown key type: 0x10".)
  _t_hmac_openssl() {
    $U --keygen --key-type GENERIC:32 --id 05 --label known-hmac --usage-sign --extractable || return 1
    $U --read-object --type secrkey --id 05 -o "$W/known-hmac.read" || return 1
    [ "$(stat -c %s "$W/known-hmac.read")" = 32 ] || { echo "read back a key of the wrong length"; return 1; }
    $U --sign -m SHA256-HMAC --id 05 -i "$W/plain.bin" -o "$W/hmac-known.sig" || return 1
    local got want; got=$(xxd -p -c 64 "$W/hmac-known.sig")
    want=$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(xxd -p -c 64 "$W/known-hmac.read")" -r "$W/plain.bin" | cut -d' ' -f1)
    echo "token: $got"; echo "openssl: $want"; [ "$got" = "$want" ]
  }
  check "readable GENERIC key's SHA256-HMAC = OpenSSL" _t_hmac_openssl
  _t_list_keys() {
    run_to "$W/O.final" $U -O || return 1
    local l; for l in kek target hmac dobj known-aes unwrapped-12 unwrapped-13; do
      grep -q "$l" "$W/O.final" || { echo "object $l not listed"; return 1; }
    done
  }
  check "-O lists every object created above" _t_list_keys
  _t_test() { run_to "$W/test.out" $U --test || return 1; if grep -qi "error" "$W/test.out" && ! grep -q "No errors" "$W/test.out"; then return 1; fi; }
  check "--test" _t_test
  check "--test-fork" $U --test-fork
  _t_threads() {
    run_to "$W/threads.out" "$@" || return 1
    expect_grep "all threads have ended with CKR_OK" "$W/threads.out"
  }
  # The slot by index, not by --token-label: pkcs11-tool's main thread compares the label through
  # p11_utf8_to_local(), which returns a static buffer that the test threads' token printing (T0) overwrites at
  # the same time (a race inside pkcs11-tool: "No slot with token named ... found" now and then, on any module).
  # Index 0 is the slot the token was initialised in above.
  local S="$P --slot-index 0"
  check "--use-locking --test-threads (4 threads: info, slots, token)" \
    _t_threads $S --use-locking --test-threads P1GISLT0 --test-threads P1GISLT0 --test-threads P1GISLT0 --test-threads P1GISLT0 -L
  _t_threads_init() {
    local i; for i in 1 2 3; do
      echo "## round $i"
      _t_threads $S --test-threads ILGISLT0 --test-threads ILGISLT0 -L || return 1
    done
  }
  check "--test-threads racing C_Initialize(CKF_OS_LOCKING_OK) with the main thread (3 rounds)" _t_threads_init
  suite_end
}
