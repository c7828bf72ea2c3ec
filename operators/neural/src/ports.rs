//! The ports every model-using operator has: one table and a `model`
//! artifact; and the output of those that add columns to each row of a
//! `rows` table.

use std::collections::BTreeMap;

use dflow_engine::datafusion::arrow::datatypes::{Schema, SchemaRef};
use dflow_engine::ports::OUT;
use dflow_engine::{InputPort, InputPorts, PortType, Result};

use crate::text::Template;

/// Any table on `table`, and the model artifact on `model`.
pub fn table_and_model(table: &str) -> InputPorts {
    InputPorts::Fixed(vec![
        InputPort::any_table(table),
        InputPort::artifact("model"),
    ])
}

/// The `out` table of an operator `op` that reads `template` from each
/// row of `rows` and adds columns: `output_schema` of the input's schema,
/// once the template's columns are found there.
pub fn rows_out(
    inputs: &BTreeMap<String, PortType>,
    op: &str,
    template: &Template,
    output_schema: impl Fn(&Schema) -> SchemaRef,
) -> Result<BTreeMap<String, PortType>> {
    let s = dflow_engine::kit::columns::input_schema(inputs, "rows", op)?;
    template.check(s)?;
    Ok(BTreeMap::from([(
        OUT.to_string(),
        PortType::Table(output_schema(s)),
    )]))
}
