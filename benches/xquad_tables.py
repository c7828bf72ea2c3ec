#!/usr/bin/env python3
"""XQuAD-R as retrieval tables for `evaluate`: per language, the questions
(queries), every sentence (corpus) and the sentence holding each answer
(qrels), as CSV files with the columns `testset` writes.

    python3 benches/xquad_tables.py ../shared/data/eval/xquad-r OUT_DIR [QUERIES_PER_LANGUAGE]
"""
import csv
import gzip
import json
import sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9
out.mkdir(parents=True, exist_ok=True)
with open(out / "queries.csv", "w", newline="") as fq, open(out / "corpus.csv", "w", newline="") as fc, open(
    out / "qrels.csv", "w", newline=""
) as fr:
    q, c, r = csv.writer(fq), csv.writer(fc), csv.writer(fr)
    q.writerow(["language", "_id", "text"])
    c.writerow(["language", "_id", "title", "text"])
    r.writerow(["language", "query-id", "corpus-id", "score"])
    for f in sorted(src.glob("*.json.gz")):
        lang = f.name.split(".")[0]
        n, p = 0, 0
        for article in json.load(gzip.open(f))["data"]:
            for para in article["paragraphs"]:
                for s, sentence in enumerate(para["sentences"]):
                    c.writerow([lang, f"{lang}-p{p}-s{s}", "", sentence])
                for qa in para["qas"]:
                    start = qa["answers"][0]["answer_start"]
                    s = next((i for i, (a, b) in enumerate(para["sentence_breaks"]) if a <= start <= b), None)
                    if s is None or n >= limit:
                        continue
                    q.writerow([lang, f"{lang}-{qa['id']}", qa["question"]])
                    r.writerow([lang, f"{lang}-{qa['id']}", f"{lang}-p{p}-s{s}", 1])
                    n += 1
                p += 1
