#!/usr/bin/env bash
# `make bench`: the same harness (bench/p11bench.c) on a fresh SoftHSM2 token (file backend) and a fresh token of
# ours, in one run, then the N2HE figures of ours next to the numpy reference (tools/n2he_reference.py).
# Prints a markdown table (also saved to out/bench/results.md). Figures are informative: nothing asserts on time.
#
# Env: BENCH_SECONDS (time box per figure, default 1.5), BENCH_FIND=0 skips the 1k/10k-object find figures
#      (filling 10,000 objects into SoftHSM2's file store takes minutes), N2HE_PEAK_K (default 65536),
#      N2HE_LARGE_K (k of the single- vs multi-thread figures, default 65536).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/out/bench"
BIN="$OUT/p11bench"
FOOTPRINT="$OUT/footprint"
OURS="${OURS_MODULE:-$ROOT/.build/release/libtensorguard-pkcs11.so}"
SOFTHSM="${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
SECS="${BENCH_SECONDS:-1.5}"
PEAK_K="${N2HE_PEAK_K:-65536}"
LARGE_K="${N2HE_LARGE_K:-65536}"
PIN=1234 SO_PIN=12345678          # throwaway benchmark tokens
FIND_ARGS=(); [ "${BENCH_FIND:-1}" = 0 ] && FIND_ARGS=(--no-find)

[ -x "$BIN" ] && [ -x "$FOOTPRINT" ] || make -C "$ROOT" --no-print-directory bench-bin >/dev/null
rm -rf "$OUT/softhsm" "$OUT/ours"; mkdir -p "$OUT/softhsm/tokens" "$OUT/ours/store"

# SoftHSM2, file object store.
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$OUT/softhsm/tokens" >"$OUT/softhsm/softhsm2.conf"
export SOFTHSM2_CONF="$OUT/softhsm/softhsm2.conf"
softhsm2-util --init-token --free --label bench --pin "$PIN" --so-pin "$SO_PIN" >/dev/null

# Ours: a config with the default PIN KDF cost and audit settings (what a deployment gets).
cat >"$OUT/ours/config.yaml" <<YAML
log:
  level: error
  file: $OUT/ours/module.log
audit:
  file: $OUT/ours/audit.log   # on, with its default fdatasync per state change, as deployed
tokens:
  - name: bench
    store: $OUT/ours/store
    backend:
      kind: local
    max_pin_retries: 10
YAML
chmod 600 "$OUT/ours/config.yaml"
export TENSORGUARD_PKCS11_CONF="$OUT/ours/config.yaml"
ours_ok=1
if [ ! -f "$OURS" ]; then
  echo "bench: $OURS not built; our column will be n/a" >&2; ours_ok=0
