#!/usr/bin/env python3
"""Expected retrieval metrics for operators/retrieval/src/metrics.rs, from
pytrec_eval (trec_eval's own code): runs and qrels with ties, documents
missing from the qrels, graded relevance, queries without relevant
documents, queries missing on either side, and random cases past rank 100.

MRR@10 is `recip_rank` over each run cut to its first 10 documents in
trec_eval's order (score descending, then document id descending).

    pip install pytrec_eval-terrier==0.5.7
    python3 scripts/trec_metrics.py ir/tests/data/trec_metrics.json
"""
import json
import random
import sys

import pytrec_eval

MEASURES = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100", "recip_rank"}

cases = []

# Hand-made edge cases.
cases.append({
    "name": "ties_missing_graded",
    "qrels": {
        "q1": {"d1": 2, "d2": 0, "d3": 1, "d9": 3},
        "q2": {"d1": 0, "d2": 0},            # no relevant document
        "q3": {"d5": 1},                      # not in the run
        "q5": {"a": 1, "b": 1, "c": 2},
    },
    "run": {
        "q1": {"d1": 1.0, "d2": 1.0, "d3": 0.5, "d4": 0.9, "d7": 0.5, "d8": 0.5},
        "q2": {"d1": 3.0, "d3": 2.0},
        "q4": {"d1": 1.0},                    # not in the qrels
        "q5": {"c": 0.1, "b": 0.1, "a": 0.1, "z": 0.1, "y": 0.2},
    },
})

rng = random.Random(7)
for c in range(6):
    qrels, run = {}, {}
    for q in range(15):
        qid = f"q{c}-{q}"
        docs = [f"d{rng.randrange(400)}" for _ in range(rng.randrange(1, 8))]
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in docs}
        n = rng.choice([5, 30, 150])
        pool = list(qrels[qid]) + [f"d{rng.randrange(400)}" for _ in range(n)]
        # Coarse scores make ties common.
        run[qid] = {d: round(rng.random() * 20) / 4 for d in pool}
    cases.append({"name": f"random{c}", "qrels": qrels, "run": run})

for case in cases:
    ev = pytrec_eval.RelevanceEvaluator(case["qrels"], MEASURES)
    res = ev.evaluate(case["run"])
    # trec_eval's order for the @10 cut: score desc, then doc id desc.
    top10 = {
        q: dict(sorted(docs.items(), key=lambda kv: (-kv[1], tuple(-ord(ch) for ch in kv[0])))[:10])
        for q, docs in case["run"].items()
    }
    mrr = pytrec_eval.RelevanceEvaluator(case["qrels"], {"recip_rank"}).evaluate(top10)
    case["expected"] = {
        q: {
            "ndcg_cut_10": m["ndcg_cut_10"],
            "recall_10": m["recall_10"],
            "recall_100": m["recall_100"],
            "map_cut_100": m["map_cut_100"],
            "recip_rank": m["recip_rank"],
            "mrr_10": mrr[q]["recip_rank"],
        }
        for q, m in res.items()
    }

with open(sys.argv[1], "w") as f:
    json.dump(cases, f, indent=1, sort_keys=True)
print(len(cases), "cases;", sum(len(c["expected"]) for c in cases), "query results")
