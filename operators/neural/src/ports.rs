//! The ports every model-using operator has: one table and a `model`
//! artifact.

use std::collections::BTreeMap;

use dflow_engine::datafusion::arrow::datatypes::SchemaRef;
use dflow_engine::{Error, InputPort, InputPorts, PortType, Result};

/// Any table on `table`, and the model artifact on `model`.
pub fn table_and_model(table: &str) -> InputPorts {
    InputPorts::Fixed(vec![
        InputPort::any_table(table),
        InputPort::artifact("model"),
    ])
}

/// The schema on table port `port` at plan time.
pub fn table_schema<'a>(
    inputs: &'a BTreeMap<String, PortType>,
    port: &str,
    op: &str,
) -> Result<&'a SchemaRef> {
    match inputs.get(port) {
        Some(PortType::Table(s)) => Ok(s),
        _ => Err(Error::internal(format!("{op}: no `{port}` input"))),
    }
}
