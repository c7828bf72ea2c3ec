"""The Python side of benches/dense.sh: exact top-100 by inner product over
N unit vectors (384 dims) for Q queries, with NumPy (blocked matrix product
+ argpartition, as a user would write it) and FAISS IndexFlatIP, on the
vectors dense_bench.rs wrote (so the top hits can be compared).

    python3 benches/dense_python.py N Q
"""

import sys
import tempfile
import time

import numpy as np


n, q = int(sys.argv[1]), int(sys.argv[2])
dim = 384
# The vectors dense_bench.rs generated and left in the temp directory.
tmp = tempfile.gettempdir()
corpus = np.fromfile(f"{tmp}/dflow-dense-corpus.f32", dtype="<f4").reshape(-1, dim)
queries = np.fromfile(f"{tmp}/dflow-dense-queries.f32", dtype="<f4").reshape(-1, dim)
assert corpus.shape[0] == n and queries.shape[0] == q, "run dense_bench with the same N and Q first"

start = time.perf_counter()
first = None
for b in range(0, q, 256):
    scores = queries[b:b + 256] @ corpus.T
    top = np.argpartition(-scores, 99, axis=1)[:, :100]
    order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, 1)
    if first is None:
        first = top[0, :3].tolist()
secs = time.perf_counter() - start
print(f"NumPy {np.__version__}: {q} queries × {n} vectors, top 100, in {secs:.2f} s = "
      f"{q / secs:.1f} queries/s (first query's top 3: {first})")

try:
    import faiss
except ImportError:
    print("faiss not installed (pip install faiss-cpu): skipped")
    sys.exit(0)
faiss.omp_set_num_threads(2)
index = faiss.IndexFlatIP(dim)
index.add(corpus)
start = time.perf_counter()
_, ids = index.search(queries, 100)
secs = time.perf_counter() - start
print(f"FAISS {faiss.__version__} IndexFlatIP: {q} queries × {n} vectors, top 100, in "
      f"{secs:.2f} s = {q / secs:.1f} queries/s (first query's top 3: {ids[0, :3].tolist()})")
