#!/usr/bin/env python3
"""Loads models that dflow saved in the sentence-transformers layout with
Python sentence-transformers and compares their embeddings with the
transformers reference of the checkpoint they came from (cosine ≥ 0.9999).

    DFLOW_KEEP_SAVED=/tmp/saved cargo test --workspace --test parity saved_models
    python3 scripts/st_load_check.py /tmp/saved
"""
import json
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

root = Path(sys.argv[1])
fixtures = Path(__file__).resolve().parent.parent / "operators/neural/tests/fixtures"
for d in sorted(p for p in root.iterdir() if p.is_dir()):
    ref = json.loads((fixtures / d.name / "reference.json").read_text())
    model = SentenceTransformer(str(d), device="cpu")
    got = model.encode(ref["texts"], convert_to_numpy=True)
    want = np.array(ref["mean"], dtype=np.float32).reshape(got.shape)
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    print(f"{d.name}: min cosine {cos.min():.6f}, max abs diff {np.abs(got - want).max():.2e}")
    assert cos.min() >= 0.9999, d.name
