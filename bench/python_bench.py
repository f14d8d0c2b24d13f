#!/usr/bin/env python3
"""`make bench`, Python part: the tensorguard-pkcs11 package against the same calls made from C and against the
suite's numpy reference of the SDK's N2HEEncryptor (issue 11's targets). Prints a markdown table.

  python3 bench/python_bench.py --module .build/release/libtensorguard-pkcs11.so --p11bench out/bench/p11bench
                                [--seconds 1.5] [--numpy-bytes 1048576] [--out out/bench/python.md]

Method (the same statistic on both sides): one thread, n = 1024, q = 2^32, k = 4096, best single call within the
time box. C is bench/p11bench.c's --n2he-only figures on the same token (C_EncryptInit + size query + C_Encrypt;
for seeded-once LWE2 decryption every timed call gets a fresh ciphertext made untimed before it); Python is
`encrypt_batch` / `decrypt_batch` through python-pkcs11, numpy array in, numpy array out. The envelope figure is
`encrypt(bytes)` of --numpy-bytes random bytes in the TensorGuardFlow envelope, the package vs the reference
N2HEEncryptor (Tests/python/sdk_reference.py over tools/n2he_reference.py), best of 3, the reference in a child
process with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (its int64 products do not use BLAS anyway).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "python", "src"))
PIN, SO_PIN = "1234", "12345678"  # throwaway benchmark token
K, N = 4096, 1024


def best(fn, seconds, prepare=None):
    """Best single call of fn(arg) within the time box (at least 3 calls)."""
    t_end = time.perf_counter() + seconds
    dt, calls, out = float("inf"), 0, None
    while calls < 3 or time.perf_counter() < t_end:
        arg = prepare() if prepare else None
        t0 = time.perf_counter()
        out = fn(arg)
        dt = min(dt, time.perf_counter() - t0)
        calls += 1
    return dt, out


def make_token(workdir: str, module: str) -> dict:
    store = os.path.join(workdir, "store")
    os.makedirs(store)
    conf = os.path.join(workdir, "config.yaml")
    with open(conf, "w") as f:
        # What a deployment gets: default PIN KDF cost, audit on with its fdatasync (as bench/run.sh configures).
        f.write(f"log:\n  level: error\n  file: {workdir}/module.log\naudit:\n  file: {workdir}/audit.log\n"
                f"tokens:\n  - name: bench\n    store: {store}\n    backend:\n      kind: local\n")
    os.chmod(conf, 0o600)
    env = dict(os.environ, TENSORGUARD_PKCS11_CONF=conf, TENSORGUARD_PKCS11_MODULE=module, TG_PKCS11_PIN=PIN)
    for args in (["--slot-index", "0", "--init-token", "--label", "bench", "--so-pin", SO_PIN],
                 ["--token-label", "bench", "--login", "--login-type", "so", "--so-pin", SO_PIN, "--init-pin",
                  "--pin", PIN]):
        subprocess.run(["pkcs11-tool", "--module", module] + args, env=env, check=True, capture_output=True)
    return env


def c_figures(p11bench: str, module: str, env: dict, seconds: float) -> dict:
    r = subprocess.run([p11bench, "--module", module, "--token", "bench", "--pin", PIN, "--n2he-only", "--n2he-k",
                        str(K), "--seconds", str(seconds)], env=env, capture_output=True, text=True)
    figs = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            figs.setdefault(parts[0], parts[1])
    if r.returncode != 0 or "n2he_lwe2_encrypt_samples_per_s" not in figs:
        raise SystemExit(f"python_bench: p11bench failed ({r.returncode}): {r.stderr[-2000:]}")
    return figs


def numpy_envelope(nbytes: int) -> float:
    code = f"""
