//! Retrieval metrics exactly as trec_eval (and so pytrec_eval) computes
//! them.
//!
//! - A run is ranked by score descending, ties by document id descending
//!   (byte order), as trec_eval sorts.
//! - A document is relevant when its qrels grade is ≥ 1; documents missing
//!   from the qrels are not relevant.
//! - `ndcg_cut_10`: DCG with the grade as gain and `log2(rank + 1)` as
//!   discount over the first 10, over the ideal DCG of the qrels' grades.
//! - `recall_k`: relevant documents in the first k over all relevant ones.
//! - `map_cut_100`: the precision at each relevant document's rank within
//!   the first 100, summed, over all relevant documents.
//! - `recip_rank`: 1 / rank of the first relevant document; `mrr_10` is the
//!   same over the first 10 only.
//!
//! A query with no relevant document scores 0 everywhere; queries missing
//! from the qrels or from the run are left out, as pytrec_eval leaves them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// The metrics of one query.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryMetrics {
    pub ndcg_cut_10: f64,
    pub mrr_10: f64,
    pub recip_rank: f64,
    pub recall_10: f64,
    pub recall_100: f64,
    pub map_cut_100: f64,
}

impl QueryMetrics {
    /// Names and values, in report order.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("ndcg@10", self.ndcg_cut_10),
            ("mrr@10", self.mrr_10),
            ("recall@10", self.recall_10),
            ("recall@100", self.recall_100),
            ("map@100", self.map_cut_100),
            ("mrr", self.recip_rank),
        ]
    }

    /// The mean of each metric over `queries` (0 for none).
    pub fn mean<'a>(queries: impl IntoIterator<Item = &'a QueryMetrics>) -> QueryMetrics {
        let mut sum = QueryMetrics::default();
        let mut n = 0usize;
        for q in queries {
            sum.ndcg_cut_10 += q.ndcg_cut_10;
            sum.mrr_10 += q.mrr_10;
            sum.recip_rank += q.recip_rank;
            sum.recall_10 += q.recall_10;
            sum.recall_100 += q.recall_100;
            sum.map_cut_100 += q.map_cut_100;
            n += 1;
        }
        if n == 0 {
            return sum;
        }
        let n = n as f64;
        QueryMetrics {
            ndcg_cut_10: sum.ndcg_cut_10 / n,
            mrr_10: sum.mrr_10 / n,
            recip_rank: sum.recip_rank / n,
            recall_10: sum.recall_10 / n,
            recall_100: sum.recall_100 / n,
            map_cut_100: sum.map_cut_100 / n,
        }
    }
}

/// trec_eval's order: score descending, then document id descending.
fn trec_order(a: &(&str, f64), b: &(&str, f64)) -> Ordering {
    b.1.total_cmp(&a.1).then_with(|| b.0.cmp(a.0))
}

/// The metrics of one query: its retrieved (document, score) list in any
/// order, and its qrels (document → grade).
pub fn evaluate_query(run: &[(&str, f64)], qrels: &HashMap<&str, i64>) -> QueryMetrics {
    let mut ranked: Vec<(&str, f64)> = run.to_vec();
    ranked.sort_by(trec_order);
    let grade = |d: &str| qrels.get(d).copied().unwrap_or(0);
    let num_rel = qrels.values().filter(|g| **g >= 1).count();
    if num_rel == 0 {
        return QueryMetrics::default();
    }
    let mut m = QueryMetrics::default();
    let mut dcg = 0.0;
    let mut found = 0usize;
    let mut precision_sum = 0.0;
    for (i, (doc, _)) in ranked.iter().enumerate() {
        let rank = i + 1;
        let g = grade(doc);
        if g < 1 {
            continue;
        }
        found += 1;
        if m.recip_rank == 0.0 {
            m.recip_rank = 1.0 / rank as f64;
            if rank <= 10 {
                m.mrr_10 = m.recip_rank;
            }
        }
        if rank <= 10 {
            dcg += g as f64 / (rank as f64 + 1.0).log2();
            m.recall_10 += 1.0;
        }
        if rank <= 100 {
            m.recall_100 += 1.0;
            precision_sum += found as f64 / rank as f64;
        }
    }
    let mut ideal: Vec<i64> = qrels.values().copied().filter(|g| *g >= 1).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| *g as f64 / (i as f64 + 2.0).log2())
        .sum();
    m.ndcg_cut_10 = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    m.recall_10 /= num_rel as f64;
    m.recall_100 /= num_rel as f64;
    m.map_cut_100 = precision_sum / num_rel as f64;
    m
}

/// Every query that is in both the run and the qrels.
pub fn evaluate(
    run: &BTreeMap<String, Vec<(String, f64)>>,
    qrels: &BTreeMap<String, HashMap<String, i64>>,
) -> BTreeMap<String, QueryMetrics> {
    run.iter()
        .filter_map(|(q, docs)| {
            let rels = qrels.get(q)?;
            let rels: HashMap<&str, i64> = rels.iter().map(|(d, g)| (d.as_str(), *g)).collect();
            let docs: Vec<(&str, f64)> = docs.iter().map(|(d, s)| (d.as_str(), *s)).collect();
            Some((q.clone(), evaluate_query(&docs, &rels)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_query() {
        // Ranked: d2 (0), d1 (2), d4, d8, d7, d3 (1); d9 (3) not retrieved.
        let run = [
            ("d1", 1.0),
            ("d2", 1.0),
            ("d3", 0.5),
            ("d4", 0.9),
            ("d7", 0.5),
            ("d8", 0.5),
        ];
        let qrels: HashMap<&str, i64> = [("d1", 2), ("d2", 0), ("d3", 1), ("d9", 3)].into();
        let m = evaluate_query(&run, &qrels);
        assert_eq!(m.recip_rank, 0.5);
        assert!((m.recall_10 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.map_cut_100 - (0.5 + 2.0 / 6.0) / 3.0).abs() < 1e-12);
        let dcg = 2.0 / 3f64.log2() + 1.0 / 7f64.log2();
        let idcg = 3.0 + 2.0 / 3f64.log2() + 0.5;
        assert!((m.ndcg_cut_10 - dcg / idcg).abs() < 1e-12);
    }

    #[test]
    fn no_relevant_document_scores_zero() {
        let qrels: HashMap<&str, i64> = [("d1", 0)].into();
        assert_eq!(
            evaluate_query(&[("d1", 1.0)], &qrels),
            QueryMetrics::default()
        );
    }
}
