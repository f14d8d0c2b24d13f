#!/usr/bin/env bash
# The demo (`make demo`, which builds first): a fresh token of TensorGuard PKCS#11, driven by OpenSC's
# pkcs11-tool — init token and PIN, an AES key, a data object, then -L -T -O -M — and an N2HE key with an
# encrypt/decrypt round trip through tg-pkcs11, and a federated round through the Python package.
#
#   BACKEND=local    (default, `make demo`) the embedded `local` backend; token in out/demo/
#   BACKEND=softhsm  (`make demo BACKEND=softhsm`) the token's root key wrapped by an AES KEK on a SoftHSM2
#                    token; everything in out/demo-softhsm/: softhsm2-util, `tg-pkcs11 backend create-kek`,
#                    `tg-pkcs11 backend check`, the same walk-through, then `tg-pkcs11 rotate-kek` to a second KEK.
#
# The PINs below are DEMO VALUES for a throwaway token; never use them for anything real.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${MODULE:-$ROOT/.build/release/libtensorguard-pkcs11.so}"
CLI="${CLI:-$ROOT/.build/release/tg-pkcs11}"
BACKEND="${BACKEND:-local}"
LABEL=demo
DEMO_SO_PIN=12345678     # demo value
DEMO_PIN=1234            # demo value
SOFTHSM_MODULE="${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
HSM_LABEL=tg-demo-hsm
DEMO_HSM_SO_PIN=87654321 # demo value (SoftHSM2 token)
DEMO_HSM_PIN=5678        # demo value (SoftHSM2 token: the backend PIN our module logs in with)

case "$BACKEND" in
  local)   DEMO="$ROOT/out/demo" ;;
  softhsm) DEMO="$ROOT/out/demo-softhsm" ;;
  *) echo "demo: BACKEND must be local or softhsm, not '$BACKEND'" >&2; exit 2 ;;
esac

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run()  { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }
fail() { echo "demo: FAILED: $*" >&2; [ -s "$DEMO/module.log" ] && { echo "--- module log:" >&2; tail -n 30 "$DEMO/module.log" >&2; }; exit 1; }

[ -f "$MODULE" ] || fail "$MODULE not built (run 'make build')"
command -v pkcs11-tool >/dev/null || fail "pkcs11-tool missing (run 'make deps')"
if [ "$BACKEND" = softhsm ]; then
  [ -f "$SOFTHSM_MODULE" ] || fail "$SOFTHSM_MODULE missing (Debian package softhsm2; run 'make deps')"
  command -v softhsm2-util >/dev/null || fail "softhsm2-util missing (Debian package softhsm2)"
  [ -x "$CLI" ] || fail "$CLI not built (run 'make build')"
fi

# The token's backend section of the module configuration ($1 = KEK label, softhsm only).
backend_section() {
  if [ "$BACKEND" = softhsm ]; then
    printf '    backend:\n      kind: pkcs11\n      module: %s\n      token_label: %s\n      pin_env: TG_DEMO_HSM_PIN\n      kek_label: %s\n' \
      "$SOFTHSM_MODULE" "$HSM_LABEL" "$1"
  else
    printf '    backend:\n      kind: local\n'
  fi
}
write_config() {
  {
    echo "# TensorGuard PKCS#11 demo configuration (written by scripts/demo.sh, BACKEND=$BACKEND)"
    printf 'log:\n  level: warning\n  file: %s\naudit:\n  file: %s\ntokens:\n  - name: %s\n    store: %s\n' \
      "$DEMO/module.log" "$DEMO/audit.log" "$LABEL" "$DEMO/store"
    backend_section "$1"
    printf '    max_pin_retries: 10\n    pin_kdf_cost: 15\n'
  } >"$DEMO/config.yaml"
  chmod 600 "$DEMO/config.yaml"
}

step "Fresh demo token in ${DEMO#"$ROOT"/}/ (backend: $BACKEND)"
rm -rf "$DEMO"; mkdir -p "$DEMO/store"
write_config demo-kek-1
export TENSORGUARD_PKCS11_CONF="$DEMO/config.yaml"
echo "config: $TENSORGUARD_PKCS11_CONF (mode 600); store: $DEMO/store"
echo "demo PINs (demo values only): SO PIN $DEMO_SO_PIN, user PIN $DEMO_PIN"
T=("$CLI")

