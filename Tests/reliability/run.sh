#!/usr/bin/env bash
# Reliability tests: two processes writing one token at once, a SIGKILL mid key generation, and C_WrapKey with
# RLIMIT_NOFILE exhausted (no audit record possible: no wrapped byte may reach the caller) on a local-backend token
# and again on a SoftHSM2-backed one; then 20 processes racing for a key's last uses and for the PIN's tries.
#   bash Tests/reliability/run.sh [path/to/libtensorguard-pkcs11.so]
# Prints "reliability: N passed, M failed" last; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
module="${1:-$root/.build/release/libtensorguard-pkcs11.so}"
case "$module" in /*) ;; *) module="$PWD/$module" ;; esac
if [ ! -f "$module" ]; then
    echo "run.sh: no module at $module (build it: swift build -c release --product tensorguard-pkcs11)" >&2
    echo "reliability: 0 passed, 1 failed"
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tg-rel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

cc -O1 -Wall -Werror -D_GNU_SOURCE -I/usr/include/p11-kit-1 -o "$work/reliability" \
   "$root/Tests/reliability/reliability.c" -ldl

mkdir -p "$work/store"
cat > "$work/config.yaml" <<YAML
audit: { file: $work/audit.log }
tokens:
  - name: reliability
    store: $work/store
    backend: { kind: local }
    pin_kdf_cost: 10
YAML
chmod 600 "$work/config.yaml"
export TENSORGUARD_PKCS11_CONF="$work/config.yaml"

set +e
timeout -k 10 600 "$work/reliability" "$module" "$work/store" "$work/audit.log" | tee "$work/output"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 124 ] || [ "$rc" -ge 128 ]; then
    echo "run.sh: the test program was killed or timed out (exit $rc)"
    echo "reliability: 0 passed, 1 failed"
fi
# Both processes and the killed one appended to one audit log (docs/audit.md): it must still be one valid chain.
# Counted as one more test in the summary line, which is printed again, last.
cli="$(dirname "$module")/tg-pkcs11"
# The counts of the last "reliability: N passed, M failed" line of FILE into got_passed/got_failed; false if none.
counts_of() {
    local line
    line="$(grep -aE '^reliability: [0-9]+ passed, [0-9]+ failed$' "$1" 2>/dev/null | tail -n1 || true)"
    [ -n "$line" ] || return 1
    got_passed="$(sed -E 's/^reliability: ([0-9]+) passed.*/\1/' <<<"$line")"
    got_failed="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")"
}
# `tg-pkcs11 audit verify` of LOG, counted as one more test (WHAT names it in the output).
verify_log() {
    if "$cli" audit verify --file "$1"; then
        echo "ok: tg-pkcs11 audit verify$2"
        passed=$((passed + 1))
    else
        echo "FAIL: tg-pkcs11 audit verify$2"
        failed=$((failed + 1))
        rc=1
    fi
}
if [ "$rc" = 0 ] && [ -x "$cli" ] && counts_of "$work/output"; then
    passed=$got_passed failed=$got_failed
    echo "audit: the log written by both processes, the killed one and test 3"
    verify_log "$work/audit.log" ""
    # Test 3 again on a token whose root key is wrapped by SoftHSM2 (kind: pkcs11), with its own audit log.
    echo "test 4: test 3 on a SoftHSM2-backed token"
    softhsm=/usr/lib/softhsm/libsofthsm2.so
    if [ -f "$softhsm" ] && command -v softhsm2-util >/dev/null; then
        mkdir -p "$work/hsm-tokens" "$work/store-hsm"
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/hsm-tokens" > "$work/softhsm2.conf"
        export SOFTHSM2_CONF="$work/softhsm2.conf" HSM_PIN=rel-hsm-user-1
        softhsm2-util --init-token --free --label rel-hsm --so-pin rel-hsm-so-1 --pin "$HSM_PIN" >/dev/null
        cat > "$work/config-hsm.yaml" <<YAML
audit: { file: $work/audit-hsm.log }
tokens:
  - name: reliability-hsm
    store: $work/store-hsm
    pin_kdf_cost: 10
    backend: { kind: pkcs11, module: $softhsm, token_label: rel-hsm, pin_env: HSM_PIN, kek_label: rel-kek }
YAML
        chmod 600 "$work/config-hsm.yaml"
        export TENSORGUARD_PKCS11_CONF="$work/config-hsm.yaml"
        set +e
        "$cli" backend create-kek --token reliability-hsm --label rel-kek >/dev/null &&
            timeout -k 10 300 "$work/reliability" "$module" "$work/store-hsm" "$work/audit-hsm.log" --wrap-only | tee "$work/output-hsm"
        hrc=${PIPESTATUS[0]}
        set -e
        if [ "$hrc" = 0 ] && counts_of "$work/output-hsm" && "$cli" audit verify --file "$work/audit-hsm.log"; then
            passed=$((passed + got_passed + 1))
            echo "ok: test 4 and tg-pkcs11 audit verify of its log"
        else
            echo "FAIL: test 4 on the SoftHSM2-backed token (exit $hrc)"
            failed=$((failed + 1))
            rc=1
        fi
    else
        echo "FAIL: test 4 needs SoftHSM2 ($softhsm, softhsm2-util; Debian package softhsm2)"
        failed=$((failed + 1))
        rc=1
    fi
    # Tests 5 and 6 on a token of their own (test 6 locks its user PIN), with its own audit log.
    mkdir -p "$work/store-races"
    cat > "$work/config-races.yaml" <<YAML
audit: { file: $work/audit-races.log }
tokens:
  - name: races
    store: $work/store-races
    backend: { kind: local }
    pin_kdf_cost: 10
    max_pin_retries: 7
    policy: { max_key_uses: 100 }
YAML
    chmod 600 "$work/config-races.yaml"
    export TENSORGUARD_PKCS11_CONF="$work/config-races.yaml"
    set +e
    timeout -k 10 600 "$work/reliability" "$module" "$work/store-races" "$work/audit-races.log" --races 7 100 | tee "$work/output-races"
    rrc=${PIPESTATUS[0]}
    set -e
    if ! counts_of "$work/output-races"; then
        echo "FAIL: tests 5 and 6 (exit $rrc)"
        failed=$((failed + 1))
        rc=1
    else
        passed=$((passed + got_passed)) failed=$((failed + got_failed))
        if [ "$rrc" != 0 ]; then
            echo "FAIL: tests 5 and 6 (exit $rrc)"
            rc=1
        else
            verify_log "$work/audit-races.log" " of the races' log"
        fi
    fi
    echo "reliability: $passed passed, $failed failed"
fi
exit "$rc"