elif ! { pkcs11-tool --module "$OURS" --slot-index 0 --init-token --label bench --so-pin "$SO_PIN" &&
         pkcs11-tool --module "$OURS" --token-label bench --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"; } \
       >"$OUT/ours/init.log" 2>&1; then
  echo "bench: could not initialise a token of ours (see out/bench/ours/init.log); our column will be n/a" >&2; ours_ok=0
fi

run_bench() {  # NAME MODULE — writes $OUT/NAME.txt (figures) and $OUT/NAME.err
  local name="$1" mod="$2"
  echo "bench: $name ($mod) ..." >&2
  "$BIN" --module "$mod" --token bench --pin "$PIN" --seconds "$SECS" "${FIND_ARGS[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err" ||
    echo "bench: p11bench on $name exited $? (see out/bench/$name.err)" >&2
}
run_bench softhsm "$SOFTHSM"
: >"$OUT/ours.txt"
if [ "$ours_ok" = 1 ]; then
  run_bench ours "$OURS"
  for f in lwe1 lwe2; do
    "$BIN" --module "$OURS" --token bench --pin "$PIN" --n2he-peak "$f" --n2he-k "$PEAK_K" >>"$OUT/ours.txt" 2>>"$OUT/ours.err" || true
  done
  # Large k, one thread and every core (n2he.threads: auto in a copy of the configuration).
  echo "bench: N2HE k = $LARGE_K, 1 thread and n2he.threads: auto ($(nproc) cores) ..." >&2
  "$BIN" --module "$OURS" --token bench --pin "$PIN" --n2he-only --n2he-k "$LARGE_K" --seconds "$SECS" \
    >"$OUT/ours-large-1.txt" 2>>"$OUT/ours.err" || true
  { echo "n2he: { threads: auto }"; cat "$OUT/ours/config.yaml"; } >"$OUT/ours/config-threads.yaml"
  chmod 600 "$OUT/ours/config-threads.yaml"
  TENSORGUARD_PKCS11_CONF="$OUT/ours/config-threads.yaml" \
    "$BIN" --module "$OURS" --token bench --pin "$PIN" --n2he-only --n2he-k "$LARGE_K" --seconds "$SECS" \
    >"$OUT/ours-large-auto.txt" 2>>"$OUT/ours.err" || true
  # Seeded-once LWE2 decryption with 10^6 seeds already spent in the token's ledger table (one B-tree for every
  # key: what a busy token looks like); the figure is compared with the same run's decryption before the fill
  # and with the raw rule (the decryption path before the rule existed).
  echo "bench: LWE2 decryption with 10^6 spent seeds in the ledger ..." >&2
  sqlite3 "$OUT/ours/store/token.sqlite" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
    INSERT INTO spent_seeds SELECT 'bench-filler', randomblob(16) FROM c;" 2>>"$OUT/ours.err" || true
  echo "spent_seeds_rows $(sqlite3 "$OUT/ours/store/token.sqlite" 'SELECT count(*) FROM spent_seeds' 2>/dev/null || echo n/a)" \
    >"$OUT/ours-seeds.txt"
  "$BIN" --module "$OURS" --token bench --pin "$PIN" --n2he-only --seconds "$SECS" >>"$OUT/ours-seeds.txt" 2>>"$OUT/ours.err" || true
fi

# The token store on SQLite and on PostgreSQL (issue 12): TokenDatabase/TokenVault, same code and run, a throwaway
# PostgreSQL on 127.0.0.1 (fsync on). Built with the release products.
STORE_BENCH="$(dirname "$OURS")/tg-store-bench"
: >"$OUT/store.txt"
if [ -x "$STORE_BENCH" ]; then
  echo "bench: token store, SQLite vs PostgreSQL (tg-store-bench) ..." >&2
  "$STORE_BENCH" --seconds "$SECS" >"$OUT/store.txt" 2>"$OUT/store.err" ||
    echo "bench: tg-store-bench exited $? (see out/bench/store.err)" >&2
else
  echo "bench: $STORE_BENCH not built; the store table will be n/a" >&2
fi

# Footprint (issue 10): what loading the module costs a process, each sample a fresh process, median of 7. Our
# module is measured as installed (stripped as `make install` and `make deb` strip it).
footprint() {  # NAME MODULE — writes $OUT/footprint-NAME.txt
  local name="$1" mod="$2" what i
  echo "bench: footprint of $name ..." >&2
  {
    echo "installed_size_bytes $(stat -L -c %s "$mod")"
    for what in rss time; do
      for i in 1 2 3 4 5 6 7; do "$FOOTPRINT" --module "$mod" "$what" 2>>"$OUT/$name.err" || echo n/a; done |
        sort -n | sed -n 4p | sed "s/^/footprint_$what /"
    done
  } >"$OUT/footprint-$name.txt"
}
footprint softhsm "$SOFTHSM"
: >"$OUT/footprint-ours.txt"
if [ "$ours_ok" = 1 ]; then
  strip --remove-section=.comment --remove-section=.note --strip-unneeded -o "$OUT/ours/libtensorguard-pkcs11.so" "$OURS"
  footprint ours "$OUT/ours/libtensorguard-pkcs11.so"
fi

: >"$OUT/numpy.json"
if [ -f "$ROOT/tools/n2he_reference.py" ]; then
  echo "bench: numpy reference (tools/n2he_reference.py bench --k 4096 --repeat 7) ..." >&2
  python3 "$ROOT/tools/n2he_reference.py" bench --k 4096 --repeat 7 >"$OUT/numpy.json" 2>"$OUT/numpy.err" ||
    { echo "bench: numpy reference failed (see out/bench/numpy.err)" >&2; : >"$OUT/numpy.json"; }
fi

python3 - "$OUT" "$PEAK_K" "$LARGE_K" "$(nproc)" <<'PY' | tee "$OUT/results.md"
import json, os, sys
out, peak_k, large_k, cores = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def figs(name):
    d = {}
    try:
        for line in open(os.path.join(out, name + ".txt")):
            parts = line.split()
            if len(parts) == 2:
                d.setdefault(parts[0], parts[1])   # first value wins (create rate is printed twice)
    except FileNotFoundError:
        pass
    return d
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return None
def fmt(v):
    x = num(v)
    if x is None: return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"
def ratio(a, b):
    a, b = num(a), num(b)
    return f"{a / b:.2f}×" if a is not None and b else "n/a"
soft, ours = figs("softhsm"), figs("ours")
rows = [
    ("C_Initialize + open + login, first (ms)", "init_open_login_ms"),
    ("C_Initialize + open + login, repeated (ms)", "init_open_login_ms_warm"),
    ("token AES-256 key generation (/s)", "aes_keygen_per_s"),
    ("C_FindObjects by label, 1,000 token objects (/s)", "find_by_label_per_s_1k"),
    ("C_FindObjects by label, 10,000 token objects (/s)", "find_by_label_per_s_10k"),
    ("token data object creation (/s)", "create_data_object_per_s"),
    ("AES-GCM encrypt 4 KiB (/s)", "aes_gcm_4k_encrypt_per_s"),
    # keycache rows (issue 10): token keys used in turn, and small random requests
    ("AES-GCM encrypt 4 KiB, 300 token keys used in turn (/s)", "aes_gcm_4k_token_keys_in_turn_per_s"),
    ("C_GenerateRandom 32 bytes (/s)", "generate_random_32_per_s"),
    # end keycache rows
    ("SHA-256 (MB/s)", "sha256_mb_per_s"),
    ("C_DestroyObject token key (/s)", "destroy_per_s"),
    ("RSS after loading + opening a token (KiB)", "rss_after_open_kib"),
    ("RSS added by the module (KiB)", "rss_module_delta_kib"),
]
print("## PKCS#11: TensorGuard vs SoftHSM2 (same harness, same run)\n")
print("| figure | TensorGuard | SoftHSM2 (file backend) | ours / SoftHSM2 |")
print("|---|---:|---:|---:|")
for label, key in rows:
    print(f"| {label} | {fmt(ours.get(key))} | {fmt(soft.get(key))} | {ratio(ours.get(key), soft.get(key))} |")
print("\nRatios are of the raw figures: above 1 is better for rates (/s, MB/s), worse for times (ms) and memory (KiB).")
fs, fo = figs("footprint-softhsm"), figs("footprint-ours")
def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "MISSED")
size_o, size_s = num(fo.get("installed_size_bytes")), num(fs.get("installed_size_bytes"))
rss_o, rss_s = num(fo.get("footprint_rss")), num(fs.get("footprint_rss"))
t_o, t_s = num(fo.get("footprint_time")), num(fs.get("footprint_time"))
print("\n## Footprint of loading the module (fresh process per sample, median of 7; ours stripped as installed)\n")
print("| figure | TensorGuard | SoftHSM2 | ours vs SoftHSM2 | target | |")
print("|---|---:|---:|---:|---|---|")
print(f"| installed .so (MB) | {fmt(size_o / 1e6 if size_o else None)} | {fmt(size_s / 1e6 if size_s else None)} | {ratio(size_o, size_s)} "
      f"| ≤ 10 MB | {verdict(None if size_o is None else size_o <= 10e6)} |")
