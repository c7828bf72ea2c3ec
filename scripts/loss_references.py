#!/usr/bin/env python3
"""Loss and gradient references for operators/neural/tests/losses.rs:
sentence-transformers' MultipleNegativesRankingLoss (scale 20, cosine; one
hard negative per anchor, in-batch only, and symmetric) and MarginMSELoss (dot
product) on the tiny BERT fixture, in eval mode (no dropout, as dflow's
encoder has none), PyTorch on the CPU in float64 for a clean reference.

    pip install torch sentence-transformers
    python3 scripts/loss_references.py operators/neural/tests/fixtures/tiny-bert \
        operators/neural/tests/fixtures/tiny-bert/losses.json
"""
import json
import sys

import torch
from sentence_transformers import SentenceTransformer, losses, models

src, dst = sys.argv[1], sys.argv[2]
word = models.Transformer(src)
pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
model = SentenceTransformer(modules=[word, pool], device="cpu").double()
model.eval()

queries = ["how long does delivery take", "can i return a cake", "do you bake bread on sunday"]
positives = ["delivery takes two days", "cakes cannot be returned", "we bake bread every sunday morning"]
negatives = ["our shop opens at seven", "bread is baked with rye", "gift cards work online"]
teacher_margins = [2.5, -0.5, 1.25]

PARAMS = [
    "0.model.encoder.layer.0.attention.self.query.weight",
    "0.model.encoder.layer.1.output.dense.bias",
    "0.model.embeddings.LayerNorm.weight",
]


def features(texts):
    f = model.tokenize(texts)
    return {k: v for k, v in f.items() if isinstance(v, torch.Tensor)}


def run(loss_fn, columns, labels=None):
    model.zero_grad()
    loss = loss_fn([features(c) for c in columns], labels)
    loss.backward()
    named = dict(model.named_parameters())
    return {
        "loss": loss.item(),
        "grads": {p: named[p].grad.detach().flatten().tolist() for p in PARAMS},
    }


out = {
    "queries": queries,
    "positives": positives,
    "negatives": negatives,
    "teacher_margins": teacher_margins,
    "mnrl_hard": run(losses.MultipleNegativesRankingLoss(model), [queries, positives, negatives]),
    "mnrl_in_batch": run(losses.MultipleNegativesRankingLoss(model), [queries, positives]),
    "mnrl_symmetric": run(losses.MultipleNegativesSymmetricRankingLoss(model), [queries, positives]),
    "margin_mse": run(
        losses.MarginMSELoss(model),
        [queries, positives, negatives],
        torch.tensor(teacher_margins, dtype=torch.float64),
    ),
}
with open(dst, "w") as f:
    json.dump(out, f)
print({k: v["loss"] for k, v in out.items() if isinstance(v, dict) and "loss" in v})