import os, sys, time
sys.path.insert(0, {os.path.join(ROOT, 'Tests', 'python')!r})
import numpy as np, sdk_reference
s = np.random.default_rng(1).integers(-1, 2, 1024)
enc = sdk_reference.N2HEEncryptor(s, sdk="tensorguardflow")
data = os.urandom({nbytes})
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter(); ct = enc.encrypt(data); best = min(best, time.perf_counter() - t0)
assert enc.decrypt(ct)[:len(data)] == data
print(best, np.__version__)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    sec, ver = r.stdout.split()
    return float(sec), ver


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", default=os.path.join(ROOT, ".build", "release", "libtensorguard-pkcs11.so"))
    p.add_argument("--p11bench", default=os.path.join(ROOT, "out", "bench", "p11bench"))
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "1.5")))
    p.add_argument("--numpy-bytes", type=int, default=1 << 20)
    p.add_argument("--out")
    a = p.parse_args()
    module = os.path.abspath(a.module)
    work = tempfile.mkdtemp(prefix="tg-python-bench.")
    try:
        env = make_token(work, module)
        os.environ.update(env)  # before the package's C_Initialize
        print("python_bench: C figures (p11bench --n2he-only) ...", file=sys.stderr)
        cf = c_figures(a.p11bench, module, env, a.seconds)

        import numpy as np
        import tensorguard_pkcs11 as tg

        keyfile = os.path.join(work, "raw-key.bin")
        with open(keyfile, "wb") as f:
            f.write(np.random.default_rng(7).integers(-1, 2, N).astype("<i8").tobytes())
        tg.import_sdk_key(keyfile, "bench-raw", token="bench", decrypt_rule="raw", warn=False)
        so = tg.PKCS11N2HEEncryptor("bench-so", token="bench", create=True, sdk="tensorguardflow")
        raw = tg.PKCS11N2HEEncryptor("bench-raw", token="bench", sdk="tensorguard")
        values = (np.arange(K, dtype=np.int64) * 2654435761) & 0xFFFF
        print("python_bench: Python figures ...", file=sys.stderr)
        py = {}
        for fmt, enc in (("lwe1", raw), ("lwe2", so)):
            dt, ct = best(lambda _: enc.encrypt_batch(values, fmt.upper()), a.seconds)
            py[f"{fmt}_encrypt"] = K / dt
        ct1 = raw.encrypt_batch(values, "LWE1")
        dt, out = best(lambda _: raw.decrypt_batch(ct1), a.seconds)
        assert np.array_equal(out, values)
        py["lwe1_decrypt"] = K / dt
        dt, out = best(lambda c: so.decrypt_batch(c), a.seconds, prepare=lambda: so.encrypt_batch(values))
        assert np.array_equal(out, values)
        py["lwe2so_decrypt"] = K / dt

        data = os.urandom(a.numpy_bytes)
        so.sdk = "tensorguardflow"
        pkg_env, env_ct = best(lambda _: so.encrypt(data), 0.0)
        print(f"python_bench: numpy reference N2HEEncryptor, {a.numpy_bytes:,} bytes, best of 3 ...", file=sys.stderr)
        np_env, np_ver = numpy_envelope(a.numpy_bytes)
        tgf_ratio = len(env_ct) / len(data)
        small = os.urandom(4096)
        tg_env = raw.encrypt(small)
        assert raw.decrypt(tg_env) == small
        tg_ratio = len(tg_env) / len(small)
        so.close()
        raw.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def c(key):
        return float(cf[key])

    rows = [
        ("encrypt_batch LWE2", py["lwe2_encrypt"], c("n2he_lwe2_encrypt_samples_per_s")),
        ("decrypt_batch LWE2, seeded-once (fresh ciphertext per call)", py["lwe2so_decrypt"],
         c("n2he_lwe2so_decrypt_samples_per_s")),
        ("encrypt_batch LWE1", py["lwe1_encrypt"], c("n2he_lwe1_encrypt_samples_per_s")),
        ("decrypt_batch LWE1, raw key", py["lwe1_decrypt"], c("n2he_lwe1_decrypt_samples_per_s")),
    ]
    lines = [f"## Python package (tensorguard-pkcs11 {tg.__version__}) vs C and vs the numpy SDK reference\n",
             f"n = {N}, q = 2^32, k = {K}, one thread, best single call in {a.seconds:g} s.\n",
             "| call | Python (samples/s) | C, p11bench (samples/s) | Python / C | target | |", "|---|---:|---:|---:|---|---|"]
    for name, pyv, cv in rows:
        r = pyv / cv
        lines.append(f"| {name} | {pyv:,.0f} | {cv:,.0f} | {100 * r:.0f}% | ≥ 80% | {'met' if r >= 0.8 else 'MISSED'} |")
    r = np_env / pkg_env
    lines += ["", "| envelope | package | numpy reference N2HEEncryptor | speed-up | target | |", "|---|---:|---:|---:|---|---|",
              f"| encrypt(bytes), {a.numpy_bytes / 1048576:g} MiB, TensorGuardFlow (s) | {pkg_env:.3f} | {np_env:.3f} "
              f"| {r:.1f}× | ≥ 10× | {'met' if r >= 10 else 'MISSED'} |",
              "", "| envelope | ciphertext bytes per plaintext byte |", "|---|---:|",
              f"| TensorGuardFlow (one LWE2: 45 + 8·k bytes), {a.numpy_bytes:,} bytes | {tgf_ratio:.3f} |",
              f"| TensorGuard (JSON of hex LWE1 chunks: ≈ 2·8·(n+1) per entry), 4,096 bytes | {tg_ratio:,.0f} |",
              "", f"numpy {np_ver}; the reference runs in a child process, one thread, OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset."]
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
