//! dflow-op-web: web ingestion and FAQ extraction operators, and the row
//! functions they share with SQL.

pub mod udf;

use dflow_engine::Registry;

/// Registers this crate's operators and SQL functions.
pub fn register(registry: &mut Registry) {
    udf::register(registry);
}
