#!/usr/bin/env python3
"""A model trained by dflow, loaded in sentence-transformers, gives dflow's
own vectors (cosine ≥ 0.9999).

    DFLOW_KEEP_TRAINED=/tmp/trained cargo test --workspace --test train_pipeline
    python3 scripts/st_trained_check.py /tmp/trained
"""
import json
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

d = Path(sys.argv[1])
text = (d / "dflow_vectors.json").read_text().strip()
try:
    rows = json.loads(text)
except json.JSONDecodeError:
    rows = [json.loads(l) for l in text.splitlines()]
model = SentenceTransformer(str(d), device="cpu")
got = model.encode([r["query"] for r in rows], convert_to_numpy=True)
want = np.array([r["embedding"] for r in rows], dtype=np.float32)
cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
print(f"{len(rows)} texts: min cosine {cos.min():.6f}, max abs diff {np.abs(got - want).max():.2e}")
assert cos.min() >= 0.9999
