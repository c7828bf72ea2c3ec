#!/usr/bin/env python3
"""Tiny random BERT and XLM-R checkpoints (2 layers, hidden 32, vocab of a few
hundred), a cross-encoder of each, their tokenizers, and the reference
outputs of Python `transformers` for a batch of texts of mixed lengths:
the fixtures of operators/neural/tests/parity.rs.

    pip install torch transformers tokenizers safetensors
    python3 scripts/make_tiny_models.py operators/neural/tests/fixtures

Deterministic (seeded); rerunning rewrites the same files.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
    XLMRobertaModel,
)

OUT = sys.argv[1] if len(sys.argv) > 1 else "operators/neural/tests/fixtures"
CORPUS = [
    "How long does delivery take?", "Delivery takes two to three working days.",
    "Wie lange dauert die Lieferung?", "Die Lieferung dauert zwei bis drei Werktage.",
    "Combien de temps dure la livraison ?", "La livraison prend deux à trois jours ouvrables.",
    "¿Cuánto tarda el envío?", "El envío tarda de dos a tres días hábiles.",
    "Сколько времени занимает доставка?", "Доставка занимает от двух до трёх рабочих дней.",
    "配送にはどのくらい時間がかかりますか？", "配送には二、三営業日かかります。",
    "Can I pay by credit card?", "Yes, we accept all major credit cards and PayPal.",
    "Where is the shop?", "The shop is in Berlin, next to the station.",
]
TEXTS = [
    "How long does delivery take?",
    "Die Lieferung dauert zwei bis drei Werktage, manchmal auch länger, wenn viel los ist.",
    "Где магазин?",
    "配送にはどのくらい時間がかかりますか？",
    "Yes.",
    "Combien de temps dure la livraison en France et en Belgique, et quels sont les frais ?",
]
PAIRS = [
    ("How long does delivery take?", "Delivery takes two to three working days."),
    ("Where is the shop?", "The shop is in Berlin, next to the station, and opens at nine."),
    ("Can I pay by card?", "Yes."),
]


def bert_tokenizer():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(CORPUS, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return tok


def xlmr_tokenizer():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator(CORPUS, trainer)
    s, e = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", s), ("</s>", e)])
    tok.decoder = decoders.Metaspace()
    return tok


def batch(tok, items, pair=False):
    enc = [tok.encode(*i) if pair else tok.encode(i) for i in items]
    n = max(len(e.ids) for e in enc)
    pad = tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None else tok.token_to_id("<pad>")
    ids = torch.tensor([e.ids + [pad] * (n - len(e.ids)) for e in enc])
    types = torch.tensor([e.type_ids + [0] * (n - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc])
    return enc, ids, types, mask


def real_rows(x, mask):
    return [x[i, : int(mask[i].sum())].tolist() for i in range(x.shape[0])]


def save(model, tok, name, refs):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(refs, f, indent=None, separators=(",", ":"))


def encoder_refs(model, tok, pad_id):
    enc, ids, types, mask = batch(tok, TEXTS)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    h = out.last_hidden_state
    m = mask.unsqueeze(-1).float()
    mean = (h * m).sum(1) / m.sum(1)
    refs = {
        "texts": TEXTS,
        "ids": [e.ids for e in enc],
        "hidden": real_rows(h, mask),
        "mean": mean.tolist(),
        "cls": h[:, 0].tolist(),
    }
    if getattr(out, "pooler_output", None) is not None:
        refs["pooler"] = out.pooler_output.tolist()
    return refs


def ce_refs(model, tok):
    enc, ids, types, mask = batch(tok, PAIRS, pair=True)
    with torch.no_grad():
        logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    return {"pairs": [list(p) for p in PAIRS], "ids": [e.ids for e in enc], "type_ids": [e.type_ids for e in enc], "logits": logits.tolist()}


def main():
    torch.manual_seed(0)
    bt = bert_tokenizer()
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bcfg = BertConfig(vocab_size=bt.get_vocab_size(), max_position_embeddings=256, type_vocab_size=2,
                      pad_token_id=bt.token_to_id("[PAD]"), **common)
    bert = BertModel(bcfg).eval()
    save(bert, bt, "tiny-bert", encoder_refs(bert, bt, bcfg.pad_token_id))
    bce = BertForSequenceClassification(BertConfig(**(bcfg.to_diff_dict() | {"num_labels": 1}))).eval()
    save(bce, bt, "tiny-bert-ce", ce_refs(bce, bt))

    xt = xlmr_tokenizer()
    xcfg = XLMRobertaConfig(vocab_size=xt.get_vocab_size(), max_position_embeddings=258, type_vocab_size=1,
                            pad_token_id=xt.token_to_id("<pad>"), bos_token_id=0, eos_token_id=2,
                            layer_norm_eps=1e-5, **common)
    xlmr = XLMRobertaModel(xcfg, add_pooling_layer=False).eval()
    save(xlmr, xt, "tiny-xlmr", encoder_refs(xlmr, xt, xcfg.pad_token_id))
    xce = XLMRobertaForSequenceClassification(XLMRobertaConfig(**(xcfg.to_diff_dict() | {"num_labels": 3}))).eval()
    save(xce, xt, "tiny-xlmr-ce", ce_refs(xce, xt))


if __name__ == "__main__":
    main()
