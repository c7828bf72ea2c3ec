#!/usr/bin/env python3
"""Loss and gradient references for operators/neural/tests/losses.rs:
sentence-transformers' MultipleNegativesRankingLoss (scale 20, cosine; one
hard negative per anchor, in-batch only, and symmetric) and MarginMSELoss (dot
product; with 1, 3 and 7 negatives per query, and with 3 plus half the
in-batch MNRL, as `op: distill` with `mnrl_weight: 0.5`) on the tiny BERT
fixture, in eval mode (the fixture's dropout rates are 0; dflow's losses are
compared without dropout, whose masks no two libraries draw alike), PyTorch
on the CPU in float64 for a clean reference.

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
# Seven negatives per query (the first is `negatives`), with teacher margins.
more_negatives = [
    "opening hours are listed online", "we ship to every country", "parking is free",
    "the cafe serves breakfast", "orders can be tracked", "rye flour is organic",
]
negatives_k = [
    [negatives[i]] + [more_negatives[(i + j) % len(more_negatives)] for j in range(6)]
    for i in range(3)
]
margins_k = [[round(2.0 - 0.5 * j + 0.25 * i, 2) for j in range(7)] for i in range(3)]

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


def margin_mse_k(k, mnrl_weight=0.0):
    columns = [queries, positives] + [[negatives_k[i][j] for i in range(3)] for j in range(k)]
    labels = torch.tensor([row[:k] for row in margins_k], dtype=torch.float64)
    mm = losses.MarginMSELoss(model)
    mnrl = losses.MultipleNegativesRankingLoss(model)

    def loss_fn(feats, labels):
        loss = mm(feats, labels)
        if mnrl_weight:
            loss = loss + mnrl_weight * mnrl([features(queries), features(positives)], None)
        return loss

    return run(loss_fn, columns, labels)


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
out["negatives_k"] = negatives_k
out["margins_k"] = margins_k
out["margin_mse_k1"] = margin_mse_k(1)
out["margin_mse_k3"] = margin_mse_k(3)
out["margin_mse_k7"] = margin_mse_k(7)
out["distill_k3"] = margin_mse_k(3, mnrl_weight=0.5)
with open(dst, "w") as f:
    json.dump(out, f)
print({k: v["loss"] for k, v in out.items() if isinstance(v, dict) and "loss" in v})
