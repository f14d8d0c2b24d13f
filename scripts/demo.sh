#!/usr/bin/env bash
# The demo (`make demo`, which builds first): a fresh token of TensorGuard PKCS#11 in out/demo/, driven
# by OpenSC's pkcs11-tool — init token and PIN, an AES key, a data object, then -L -T -O -M — and, once
# the CLI supports it, an N2HE key with an encrypt/decrypt round trip through tg-pkcs11.
#
# The PINs below are DEMO VALUES for a throwaway token; never use them for anything real.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${MODULE:-$ROOT/.build/release/libtensorguard-pkcs11.so}"
CLI="${CLI:-$ROOT/.build/release/tg-pkcs11}"
DEMO="$ROOT/out/demo"
LABEL=demo
DEMO_SO_PIN=12345678     # demo value
DEMO_PIN=1234            # demo value

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run()  { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }
fail() { echo "demo: FAILED: $*" >&2; [ -s "$DEMO/module.log" ] && { echo "--- module log:" >&2; tail -n 30 "$DEMO/module.log" >&2; }; exit 1; }

[ -f "$MODULE" ] || fail "$MODULE not built (run 'make build')"
command -v pkcs11-tool >/dev/null || fail "pkcs11-tool missing (run 'make deps')"

step "Fresh demo token in ${DEMO#"$ROOT"/}/"
rm -rf "$DEMO"; mkdir -p "$DEMO/store"
cat >"$DEMO/config.yaml" <<EOF
# TensorGuard PKCS#11 demo configuration (written by scripts/demo.sh)
log:
  level: warning
  file: $DEMO/module.log
tokens:
  - name: $LABEL
    store: $DEMO/store
    backend:
      kind: local
    max_pin_retries: 10
    pin_kdf_cost: 15
EOF
chmod 600 "$DEMO/config.yaml"
export TENSORGUARD_PKCS11_CONF="$DEMO/config.yaml"
echo "config: $TENSORGUARD_PKCS11_CONF (mode 600); store: $DEMO/store"
echo "demo PINs (demo values only): SO PIN $DEMO_SO_PIN, user PIN $DEMO_PIN"

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
  T=("$CLI")
  common=(--module "$MODULE" --token "$LABEL" --pin-env TG_DEMO_PIN)
  run "${T[@]}" key generate "${common[@]}" --label demo-n2he --dimension 1024 --modulus-bits 32 || fail "tg-pkcs11 key generate"
  values='[1, 2, 3, 42, 65535, -1]'
  run "${T[@]}" encrypt "${common[@]}" --key demo-n2he --format lwe2 --values "$values" --output "$DEMO/demo.lwe2" \
    || fail "tg-pkcs11 encrypt"
  echo "ciphertext: $DEMO/demo.lwe2 ($(stat -c %s "$DEMO/demo.lwe2") bytes)"
  printf '$ %s\n' "${T[*]} decrypt ${common[*]} --key demo-n2he --input $DEMO/demo.lwe2"
  got="$("${T[@]}" decrypt "${common[@]}" --key demo-n2he --input "$DEMO/demo.lwe2")" || fail "tg-pkcs11 decrypt"
  echo "$got"
  # -1 comes back as t-1 (plaintexts are reduced mod t = 2^16).
  [ "$(echo "$got" | tr -d ' \n')" = "[1,2,3,42,65535,65535]" ] || fail "decrypted values differ from $values (mod 2^16)"
  echo "round trip ok: $values -> LWE2 -> [1,2,3,42,65535,65535] (mod t = 2^16)"
  step "Objects after the N2HE step (-O)"
  run "${P[@]}" --token-label "$LABEL" --login --pin "$DEMO_PIN" -O || fail "-O"
else
  echo "(skipped: tg-pkcs11 is not built yet or does not support encrypt)"
fi

step "Demo done"
echo "token store: $DEMO/store   config: $DEMO/config.yaml   module log: $DEMO/module.log"
