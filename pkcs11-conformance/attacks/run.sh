#!/usr/bin/env bash
# Attack suite of issue 17: what a user-PIN holder can do to take a key through nothing but the C API.
#
#   bash pkcs11-conformance/attacks/run.sh [LIB] [--module ours|softhsm|PATH] [--backend local|softhsm]
#                                          [--case NAME]... [-v] [--keep]
#
# LIB (default .build/release/libtensorguard-pkcs11.so) is our module. Without --module the suite runs three
# columns: ours-local (LIB on a `local`-backend token), ours-softhsm (LIB on a token whose root key is wrapped by
# a SoftHSM2 KEK, backend kind pkcs11) and softhsm2 (/usr/lib/softhsm/libsofthsm2.so itself, for comparison).
# --module PATH runs one module only (ours: both backends, or the one --backend names). Each case is a C program
# case (attacks.c) that prints what it tried, the CK_RV of each call and a verdict; the verdict comes from
# recovering the key and checking it against the key itself (or from observing the rule broken), never from a
# CK_RV alone. Cases that need our YAML configuration (two tokens on one store, an untrusted backend module) are
# n/a on other modules.
#
# Prints one line per case per column, a table (case | ours-local | ours-softhsm | softhsm2), and last
# `attacks: N passed, M failed`: a case passes when every column of ours REFUSED it, fails when the attack
# worked (EXTRACTED / BROKE_RULE) or could not run (ERROR) on any column of ours. SoftHSM2's column is
# informational. Exits 1 when any case failed against ours, 2 when the suite could not run.
# Logs: out/attacks/<column>.log (every case's full output); -v prints them. PINs are test values for
# throwaway tokens.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/pkcs11-conformance/attacks"
# shellcheck source=../lib.sh
. "$ROOT/pkcs11-conformance/lib.sh"

