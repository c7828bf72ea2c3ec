//! dflow-op-web: web ingestion (`warc`, `html_dir`, `owi`, `crawl`), FAQ extraction
//! and the WebFAQ rules (`extract`, `clean`, `langid`, `dedup`), and the row
//! functions shared with SQL (`url_origin`, `extract_faq`,
//! `detect_language`).

pub mod charset;
pub mod clean;
pub mod crawl;
pub mod dedup;
pub mod extract;
mod filter;
pub mod html_dir;
pub mod langid;
pub mod owi;
pub mod udf;
pub mod warc;

use dflow_engine::Registry;

/// Registers this crate's operators and SQL functions.
pub fn register(registry: &mut Registry) {
    udf::register(registry);
    warc::register(registry);
    crawl::register(registry);
    html_dir::register(registry);
    owi::register(registry);
    extract::register(registry);
    clean::register(registry);
    langid::register(registry);
    dedup::register(registry);
}
