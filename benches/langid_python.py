#!/usr/bin/env python3
"""Python fastText (fasttext-predict, the C++ library) on the same Tatoeba
texts and model as benches/langid_bench.rs, one core: best of ROUNDS.

    pip install fasttext-predict==0.9.2.4
    python3 benches/langid_python.py ../shared/data/eval/tatoeba-laser operators/web/models/lid.176.ftz
"""
import os
import sys
import time

import fasttext

root, model_path = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
texts = []
for name in sorted(os.listdir(root)):
    if name.startswith("tatoeba."):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            texts.extend(line.replace("\r", " ") for line in f.read().splitlines())
t = time.perf_counter()
model = fasttext.load_model(model_path)
print(f"model load: {time.perf_counter() - t:.3f} s")
for k in (1, 10):
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for s in texts:
            try:
                model.predict(s, k=k)
            except Exception:
                pass
        best = min(best, time.perf_counter() - t)
    print(f"python k={k:<2} {len(texts)} texts  best of {rounds}: {best:.3f} s  {len(texts)/best:>8.0f} predictions/s")
