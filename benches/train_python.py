"""sentence-transformers' side of benches/train.sh: MultipleNegativesRankingLoss
(or, with LOSS margin_mse, MarginMSELoss on the teacher's margins of the 4
negatives) steps (query, positive, 4 hard negatives; AdamW) on the same rows, model,
batch and max length as dflow's `train`, on the CPU with 2 threads (or on
DEVICE, e.g. cuda; with PRECISION bf16, the steps run under bf16 autocast,
weights and optimiser in f32, as dflow's `precision: bf16`).

    python3 benches/train_python.py MODEL_DIR hard_negatives.jsonl STEPS BATCH [DEVICE] [PRECISION] [LOSS]
"""

import contextlib
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.losses import MarginMSELoss, MultipleNegativesRankingLoss

torch.set_num_threads(2)
model_dir, path, steps, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
precision = sys.argv[6] if len(sys.argv) > 6 else "f32"
loss_name = sys.argv[7] if len(sys.argv) > 7 else "mnrl"
rows = [json.loads(line) for line in open(path, encoding="utf-8")]
rows = [r for r in rows if len(r["negatives"]) >= 4]
model = SentenceTransformer(model_dir, device=device)
model.max_seq_length = 128
if loss_name == "margin_mse":
    rows = [r for r in rows if len(r.get("scores") or []) >= 4]
    loss = MarginMSELoss(model)
else:
    loss = MultipleNegativesRankingLoss(model, scale=20.0)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
model.train()


def autocast():
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step(chunk):
    columns = [[r["query"] for r in chunk], [r["positive"] for r in chunk]]
    columns += [[r["negatives"][i] for r in chunk] for i in range(4)]
    features = [model.tokenize(c) for c in columns]
    features = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in f.items()} for f in features]
    labels = None
    if loss_name == "margin_mse":
        labels = torch.tensor(
            [[r["positive_score"] - r["scores"][i] for i in range(4)] for r in chunk],
            device=device,
        )
    with autocast():
        value = loss(features, labels)
    value.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return float(value)


step(rows[:batch])  # warm-up, not timed
sync()
start = time.perf_counter()
for s in range(steps):
    chunk = rows[(s + 1) * batch % len(rows):][:batch]
    if len(chunk) < batch:
        chunk = rows[:batch]
    step(chunk)
sync()
elapsed = time.perf_counter() - start
examples = steps * batch
print(f"sentence-transformers {__import__('sentence_transformers').__version__} {loss_name} on PyTorch "
      f"{torch.__version__} ({device}, {precision}): {examples} examples in {elapsed:.1f} s = "
      f"{examples / elapsed:.2f} examples/s ({elapsed / steps:.2f} s/step)")