main() {
  local lib="$ROOT/.build/release/libtensorguard-pkcs11.so" module_arg="" backend_arg="" keep=0 verbose=0
  local -a only=()
  while (($#)); do
    case "$1" in
      --module) module_arg="$2"; shift 2 ;;
      --module=*) module_arg="${1#*=}"; shift ;;
      --backend) backend_arg="$2"; shift 2 ;;
      --backend=*) backend_arg="${1#*=}"; shift ;;
      --case) only+=("$2"); shift 2 ;;
      -v|--verbose) verbose=1; shift ;;
      --keep) keep=1; shift ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      -*) echo "attacks/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
      *) lib="$1"; shift ;;
    esac
  done
  case "$lib" in /*) ;; *) lib="$PWD/$lib" ;; esac

  # ---- which columns
  local -a columns=()
  local col_module_ours="$lib" col_module_other=""
  if [ -z "$module_arg" ]; then
    columns=(ours-local ours-softhsm softhsm2)
  else
    local path kind
    case "$module_arg" in
      ours) path="$lib" ;;
      softhsm) path="$SOFTHSM_MODULE" ;;
      *) path="$(readlink -f "$module_arg" 2>/dev/null || echo "$module_arg")" ;;
    esac
    case "$(readlink -f "$path" 2>/dev/null || echo "$path")" in
      *libtensorguard-pkcs11.so) kind=ours ;;
      *libsofthsm2.so) kind=softhsm ;;
      *) kind=other ;;
    esac
    case "$kind" in
      ours)
        col_module_ours="$path"
        case "$backend_arg" in
          local) columns=(ours-local) ;;
          softhsm) columns=(ours-softhsm) ;;
          "") columns=(ours-local ours-softhsm) ;;
          *) echo "attacks/run.sh: --backend local|softhsm" >&2; exit 2 ;;
        esac ;;
      softhsm) SOFTHSM_MODULE="$path"; columns=(softhsm2) ;;
      other) col_module_other="$path"; columns=(other) ;;
    esac
  fi
  lib="$col_module_ours"

  local c
  for c in "${columns[@]}"; do
    case "$c" in
      ours-*) if [ ! -f "$lib" ]; then
                echo "attacks/run.sh: no module at $lib (build it: make build)" >&2
                echo "attacks: 0 passed, 1 failed"; exit 2
              fi ;;
    esac
  done

  # ---- work directory: under out/ (not /tmp: the backend-module cases need parents nobody else can write)
  local out="$ROOT/out/attacks"
  mkdir -p "$out"
  chmod 700 "$out"
  WORK="$(mktemp -d "$out/run.XXXXXX")"
  chmod 700 "$WORK"
  if [ "$keep" = 0 ]; then trap 'rm -rf "$WORK"' EXIT; else echo "attacks: work directory kept: $WORK"; fi

  # ---- build
  mkdir -p "$WORK/bin"
  if ! cc -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -I/usr/include/p11-kit-1 -o "$WORK/bin/attacks" \
        "$HERE/attacks.c" "$HERE/n2he.c" "$HERE/aeskw.c" -lcrypto -ldl -lm 2>"$WORK/build.log"; then
    cat "$WORK/build.log" >&2
    echo "attacks: 0 passed, 1 failed"; exit 2
  fi
  local bin="$WORK/bin/attacks"
  if ! "$bin" --selftest; then echo "attacks: 0 passed, 1 failed"; exit 2; fi

  local -a token_cases=() config_cases=()
  local name type
  while read -r name type; do
    if ((${#only[@]})); then
      local keep_it=0 o
      for o in "${only[@]}"; do [ "$o" = "$name" ] && keep_it=1; done
      [ "$keep_it" = 1 ] || continue
    fi
    if [ "$type" = config ]; then config_cases+=("$name"); else token_cases+=("$name"); fi
  done < <("$bin" --list)
  ALL_CASES=("${token_cases[@]}" "${config_cases[@]}")

  # The CLI that creates the SoftHSM2 KEK for ours-softhsm: beside the module, else the built one.
  TG_CLI="${TG_PKCS11_CLI:-}"
  [ -n "$TG_CLI" ] || { [ -x "$(dirname "$lib")/tg-pkcs11" ] && TG_CLI="$(dirname "$lib")/tg-pkcs11"; } || true
  [ -n "$TG_CLI" ] || { [ -x "$ROOT/.build/release/tg-pkcs11" ] && TG_CLI="$ROOT/.build/release/tg-pkcs11"; } || true

  export TG_ATTACK_PIN="$USER_PIN" TG_ATTACK_SO_PIN="$SO_PIN"
  declare -gA VERDICT=() RVS=()
  local start=$SECONDS
  for c in "${columns[@]}"; do
    run_column "$c" "$bin" "$lib" "$col_module_other" "${token_cases[@]}" -- "${config_cases[@]}"
    if [ "$verbose" = 1 ]; then sed 's/^/  | /' "$out/$c.log"; fi
  done

  print_table "${columns[@]}"

  # ---- summary: ours only
  local passed=0 failed=0 ours_ran=0 k v all
  for c in "${columns[@]}"; do case "$c" in ours-*) ours_ran=1 ;; esac; done
  for name in "${ALL_CASES[@]}"; do
    all=pass
    local counted=0
    for c in "${columns[@]}"; do
      if [ "$ours_ran" = 1 ]; then case "$c" in ours-*) ;; *) continue ;; esac; fi
      v="${VERDICT[$c|$name]:-ERROR}"
      [ "$v" = N/A ] && continue
      counted=1
      [ "$v" = REFUSED ] || all=fail
    done
    [ "$counted" = 1 ] || continue
    if [ "$all" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  echo "attacks: $((SECONDS - start)) s"
  if [ "$ours_ran" = 1 ]; then
    echo "attacks: $passed passed, $failed failed"
    [ "$failed" = 0 ] || exit 1
  else
    echo "attacks: $passed passed, $failed failed (${columns[*]}: informational, not our module)"
  fi
  exit 0
}

# run_column COLUMN BIN LIB OTHER TOKEN_CASES... -- CONFIG_CASES...
run_column() {
  local col="$1" bin="$2" lib="$3" other="$4"; shift 4
  local -a tcases=() ccases=()
  while (($#)) && [ "$1" != -- ]; do tcases+=("$1"); shift; done
  (($#)) && shift
  ccases=("$@")
  local dir="$WORK/$col" log="$ROOT/out/attacks/$col.log" kind module backend
  case "$col" in
    ours-local) kind=ours module="$lib" backend=local ;;
    ours-softhsm) kind=ours module="$lib" backend=softhsm ;;
    softhsm2) kind=softhsm module="$SOFTHSM_MODULE" backend="" ;;
    other) kind=other module="$other" backend="" ;;
  esac
  : >"$log"
  echo "== $col: $module${backend:+ (backend: $backend)}"
  local setup_ok=1
  (
    set -e
    case "$col" in
      ours-local)
        MODULE_KIND=ours MODULE="$module"
        token_env "$dir"
        token_init attacks "$SO_PIN" "$USER_PIN"
        ;;
      ours-softhsm)
        MODULE_KIND=ours MODULE="$module"
        softhsm_backend_env "$dir"
        token_init attacks "$SO_PIN" "$USER_PIN"
        ;;
      softhsm2)
        MODULE_KIND=softhsm MODULE="$module"
        token_env "$dir"
        token_init attacks "$SO_PIN" "$USER_PIN"
        ;;
      other) ;;   # whatever token it has: the cases look for a token labelled "attacks"
    esac
    env_file "$dir" >"$WORK/$col.env"
  ) >>"$log" 2>&1 || setup_ok=0
  if [ "$setup_ok" = 0 ]; then
    echo "  setup of the $col token failed (log: ${log#"$ROOT"/}):"
    tail -n 20 "$log" | sed 's/^/    | /'
  fi

  local out="$WORK/$col.out"
  : >"$out"
  if [ "$setup_ok" = 1 ] && ((${#tcases[@]})); then
    ( . "$WORK/$col.env"; timeout -k 10 300 "$bin" --module "$module" --kind "$kind" --token attacks "${tcases[@]}" ) \
      >>"$out" 2>&1 || true
  fi
  local c
  for c in "${ccases[@]}"; do
    if [ "$kind" != ours ] || [ "$setup_ok" = 0 ]; then
      ( timeout -k 10 60 "$bin" --module "$module" --kind "$kind" "$c" ) >>"$out" 2>&1 || true
      continue
    fi
    ( . "$WORK/$col.env"; config_case "$col" "$backend" "$c" "$dir/cases/$c"
      timeout -k 10 120 "$bin" --module "$module" --kind "$kind" "$c" ) >>"$out" 2>&1 || true
  done
  cat "$out" >>"$log"

  local line name verdict call rv detail
  while IFS= read -r line; do
    IFS='|' read -r _ name verdict call rv detail <<<"$line"
    VERDICT["$col|$name"]="$verdict"
    RVS["$col|$name"]="$rv"
    printf '  %-30s %-10s %s -> %s; %s\n' "$name" "$verdict" "$call" "$rv" "$detail"
  done < <(grep -a '^RESULT|' "$out" || true)
}

# The environment of a column's token (sourced by the case runs).
env_file() {
  local v
  for v in TENSORGUARD_PKCS11_CONF SOFTHSM2_CONF TG_ATTACK_HSM_PIN ATTACK_BACKEND_SECTION_FILE; do
    [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  return 0
}

# A token of ours whose root key is wrapped by an AES KEK on a SoftHSM2 token (docs/backends/pkcs11.md).
softhsm_backend_env() {
  local dir="$1"
  rm -rf "$dir"; mkdir -p "$dir/store" "$dir/softhsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/softhsm/tokens" \
    >"$dir/softhsm/softhsm2.conf"
  export SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf"
  export TG_ATTACK_HSM_PIN=5678   # test value (throwaway SoftHSM2 token)
  softhsm2-util --init-token --free --label tg-attack-hsm --so-pin 87654321 --pin "$TG_ATTACK_HSM_PIN" >/dev/null
  printf '    backend:\n      kind: pkcs11\n      module: %s\n      token_label: tg-attack-hsm\n      pin_env: TG_ATTACK_HSM_PIN\n      kek_label: attack-kek\n' \
    "$SOFTHSM_MODULE" >"$dir/backend-section.yaml"
  export ATTACK_BACKEND_SECTION_FILE="$dir/backend-section.yaml"
  write_config "$dir/config.yaml" "$dir" conformance "$dir/store"
  export TENSORGUARD_PKCS11_CONF="$dir/config.yaml"
  if [ -n "$TG_CLI" ]; then
    "$TG_CLI" backend create-kek --token conformance --label attack-kek
  else
    echo "no tg-pkcs11 binary: KEK made with pkcs11-tool"
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tg-attack-hsm --login --pin "$TG_ATTACK_HSM_PIN" \
      --keygen --key-type AES:32 --label attack-kek --sensitive >/dev/null
  fi
}

# write_config FILE DIR NAME STORE [NAME STORE]... — a config of ours; backend: local, or the section in
# $ATTACK_BACKEND_SECTION_FILE (ours-softhsm), or $2 of config_backend_module.
write_config() {
  local file="$1" dir="$2"; shift 2
  {
    printf 'log:\n  level: error\n  file: %s/module.log\naudit:\n  file: %s/audit.log\ntokens:\n' "$dir" "$dir"
    while (($#)); do
      printf '  - name: %s\n    store: %s\n' "$1" "$2"
      if [ -n "${BACKEND_SECTION_OVERRIDE:-}" ]; then cat "$BACKEND_SECTION_OVERRIDE"
      elif [ -n "${ATTACK_BACKEND_SECTION_FILE:-}" ]; then cat "$ATTACK_BACKEND_SECTION_FILE"
      else printf '    backend:\n      kind: local\n'; fi
      printf '    max_pin_retries: 10\n    pin_kdf_cost: 10\n'
      shift 2
    done
  } >"$file"
  chmod 600 "$file"
}

# config_case COLUMN BACKEND CASE DIR — writes what a config case needs and exports TG_ATTACK_*.
config_case() {
  local col="$1" backend="$2" case="$3" d="$4"
  rm -rf "$d"; mkdir -p "$d"; chmod 700 "$d"
  case "$case" in
    store-alias-symlink|store-alias-slash)
      mkdir -p "$d/store"
      local alias
      if [ "$case" = store-alias-symlink ]; then
        ln -s "$d/store" "$d/store-link"; alias="$d/store-link"
        export TG_ATTACK_ALIAS_HOW="B's store is a symlink to A's"
      else
        alias="$d/store/"
        export TG_ATTACK_ALIAS_HOW="B's store is A's with a trailing slash"
      fi
      write_config "$d/config.yaml" "$d" alias-a "$d/store" alias-b "$alias"
      export TG_ATTACK_ALIAS_CONF="$d/config.yaml"
      ;;
    backend-module-*)
      # Control: a .so owned by us, 0755, in a 0700 directory — the module must load it (else the case cannot
      # tell a refusal from a module that never loads backends). Attack: the same .so, made untrusted.
      mkdir -p "$d/good" "$d/bad"
      chmod 700 "$d/good" "$d/bad"
      build_marker "$d/good/backend.so" "$d/control.marker"
      local bad="$d/bad/backend.so"
      case "$case" in
        backend-module-world-writable)
          build_marker "$bad" "$d/attack.marker"; chmod 0666 "$bad"
          export TG_ATTACK_BAD_HOW="root-owned but mode 0666 (world-writable)" ;;
        backend-module-other-owner)
          build_marker "$bad" "$d/attack.marker"; chmod 0755 "$bad"
          if ! chown nobody "$bad" 2>/dev/null; then
            echo "cannot chown to nobody (not root): the case cannot set up"; return 0
          fi
          export TG_ATTACK_BAD_HOW="mode 0755 but owned by 'nobody'" ;;
        backend-module-writable-dir)
          chmod 0777 "$d/bad"
          build_marker "$bad" "$d/attack.marker"; chmod 0755 "$bad"
          export TG_ATTACK_BAD_HOW="0755 and ours, in a directory of mode 0777" ;;
      esac
      local sec
      for sec in good bad; do
        printf '    backend:\n      kind: pkcs11\n      module: %s\n      token_label: tg-attack-hsm\n      pin_env: TG_ATTACK_HSM_PIN\n      kek_label: attack-kek\n' \
          "$d/$sec/backend.so" >"$d/$sec-section.yaml"
        BACKEND_SECTION_OVERRIDE="$d/$sec-section.yaml" write_config "$d/$sec.yaml" "$d" backend "$d/store-$sec"
        mkdir -p "$d/store-$sec"
      done
      export TG_ATTACK_HSM_PIN="${TG_ATTACK_HSM_PIN:-5678}"
      export TG_ATTACK_CONTROL_CONF="$d/good.yaml" TG_ATTACK_CONTROL_MARKER="$d/control.marker"
      export TG_ATTACK_BAD_CONF="$d/bad.yaml" TG_ATTACK_BAD_MARKER="$d/attack.marker"
      ;;
  esac
  : "$col" "$backend"
}

build_marker() {
  cc -shared -fPIC -O1 -Wall -DMARKER="\"$2\"" -o "$1" "$HERE/marker-module.c"
}

print_table() {
  local -a cols=("$@")
  local w=30 cw=34 c name v rv cell
  echo
  printf '%-*s' "$w" "case"
  for c in "${cols[@]}"; do printf ' | %-*s' "$cw" "$c"; done
  echo
  printf '%s' "$(printf '%*s' "$w" '' | tr ' ' -)"
  for c in "${cols[@]}"; do printf -- '-+-%s' "$(printf '%*s' "$cw" '' | tr ' ' -)"; done
  echo
  for name in "${ALL_CASES[@]}"; do
    printf '%-*s' "$w" "$name"
    for c in "${cols[@]}"; do
      v="${VERDICT[$c|$name]:-ERROR}"
      rv="${RVS[$c|$name]:--}"
      if [ "$v" = N/A ]; then cell="n/a"
      elif [ "$rv" = - ]; then cell="$v"
      else cell="$v (${rv#CKR_})"; fi
      printf ' | %-*s' "$cw" "$cell"
    done
    echo
  done
  echo "(cell: verdict (CK_RV of the decisive call); EXTRACTED = key value recovered and checked against the key,"
  echo " BROKE_RULE = the rule observably broken, REFUSED = attack failed, n/a = not applicable to that module)"
  echo
}

main "$@"
