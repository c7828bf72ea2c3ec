//! dflow-op-retrieval: from FAQ tables to retrieval data — bilingual
//! alignment (`align`), retrieval test sets (`testset`), BM25 hard-negative
//! mining over tantivy (`mine`), their denoising (`negatives`), and
//! retrieval evaluation with trec_eval's metrics (`evaluate`, `report`;
//! the metrics and dense top-k themselves are in `dflow-ir`).

pub mod align;
pub mod analysis;
pub mod bm25;
pub mod evaluate;
pub mod mine;
pub mod negatives;
pub mod report;
pub mod testset;

use dflow_engine::Registry;

/// Registers this crate's operators.
pub fn register(registry: &mut Registry) {
    align::register(registry);
    evaluate::register(registry);
    mine::register(registry);
    negatives::register(registry);
    report::register(registry);
    testset::register(registry);
}