print(f"| RSS added by dlopen + C_Initialize + C_OpenSession (KiB) | {fmt(rss_o)} | {fmt(rss_s)} "
      f"| {'n/a' if rss_o is None or rss_s is None else f'+{rss_o - rss_s:,.0f} KiB'} | ≤ SoftHSM2 + 3 MB "
      f"| {verdict(None if rss_o is None or rss_s is None else rss_o <= rss_s + 3 * 1024)} |")
print(f"| dlopen + C_Initialize + C_Finalize + dlclose (ms) | {fmt(t_o / 1000 if t_o else None)} | {fmt(t_s / 1000 if t_s else None)} "
      f"| {ratio(t_o, t_s)} | ≤ 2× SoftHSM2 | {verdict(None if t_o is None or t_s is None else t_o <= 2 * t_s)} |")
try:
    ref = json.load(open(os.path.join(out, "numpy.json")))
except Exception:
    ref = {}
def refv(fmtname, op, field):
    return (ref.get(f"{fmtname}_{op}") or {}).get(field)
print("\n## N2HE through C_Encrypt/C_Decrypt (n = 1024, q = 2^32, k = 4096) vs the numpy reference\n")
print("| figure | TensorGuard (PKCS#11) | numpy reference | ours / numpy |")
print("|---|---:|---:|---:|")
for f in ("lwe1", "lwe2"):
    F = f.upper()
    for op in ("encrypt", "decrypt"):
        a, b = ours.get(f"n2he_{f}_{op}_samples_per_s"), refv(f, op, "samples_per_second")
        print(f"| {F} {op} (samples/s) | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
        a, b = ours.get(f"n2he_{f}_{op}_ns_per_entry"), refv(f, op, "ns_per_entry")
        # lower is better for ns/entry: show the speed ratio (ours faster > 1)
        r = ratio(b, a)
        print(f"| {F} {op} (ns per matrix entry) | {fmt(a)} | {fmt(b)} | {r + ' speed' if r != 'n/a' else r} |")
    print(f"| {F} ciphertext bytes per sample | {fmt(ours.get(f'n2he_{f}_ct_bytes_per_sample'))} | | |")
    print(f"| {F} peak RSS, k = {int(peak_k):,} (KiB) | {fmt(ours.get(f'n2he_{f}_peak_rss_kib_k{peak_k}'))} | | |")
print("| LWE2 decrypt, decryption rule seeded-once (samples/s) | " + fmt(ours.get("n2he_lwe2so_decrypt_samples_per_s"))
      + " | | " + ratio(ours.get("n2he_lwe2so_decrypt_samples_per_s"), refv("lwe2", "decrypt", "samples_per_second")) + " |")
store = figs("store")
print("\n## Token store: PostgreSQL vs SQLite (TokenDatabase and TokenVault, same code, same run; PostgreSQL on 127.0.0.1 over TCP)\n")
print("| figure | SQLite | PostgreSQL | PostgreSQL / SQLite |")
print("|---|---:|---:|---:|")
for label, key in [("login, default PIN KDF cost (ms)", "login_ms"),
                   ("token key stored: sealed value, one committed write (/s)", "key_insert_per_s"),
                   ("find by label, 1,000 objects (/s)", "find_by_label_per_s_1k"),
                   ("find by label, 10,000 objects (/s)", "find_by_label_per_s_10k"),
                   ("key use: freshness check of a cached key (/s)", "key_use_check_per_s"),
                   ("another connection sees a commit at its next call (ms)", "other_connection_sees_commit_ms")]:
    a, b = store.get("sqlite_" + key), store.get("postgresql_" + key)
    print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio(b, a)} |")
