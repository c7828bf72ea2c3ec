//! dflow-op-retrieval: from FAQ tables to retrieval data — bilingual
//! alignment (`align`), retrieval test sets (`testset`), BM25 hard-negative
//! mining over tantivy (`mine`) and their denoising (`negatives`).

pub mod align;
pub mod analysis;
pub mod bm25;
mod columns;
pub mod mine;
pub mod negatives;
pub mod testset;

use dflow_engine::Registry;

/// Registers this crate's operators.
pub fn register(registry: &mut Registry) {
    align::register(registry);
    mine::register(registry);
    negatives::register(registry);
    testset::register(registry);
}
