#!/usr/bin/env python3
"""sentence-transformers module references for operators/neural/tests/st_modules.rs:

- every single Pooling mode (cls, max, mean, mean_sqrt_len_tokens,
  weightedmean, lasttoken) on the tiny BERT fixture, through
  sentence-transformers: `tiny-bert/pooling.json`;
- a LaBSE-shaped tiny model (the tiny BERT, CLS pooling, Dense 32 -> 16 with
  tanh, Normalize) with `query`/`passage` prompts, saved by
  sentence-transformers into `tiny-labse/`, and its embeddings of the texts
  with the `query` prompt: `tiny-labse/reference.json`.

Float32 on the CPU, eval mode.

    pip install torch sentence-transformers
    python3 scripts/st_module_references.py operators/neural/tests/fixtures
"""
import json
import os
import shutil
import sys

import torch
from sentence_transformers import SentenceTransformer, models

FIXTURES = sys.argv[1]
BERT = os.path.join(FIXTURES, "tiny-bert")
TEXTS = json.load(open(os.path.join(BERT, "reference.json")))["texts"]
MODES = ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]


def transformer():
    return models.Transformer(BERT, max_seq_length=512)


pooled = {}
for mode in MODES:
    word = transformer()
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode=mode)
    model = SentenceTransformer(modules=[word, pool], device="cpu").eval()
    pooled[mode] = model.encode(TEXTS, convert_to_numpy=True, batch_size=3).tolist()
with open(os.path.join(BERT, "pooling.json"), "w") as f:
    json.dump({"texts": TEXTS, "pooled": pooled}, f)

torch.manual_seed(7)
word = transformer()
pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
dense = models.Dense(in_features=32, out_features=16, activation_function=torch.nn.Tanh())
model = SentenceTransformer(
    modules=[word, pool, dense, models.Normalize()],
    device="cpu",
    prompts={"query": "query: ", "passage": "passage: "},
).eval()
out = os.path.join(FIXTURES, "tiny-labse")
shutil.rmtree(out, ignore_errors=True)
model.save(out, safe_serialization=True)
# Only what loading needs (the README and the tokenizer's extra files
# repeat what is elsewhere).
for extra in ["README.md", "special_tokens_map.json", "vocab.txt"]:
    path = os.path.join(out, extra)
    if os.path.exists(path):
        os.remove(path)
reloaded = SentenceTransformer(out, device="cpu").eval()
reference = {
    "texts": TEXTS,
    "query": reloaded.encode(TEXTS, prompt_name="query", convert_to_numpy=True).tolist(),
    "plain": reloaded.encode(TEXTS, convert_to_numpy=True).tolist(),
}
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(reference, f)
print(sorted(os.listdir(out)))
