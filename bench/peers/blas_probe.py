# BLAS probe for the peer: times torch.mm (fp32) at 1024^3 and at a W1-shaped GEMM under whatever
# OPENBLAS_CORETYPE / LD_LIBRARY_PATH the caller set, checks the result against float64, prints one JSON line.
# bench/run.ts runs it once per candidate core type and gives the fastest correct one to the peers.
# It is not a benchmark of its own and is never compared with Nexus.
import argparse
import ctypes
import json
import os
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=20)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)


def probe(m, k, n):
    a, b = torch.randn(m, k), torch.randn(k, n)
    ref = a.double() @ b.double()
    err = ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(args.reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return {"gflops": 2 * m * k * n / best / 1e9, "rel_err": err}


with open("/proc/self/maps") as f:
    blas = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})


def corename():
    """The kernel set OpenBLAS chose (its own detection, or OPENBLAS_CORETYPE)."""
    for lib in blas:
        if "openblas" in lib:
            try:
                f = ctypes.CDLL(lib).openblas_get_corename
                f.restype = ctypes.c_char_p
                return f().decode()
            except (OSError, AttributeError):
                pass
    return None

print(
    json.dumps(
        {
            "mm1024": probe(1024, 1024, 1024),
            "mm_w1": probe(2048, 256, 768),
            "coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "corename": corename(),
            "blas_loaded": blas,
            "threads": torch.get_num_threads(),
        }
    )
)
