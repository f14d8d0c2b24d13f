# Suite: the p11-kit RPC path (sourced by run.sh): `p11-kit server` exports the token on a unix socket and
# p11-kit-client.so (Debian p11-kit-modules) is the module a remote consumer loads — the way one token is shared
# with other hosts (the socket forwarded over ssh). Everything below goes through the client module: list,
# mechanisms, login (right and wrong PIN), AES key generation, encrypt/decrypt (AES-ECB; AES-CBC-PAD as well when
# the client offers it — p11-kit 0.24's RPC cannot carry an IV, so Debian 12's does not, and the run says so),
# a known key written remotely whose ciphertext must equal OpenSSL's, HMAC, digest, a data object, -O; the module
# loaded directly must see the same objects, decrypt/verify what the remote path produced and see remote deletes.
# Finally the server is stopped by its PID: it exits, the socket is gone, the client lists no token.

P11KIT_CLIENT="${P11KIT_CLIENT:-/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so}"

suite_p11_kit_rpc() {
  suite_begin p11-kit-rpc
  local W="$WORK/p11-kit-rpc"
  token_env "$W"
  local LBL="conf-rpc" SOCK="$W/p11-kit.sock" SRV_PID=""
  local IV=000102030405060708090a0b0c0d0e0f
  local KHEX=603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4
  [ -f "$P11KIT_CLIENT" ] || { check "p11-kit-client.so present ($P11KIT_CLIENT; Debian p11-kit-modules)" false; suite_end; return 0; }
  command -v p11-kit >/dev/null || { check "p11-kit installed" false; suite_end; return 0; }
  echo -n "$KHEX" | xxd -r -p >"$W/known-aes.key"
  head -c 1024 /dev/urandom >"$W/plain.bin"            # whole AES blocks (ECB)
  head -c 2000 /dev/urandom >"$W/data.bin"

  check "token initialised" token_init "$LBL" "$SO_PIN" "$USER_PIN"

  # The server: foreground (-f) in the background of this shell, so its PID is ours to stop; -s prints the
  # address in Bourne shell syntax. Only our token is exported (a token URI, not "pkcs11:").
  p11-kit server -f -s -n "$SOCK" --provider "$MODULE" "pkcs11:token=$LBL" >"$W/server.out" 2>&1 </dev/null &
  SRV_PID=$!
  CLEANUP_PIDS+=("$SRV_PID")
  _rpc_up() {
    local i; for i in $(seq 1 100); do [ -S "$SOCK" ] && break; kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    echo "--- server output"; cat "$W/server.out"
    kill -0 "$SRV_PID" 2>/dev/null || { echo "server (pid $SRV_PID) exited"; return 1; }
    [ -S "$SOCK" ] || { echo "no socket at $SOCK after 10 s"; return 1; }
    expect_grep "^P11_KIT_SERVER_ADDRESS=unix:path=$SOCK; export P11_KIT_SERVER_ADDRESS;" "$W/server.out"
  }
  check "p11-kit server --provider MODULE pkcs11:token=LABEL on a unix socket" _rpc_up
  export P11_KIT_SERVER_ADDRESS="unix:path=$SOCK"

  local C="pkcs11-tool --module $P11KIT_CLIENT"
  local T="$C --token-label $LBL"
  local U="$T --login --pin $USER_PIN"
  local D="pkcs11-tool --module $MODULE --token-label $LBL --login --pin $USER_PIN"
  _rpc_list() {
    run_to "$W/L.out" $C -L || return 1
    expect_grep "token label *: $LBL\$" "$W/L.out" || return 1
    local n; n=$(grep -c "token label" "$W/L.out"); [ "$n" = 1 ] || { echo "expected exactly one token, got $n"; return 1; }
  }
  check "client: -L lists the exported token (only it)" _rpc_list
  _rpc_mechs() {
    run_to "$W/M.out" $T -M || return 1
    local m; for m in AES-KEY-GEN AES-ECB SHA256-HMAC SHA256; do
      grep -q -- "^ *$m," "$W/M.out" || { echo "mechanism $m not listed"; return 1; }
    done
  }
  check "client: -M lists AES-KEY-GEN, AES-ECB, SHA256-HMAC, SHA256" _rpc_mechs
  _rpc_login() {
    $U -I >/dev/null || return 1
    run_to "$W/badpin.out" $T --login --pin 00000099 -O && { echo "login with a wrong PIN succeeded"; return 1; }
    expect_grep CKR_PIN_INCORRECT "$W/badpin.out"
  }
  check "client: --login (right PIN ok, wrong PIN CKR_PIN_INCORRECT)" _rpc_login
  check "client: --keygen --key-type AES:32" $U --keygen --key-type AES:32 --label rpc-aes --id 21 --usage-decrypt
  # p11-kit's RPC carries only the mechanism parameters it knows how to serialise: p11-kit 0.24 (Debian 12) has
  # none for IVs, so its client does not offer AES-CBC(-PAD)/GCM at all (0.25 does). AES-ECB takes no parameter.
  _rpc_ecb() {
    $U --encrypt -m AES-ECB --id 21 -i "$W/plain.bin" -o "$W/ecb.ct" || return 1
    $U --decrypt -m AES-ECB --id 21 -i "$W/ecb.ct" -o "$W/ecb.pt" || return 1
    same_files "$W/plain.bin" "$W/ecb.pt" || return 1
    $D --decrypt -m AES-ECB --id 21 -i "$W/ecb.ct" -o "$W/ecb.direct.pt" || return 1
    echo "module directly decrypted the remote ciphertext:"; same_files "$W/plain.bin" "$W/ecb.direct.pt"
  }
  check "client: --encrypt/--decrypt AES-ECB round trip; the module directly decrypts it too" _rpc_ecb
  if grep -q "^ *AES-CBC-PAD," "$W/M.out" 2>/dev/null; then
    _rpc_cbc() {
      $U --encrypt -m AES-CBC-PAD --id 21 --iv $IV -i "$W/plain.bin" -o "$W/cbc.ct" || return 1
      $U --decrypt -m AES-CBC-PAD --id 21 --iv $IV -i "$W/cbc.ct" -o "$W/cbc.pt" || return 1
      same_files "$W/plain.bin" "$W/cbc.pt" || return 1
      $D --decrypt -m AES-CBC-PAD --id 21 --iv $IV -i "$W/cbc.ct" -o "$W/cbc.direct.pt" || return 1
      same_files "$W/plain.bin" "$W/cbc.direct.pt"
    }
    check "client: --encrypt/--decrypt AES-CBC-PAD round trip; the module directly decrypts it too" _rpc_cbc
  else
    echo "  skip  p11-kit-rpc: AES-CBC-PAD not offered by p11-kit-client (p11-kit-modules $(dpkg-query -W -f '${Version}' p11-kit-modules 2>/dev/null || echo "?")): its RPC cannot carry an IV"
    SUITE_SKIPPED=$((SUITE_SKIPPED + 1))
  fi
  # Several consumers share the token at once (the point of exporting it): 4 clients in parallel, 3 rounds each.
  _rpc_parallel() {
    local i pids=() rc=0
    for i in 1 2 3 4; do
      (
        head -c 4096 /dev/urandom >"$W/par$i.pt"
        for r in 1 2 3; do
          $U --encrypt -m AES-ECB --id 21 -i "$W/par$i.pt" -o "$W/par$i.ct" >"$W/par$i.log" 2>&1 &&
          $U --decrypt -m AES-ECB --id 21 -i "$W/par$i.ct" -o "$W/par$i.back" >>"$W/par$i.log" 2>&1 &&
          cmp -s "$W/par$i.pt" "$W/par$i.back" || { echo "client $i round $r failed:"; cat "$W/par$i.log"; exit 1; }
        done
      ) &
      pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    [ $rc = 0 ] && echo "4 clients x 3 rounds: all round trips equal"
    return $rc
  }
  if [ "$MODULE_KIND" = softhsm ]; then
    # SoftHSM2's file object store is not safe for concurrent processes: the same round trips fail without
    # p11-kit too ("No slot with token named ...", CKR_GENERAL_ERROR), and p11-kit server forks per connection.
    echo "  skip  p11-kit-rpc: parallel clients (SoftHSM2's file token is not safe for concurrent processes)"
    SUITE_SKIPPED=$((SUITE_SKIPPED + 1))
  else
    check "client: 4 clients in parallel, AES-ECB round trips through one server" _rpc_parallel
  fi
  _rpc_known() {
    $U --write-object "$W/known-aes.key" --type secrkey --key-type AES:32 --label rpc-known --id 22 --usage-decrypt || return 1
    $U --encrypt -m AES-ECB --id 22 -i "$W/plain.bin" -o "$W/known.ct" || return 1
    openssl enc -aes-256-ecb -nopad -K "$KHEX" -in "$W/plain.bin" -out "$W/known.ossl" || return 1
    same_files "$W/known.ossl" "$W/known.ct"
  }
  check "client: known AES key written remotely; its AES-ECB ciphertext = OpenSSL" _rpc_known
  _rpc_hmac() {
    $U --keygen --key-type GENERIC:32 --label rpc-hmac --id 23 --usage-sign || return 1
    $U --sign -m SHA256-HMAC --id 23 -i "$W/plain.bin" -o "$W/hmac.sig" || return 1
    $D --verify -m SHA256-HMAC --id 23 -i "$W/plain.bin" --signature-file "$W/hmac.sig" >"$W/verify.out" 2>&1 || { cat "$W/verify.out"; return 1; }
    cat "$W/verify.out"; expect_grep "Signature is valid" "$W/verify.out"
  }
  check "client: GENERIC key, SHA256-HMAC sign remotely; the module directly verifies" _rpc_hmac
  _rpc_hash() {
    $T --hash -m SHA256 -i "$W/plain.bin" -o "$W/sha256.bin" || return 1
    local got want; got=$(xxd -p -c 64 "$W/sha256.bin"); want=$(sha256sum "$W/plain.bin" | cut -d' ' -f1)
    echo "remote: $got"; echo "sha256sum: $want"; [ "$got" = "$want" ]
  }
  check "client: --hash -m SHA256 = sha256sum" _rpc_hash
  _rpc_data() {
    $U --write-object "$W/data.bin" --type data --label rpc-data || return 1
    $U --read-object --type data --label rpc-data -o "$W/data.read" || return 1
    same_files "$W/data.bin" "$W/data.read"
  }
  check "client: --write-object / --read-object data" _rpc_data
  _rpc_objects() {
    run_to "$W/O.out" $U -O || return 1
    expect_aes_key "$W/O.out" rpc-aes && expect_aes_key "$W/O.out" rpc-known && expect_grep "rpc-hmac" "$W/O.out" &&
      expect_grep "rpc-data" "$W/O.out" || return 1
    run_to "$W/O.direct" $D -O || return 1
    expect_aes_key "$W/O.direct" rpc-aes && expect_aes_key "$W/O.direct" rpc-known && expect_grep "rpc-data" "$W/O.direct"
  }
  check "client: -O lists the objects made remotely; the module directly lists them too" _rpc_objects
  _rpc_delete() {
    $U --delete-object --type data --label rpc-data || return 1
    run_to "$W/O.after" $D -O || return 1
    if grep -q "rpc-data" "$W/O.after"; then echo "rpc-data still there"; return 1; fi
  }
  check "client: --delete-object (gone for the module directly)" _rpc_delete

  _rpc_stop() {
    kill "$SRV_PID" || return 1
    # p11-kit 0.24's server can miss a SIGTERM that arrives just before it polls (seen with SoftHSM2 after
    # parallel clients): repeat it each second.
    local i; for i in $(seq 1 50); do
      kill -0 "$SRV_PID" 2>/dev/null || break
      ((i % 10)) || { echo "(SIGTERM again after $((i / 10)) s)"; kill "$SRV_PID" 2>/dev/null; }
      sleep 0.1
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then echo "server $SRV_PID still running 5 s after SIGTERM"; kill -9 "$SRV_PID"; return 1; fi
    if [ -e "$SOCK" ]; then echo "socket $SOCK left behind"; return 1; fi
    # The client without a server: lists no token, and does not hang.
    timeout 20 $C -L >"$W/L.after" 2>&1; local rc=$?
    cat "$W/L.after"; [ "$rc" != 124 ] || { echo "client hung without a server"; return 1; }
    if grep -q "token label *: $LBL" "$W/L.after"; then echo "token still listed without a server"; return 1; fi
  }
  check "server stopped by PID: exits, removes the socket; client lists nothing" _rpc_stop
  wait "$SRV_PID" 2>/dev/null || true
  unset P11_KIT_SERVER_ADDRESS
  suite_end
}
