#!/usr/bin/env python3
"""Top-10 BM25 lists of Python `bm25s` on XQuAD-R, the expectation of
operators/retrieval/tests/bm25_xquad.rs.

Corpus: every sentence of a language file (id `p{paragraph}-s{sentence}`,
paragraphs numbered across articles); queries: the first QUERIES questions
in file order. Tokens: lower-cased, split on whitespace (nothing else), the
same in both tools. BM25 Lucene variant, k1 = 0.9, b = 0.4. Ranking: score
descending, then corpus order.

    pip install bm25s==0.3.16
    python3 scripts/bm25s_xquad.py ../shared/data/eval/xquad-r \
        operators/retrieval/tests/data/xquad_bm25s_top10.json.gz
"""
import gzip
import json
import sys
from pathlib import Path

import bm25s
import numpy as np

QUERIES = 200
K = 10


def load(path):
    data = json.load(gzip.open(path))
    corpus, ids, queries = [], [], []
    p = 0
    for article in data["data"]:
        for para in article["paragraphs"]:
            for s, sentence in enumerate(para["sentences"]):
                ids.append(f"p{p}-s{s}")
                corpus.append(sentence)
            for qa in para["qas"]:
                queries.append((qa["id"], qa["question"]))
            p += 1
    return ids, corpus, queries[:QUERIES]


def tok(text):
    return text.lower().split()


def main(src, dst):
    out = {}
    for f in sorted(Path(src).glob("*.json.gz")):
        lang = f.name.split(".")[0]
        ids, corpus, queries = load(f)
        r = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
        r.index([tok(c) for c in corpus], show_progress=False)
        tops, scores = [], []
        for _, q in queries:
            s = r.get_scores(tok(q)) if any(t in r.vocab_dict for t in tok(q)) else np.zeros(len(ids))
            order = sorted(range(len(ids)), key=lambda i: (-float(s[i]), i))[:K]
            tops.append([ids[i] for i in order])
            scores.append([round(float(s[i]), 6) for i in order])
        out[lang] = {"queries": [q for q, _ in queries], "top": tops, "scores": scores}
        print(lang, len(corpus), "sentences", len(queries), "queries")
    with gzip.open(dst, "wt") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