print("| token key stored on PostgreSQL vs SoftHSM2's whole C_GenerateKey (/s) | | "
      + fmt(store.get("postgresql_key_insert_per_s")) + " | " + ratio(store.get("postgresql_key_insert_per_s"), soft.get("aes_keygen_per_s"))
      + " of SoftHSM2 |")
print("\nEvery PostgreSQL call reads the change marker first (one round trip: the strict mode of the plan), and every "
      "write is a transaction of several round trips plus a commit flush; the plan's M5 (pipelining, LISTEN/NOTIFY) is "
      "not built.")
seeds = figs("ours-seeds")
print(f"\n## LWE2 decryption under seeded-once with {fmt(seeds.get('spent_seeds_rows'))} spent seeds in the ledger (k = 4096)\n")
print("| figure | samples/s | vs seeded-once, empty ledger | vs raw rule (no ledger, no smudging) |")
print("|---|---:|---:|---:|")
a = seeds.get("n2he_lwe2so_decrypt_samples_per_s")
print(f"| seeded-once, 10^6 seeds spent | {fmt(a)} | {ratio(a, ours.get('n2he_lwe2so_decrypt_samples_per_s'))} | {ratio(a, ours.get('n2he_lwe2_decrypt_samples_per_s'))} |")
print(f"| raw rule, same run | {fmt(seeds.get('n2he_lwe2_decrypt_samples_per_s'))} | | |")
one, many = figs("ours-large-1"), figs("ours-large-auto")
print(f"\n## N2HE at k = {int(large_k):,}: one thread vs n2he.threads: auto ({cores} cores)\n")
print("| figure | 1 thread | all cores | speed-up |")
print("|---|---:|---:|---:|")
for f in ("lwe1", "lwe2"):
    for op in ("encrypt", "decrypt"):
        key = f"n2he_{f}_{op}_samples_per_s"
        print(f"| {f.upper()} {op} (samples/s) | {fmt(one.get(key))} | {fmt(many.get(key))} | {ratio(many.get(key), one.get(key))} |")
if not ref:
    print("\nnumpy reference: n/a (tools/n2he_reference.py missing or failed)")
else:
    print(f"\nnumpy {ref.get('numpy', '?')}, {ref.get('threads', '?')} thread(s). Both columns are best single calls: ours the "
          "fastest C_EncryptInit + size query + C_Encrypt (resp. decrypt) within the time box, numpy the fastest of "
          "its 7 repeats.")
PY
echo "bench: raw figures in out/bench/{softhsm,ours}.txt, errors in out/bench/*.err" >&2
