//! The ports every model-using operator has: one table and a `model`
//! artifact.

use dflow_engine::{InputPort, InputPorts};

/// Any table on `table`, and the model artifact on `model`.
pub fn table_and_model(table: &str) -> InputPorts {
    InputPorts::Fixed(vec![
        InputPort::any_table(table),
        InputPort::artifact("model"),
    ])
}
