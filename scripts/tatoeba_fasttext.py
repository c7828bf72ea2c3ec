#!/usr/bin/env python3
"""Python fastText's top-1 label for every Tatoeba sentence, with the same
lid.176.ftz that dflow bundles: the expectation of
operators/web/tests/langid_tatoeba.rs.

    pip install fasttext-predict==0.9.2.4
    python3 scripts/tatoeba_fasttext.py ../shared/data/eval/tatoeba-laser \
        operators/web/models/lid.176.ftz | gzip -9n > operators/web/tests/tatoeba_fasttext.json.gz
"""
import json
import os
import sys

import fasttext

root, model_path = sys.argv[1], sys.argv[2]
model = fasttext.load_model(model_path)
out = {}
for name in sorted(os.listdir(root)):
    if not name.startswith("tatoeba."):
        continue
    with open(os.path.join(root, name), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    labels = []
    for line in lines:
        text = line.replace("\n", " ").replace("\r", " ")
        try:
            (label,), _ = model.predict(text, k=1)
            labels.append(label.replace("__label__", ""))
        except Exception:  # empty line: no words
            labels.append("")
    out[name] = labels
json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=True)
