#!/usr/bin/env python3
"""bm25s side of benches/mine.sh: the same corpus and queries as
mine_bench.rs (XQuAD-R sentences repeated with a copy marker to N docs,
whitespace + lower-case tokens), Lucene BM25 k1 = 0.9, b = 0.4, top-k.

    pip install bm25s==0.3.16 numba
    python3 benches/mine_python.py ../shared/data/eval/xquad-r 200000 2000 200 2

Both of bm25s' retrieval backends are timed: `numpy` (the default) and
`numba` (its fastest, when numba is installed; the first call, which
compiles, is run once before timing).
"""
import gzip
import json
import sys
import time
from pathlib import Path

import bm25s


def load(d):
    docs, queries = [], []
    for f in sorted(Path(d).glob("*.json.gz")):
        for article in json.load(gzip.open(f))["data"]:
            for para in article["paragraphs"]:
                docs.extend(para["sentences"])
                queries.extend(qa["question"] for qa in para["qas"])
    return docs, queries


def main():
    d = sys.argv[1]
    n, q, k, threads = (int(x) for x in sys.argv[2:6])
    base, questions = load(d)
    corpus = [f"{base[i % len(base)]} copy{i // len(base)}" for i in range(n)]
    step = max(len(questions) // max(q, 1), 1)
    queries = questions[::step][:q]
    t = time.time()
    r = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    r.index([c.lower().split() for c in corpus], show_progress=False)
    index_s = time.time() - t
    toks = [[w for w in x.lower().split() if w in r.vocab_dict] or ["copy0"] for x in queries]
    print(f"bm25s {bm25s.__version__}: {n} docs indexed in {index_s:.2f} s")
    for backend in ["numpy", "numba"]:
        try:
            r.backend = backend
            r.retrieve(toks[:2], k=k, n_threads=threads, show_progress=False)  # warm-up
        except Exception as e:  # numba missing
            print(f"  backend {backend}: not available ({e})")
            continue
        t = time.time()
        r.retrieve(toks, k=k, n_threads=threads, show_progress=False)
        search_s = time.time() - t
        print(
            f"  backend {backend}: {len(queries)} queries top-{k} in {search_s:.2f} s = "
            f"{len(queries) / search_s:.0f} queries/s on {threads} threads"
        )


if __name__ == "__main__":
    main()
