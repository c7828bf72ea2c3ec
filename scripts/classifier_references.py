#!/usr/bin/env python3
"""Sequence classifiers for operators/neural/tests/classify.rs: the tiny BERT
and tiny XLM-R fixtures with random classification heads (seeded), saved by
`transformers`, and their logits and probabilities on the fixtures' texts:

- `tiny-bert-topic`: BertForSequenceClassification with WebFAQ 2.0's 8
  topic classes (single label: softmax);
- `tiny-xlmr-multi`: XLMRobertaForSequenceClassification with 3 labels and
  `problem_type: multi_label_classification` (sigmoid per label).

    pip install torch transformers tokenizers
    python3 scripts/classifier_references.py operators/neural/tests/fixtures
"""
import json
import os
import shutil
import sys

import torch
from tokenizers import Tokenizer
from transformers import BertForSequenceClassification, XLMRobertaForSequenceClassification

FIXTURES = sys.argv[1]
TOPICS = [
    "Products and Commercial Services",
    "Traveling and Hospitality",
    "Healthcare Services, Wellness and Lifestyle",
    "Entertainment, Recreation and Leisure",
    "Employment, Education and Training",
    "Banking, Financial Services and Insurance",
    "Legal Services, Regulations and Government",
    "General Information and Other",
]


def make(cls, base, name, labels, **extra):
    torch.manual_seed(11)
    src = os.path.join(FIXTURES, base)
    model = cls.from_pretrained(
        src,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)},
        **extra,
    ).eval()
    # Heads initialised at 0.02 give every text the same label: spread them.
    with torch.no_grad():
        for p in model.classifier.parameters():
            p.mul_(50)
    out = os.path.join(FIXTURES, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(os.path.join(src, "tokenizer.json"), out)
    texts = json.load(open(os.path.join(src, "reference.json")))["texts"]
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    enc = [tok.encode(t) for t in texts]
    n = max(len(e.ids) for e in enc)
    pad = model.config.pad_token_id
    ids = torch.tensor([e.ids + [pad] * (n - len(e.ids)) for e in enc])
    types = torch.tensor([e.type_ids + [0] * (n - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc])
    with torch.no_grad():
        logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    multi = model.config.problem_type == "multi_label_classification"
    probs = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(
            {
                "texts": texts,
                "logits": logits.tolist(),
                "probs": probs.tolist(),
                "labels": [model.config.id2label[int(i)] for i in probs.argmax(-1)],
            },
            f,
        )


make(BertForSequenceClassification, "tiny-bert", "tiny-bert-topic", TOPICS)
make(
    XLMRobertaForSequenceClassification,
    "tiny-xlmr",
    "tiny-xlmr-multi",
    ["faq", "howto", "opinion"],
    problem_type="multi_label_classification",
)
