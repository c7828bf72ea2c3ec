//! Metric parity with pytrec_eval: on the runs and qrels of
//! `data/trec_metrics.json` (ties, documents missing from the qrels, graded
//! relevance, queries without relevant documents, queries missing on either
//! side, random runs past rank 100), every metric of every query equals
//! pytrec_eval's to 1e-6, and the same queries are evaluated.
//! `scripts/trec_metrics.py` made the file.

use std::collections::{BTreeMap, HashMap};

use dflow_ir::metrics::evaluate;
use serde_json::Value;

#[test]
fn metrics_equal_pytrec_eval() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("data/trec_metrics.json")).expect("json");
    let mut checked = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap_or_default();
        let mut run: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for (q, docs) in case["run"].as_object().expect("run") {
            let docs = docs.as_object().expect("docs");
            run.insert(
                q.clone(),
                docs.iter()
                    .map(|(d, s)| (d.clone(), s.as_f64().expect("score")))
                    .collect(),
            );
        }
        let mut qrels: BTreeMap<String, HashMap<String, i64>> = BTreeMap::new();
        for (q, docs) in case["qrels"].as_object().expect("qrels") {
            let docs = docs.as_object().expect("docs");
            qrels.insert(
                q.clone(),
                docs.iter()
                    .map(|(d, g)| (d.clone(), g.as_i64().expect("grade")))
                    .collect(),
            );
        }
        let got = evaluate(&run, &qrels);
        let expected = case["expected"].as_object().expect("expected");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{name}: evaluated queries"
        );
        for (q, m) in &got {
            let e = &expected[q];
            for (key, value) in [
                ("ndcg_cut_10", m.ndcg_cut_10),
                ("mrr_10", m.mrr_10),
                ("recip_rank", m.recip_rank),
                ("recall_10", m.recall_10),
                ("recall_100", m.recall_100),
                ("map_cut_100", m.map_cut_100),
            ] {
                let want = e[key].as_f64().expect("number");
                assert!(
                    (value - want).abs() <= 1e-6,
                    "{name} {q} {key}: {value} vs pytrec_eval {want}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 500, "{checked}");
}
