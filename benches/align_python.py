#!/usr/bin/env python3
"""NumPy side of benches/align.sh: N x N random unit vectors (384 dims),
the similarity matrix in row blocks, best match both ways.

    python3 benches/align_python.py 10000
"""
import os
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
rng = np.random.default_rng(0)
a = rng.random((n, 384), dtype=np.float32) - 0.5
b = rng.random((n, 384), dtype=np.float32) - 0.5
a /= np.linalg.norm(a, axis=1, keepdims=True)
b /= np.linalg.norm(b, axis=1, keepdims=True)
t = time.time()
row_best = np.empty(n, dtype=np.int64)
col_best_val = np.full(n, -np.inf, dtype=np.float32)
col_best = np.zeros(n, dtype=np.int64)
for s in range(0, n, 1024):
    sims = a[s : s + 1024] @ b.T
    row_best[s : s + 1024] = sims.argmax(axis=1)
    m = sims.max(axis=0)
    better = m > col_best_val
    col_best_val[better] = m[better]
    col_best[better] = sims.argmax(axis=0)[better] + s
secs = time.time() - t
mutual = int((col_best[row_best] == np.arange(n)).sum())
cores = os.cpu_count()
print(
    f"numpy {np.__version__} (BLAS matmul): {n} x {n} in {secs:.2f} s on {cores} cores = "
    f"{n * n / secs / cores / 1e6:.1f} M pairs/s/core ({mutual} mutual best)"
)