if [ "$BACKEND" = softhsm ]; then
  step "A SoftHSM2 token as the key-wrapping backend (${DEMO#"$ROOT"/}/softhsm/)"
  mkdir -p "$DEMO/softhsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$DEMO/softhsm/tokens" \
    >"$DEMO/softhsm/softhsm2.conf"
  export SOFTHSM2_CONF="$DEMO/softhsm/softhsm2.conf"
  export TG_DEMO_HSM_PIN="$DEMO_HSM_PIN"   # the config names the variable (pin_env), never the PIN itself
  echo "SOFTHSM2_CONF=$SOFTHSM2_CONF; backend PIN in \$TG_DEMO_HSM_PIN (demo value $DEMO_HSM_PIN)"
  run softhsm2-util --init-token --free --label "$HSM_LABEL" --so-pin "$DEMO_HSM_SO_PIN" --pin "$DEMO_HSM_PIN" \
    || fail "softhsm2-util --init-token"
  echo "backend section of token '$LABEL' in config.yaml:"
  backend_section demo-kek-1

  step "Create the KEK on the SoftHSM2 token (AES-256, sensitive, non-extractable)"
  run "${T[@]}" backend create-kek --token "$LABEL" --label demo-kek-1 || fail "tg-pkcs11 backend create-kek"

  step "Check the backend: token, PIN, KEK properties, wrap round trip"
  run "${T[@]}" backend check --token "$LABEL" || fail "tg-pkcs11 backend check"
fi

P=(pkcs11-tool --module "$MODULE")
step "Initialise the token and the user PIN"
run "${P[@]}" --slot-index 0 --init-token --label "$LABEL" --so-pin "$DEMO_SO_PIN" || fail "init-token"
run "${P[@]}" --token-label "$LABEL" --login --login-type so --so-pin "$DEMO_SO_PIN" --init-pin --pin "$DEMO_PIN" || fail "init-pin"

step "Generate an AES-256 key on the token"
run "${P[@]}" --token-label "$LABEL" --login --pin "$DEMO_PIN" --keygen --key-type AES:32 --label demo-aes --id 01 || fail "keygen"

step "Write a data object"
echo "Hello from the TensorGuard PKCS#11 demo" >"$DEMO/hello.txt"
run "${P[@]}" --token-label "$LABEL" --login --pin "$DEMO_PIN" --write-object "$DEMO/hello.txt" --type data \
    --label demo-data --application-label tensorguard-demo || fail "write-object"

step "Slots (-L)";        run "${P[@]}" -L || fail "-L"
step "Tokens (-T)";       run "${P[@]}" -T || fail "-T"
step "Objects (-O)";      run "${P[@]}" --token-label "$LABEL" --login --pin "$DEMO_PIN" -O || fail "-O"
step "Mechanisms (-M)";   run "${P[@]}" --token-label "$LABEL" -M || fail "-M"

