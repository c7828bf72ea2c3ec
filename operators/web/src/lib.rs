//! dflow-op-web: web ingestion (`warc`, `html_dir`, `owi`) and the row functions shared with
//! SQL (`url_origin`). FAQ extraction, cleaning, language id and dedup land
//! here next.

pub mod charset;
pub mod html_dir;
pub mod owi;
pub mod udf;
pub mod warc;

use dflow_engine::Registry;

/// Registers this crate's operators and SQL functions.
pub fn register(registry: &mut Registry) {
    udf::register(registry);
    warc::register(registry);
    html_dir::register(registry);
    owi::register(registry);
}