# ------------------------------------------------------------------------------------------------------------
# N2HE STEP — key generate / encrypt / decrypt through tg-pkcs11. Runs only when the CLI is built and its help
# lists `encrypt`; until then the demo says it was skipped. (Options as in Sources/tg-pkcs11; adjust here if
# the CLI changes.)
# ------------------------------------------------------------------------------------------------------------
step "N2HE key, encrypt and decrypt (tg-pkcs11)"
if [ -x "$CLI" ] && "$CLI" --help 2>/dev/null | grep -q encrypt; then
  export TG_DEMO_PIN="$DEMO_PIN"
  common=(--module "$MODULE" --token "$LABEL" --pin-env TG_DEMO_PIN)
  run "${T[@]}" key generate "${common[@]}" --label demo-n2he --dimension 1024 --modulus-bits 32 || fail "tg-pkcs11 key generate"
  values='[1, 2, 3, 42, 65535, -1]'
  encrypt_to() {
    run "${T[@]}" encrypt "${common[@]}" --key demo-n2he --format lwe2 --values "$values" --output "$1" \
      || fail "tg-pkcs11 encrypt"
    echo "ciphertext: $1 ($(stat -c %s "$1") bytes)"
  }
  # The key's decryption rule is seeded-once (docs/n2he.md): each ciphertext's seed decrypts once.
  decrypt_and_check() {
    printf '$ %s\n' "${T[*]} decrypt ${common[*]} --key demo-n2he --input $1"
    got="$("${T[@]}" decrypt "${common[@]}" --key demo-n2he --input "$1")" || fail "tg-pkcs11 decrypt"
    echo "$got"
    # -1 comes back as t-1 (plaintexts are reduced mod t = 2^16).
    [ "$(echo "$got" | tr -d ' \n')" = "$2" ] || fail "decrypted values differ: $got, expected $2"
    echo "round trip ok: $values -> LWE2 -> $2 (mod t = 2^16)"
  }
  encrypt_to "$DEMO/demo.lwe2"
  decrypt_and_check "$DEMO/demo.lwe2" "[1,2,3,42,65535,65535]"
  echo "\$ ${T[*]} decrypt ... --input $DEMO/demo.lwe2   # again: refused, the seed was spent"
  if "${T[@]}" decrypt "${common[@]}" --key demo-n2he --input "$DEMO/demo.lwe2" 2>&1; then
    fail "a second decryption of one seed was accepted"
  fi
  step "Aggregate without the key: a seeded sum of two updates (tg-pkcs11 add), decrypted once"
  encrypt_to "$DEMO/update-a.lwe2"
  encrypt_to "$DEMO/update-b.lwe2"
  run "${T[@]}" add --input "$DEMO/update-a.lwe2" --input "$DEMO/update-b.lwe2" --output "$DEMO/sum.lws1" || fail "tg-pkcs11 add"
  decrypt_and_check "$DEMO/sum.lws1" "[2,4,6,84,65534,65534]"
  step "Objects after the N2HE step (-O)"
  run "${P[@]}" --token-label "$LABEL" --login --pin "$DEMO_PIN" -O || fail "-O"

  if [ "$BACKEND" = softhsm ]; then
    step "Rotate the KEK: re-wrap the root key under a second SoftHSM2 key (one wrap; objects untouched)"
    run "${T[@]}" backend create-kek --token "$LABEL" --label demo-kek-2 || fail "tg-pkcs11 backend create-kek"
    export TG_DEMO_SO_PIN="$DEMO_SO_PIN"
    run "${T[@]}" rotate-kek --token "$LABEL" --new-kek label:demo-kek-2 --so-pin-env TG_DEMO_SO_PIN \
      || fail "tg-pkcs11 rotate-kek"
    echo "(updating kek_label to demo-kek-2 in $DEMO/config.yaml, as asked above)"
    write_config demo-kek-2
    run "${T[@]}" backend check --token "$LABEL" >/dev/null || fail "tg-pkcs11 backend check after the rotation"
    echo "backend check after the rotation: healthy"
    encrypt_to "$DEMO/after-rotation.lwe2"
    decrypt_and_check "$DEMO/after-rotation.lwe2" "[1,2,3,42,65535,65535]"
    step "Objects on the SoftHSM2 backend token: the two KEKs (no value readable) and the token's anchor (docs/storage-format.md, Rollback)"
    run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$HSM_LABEL" --login --pin "$DEMO_HSM_PIN" -O \
      || fail "pkcs11-tool -O on SoftHSM2"
  fi

  step "The audit trail: every step above, hash-chained and checkpointed under the token's audit key"
  run "${T[@]}" audit show --token "$LABEL" || fail "tg-pkcs11 audit show"
  run "${T[@]}" audit verify --token "$LABEL" --pin-env TG_DEMO_PIN || fail "tg-pkcs11 audit verify"

  step "A federated round from Python (examples/federated_round.py, the tensorguard-pkcs11 package)"
  # Ten clients encrypt float32 updates inside the token, an aggregator sums them without a key, the key holder
  # decrypts only the sum (docs/python.md).
  run python3 "$ROOT/examples/federated_round.py" --module "$MODULE" --token "$LABEL" --pin-env TG_DEMO_PIN \
    --key demo-fl-round || fail "examples/federated_round.py"
else
  [ "$BACKEND" = softhsm ] && fail "tg-pkcs11 is not built or does not support encrypt"
  echo "(skipped: tg-pkcs11 is not built yet or does not support encrypt)"
fi

step "Demo done"
echo "token store: $DEMO/store   config: $DEMO/config.yaml   module log: $DEMO/module.log   audit log: $DEMO/audit.log"
if [ "$BACKEND" = softhsm ]; then
  echo "backend: SoftHSM2 token '$HSM_LABEL' (SOFTHSM2_CONF=$DEMO/softhsm/softhsm2.conf), root key wrapped by demo-kek-2"
fi
