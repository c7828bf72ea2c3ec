//! What the row filters (`clean`, `langid`, `dedup`) share: their ports
//! (`out`, and `rejected` = the input's columns plus `reason`), splitting a
//! batch into kept and dropped rows.

use dflow_engine::ports::{OUT, REJECTED};
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use dflow_engine::datafusion::arrow::compute::filter_record_batch;
use dflow_engine::datafusion::arrow::datatypes::{Schema, SchemaRef};
use dflow_engine::{Error, Outputs, PortType, Result};

/// The ports of a filter reading table port `port`: `out` with the schema
/// `out_schema` makes of the input's, `rejected` with the input's columns
/// and `reason`.
pub fn filter_ports(
    inputs: &BTreeMap<String, PortType>,
    port: &str,
    out_schema: impl Fn(&Schema) -> SchemaRef,
) -> Result<BTreeMap<String, PortType>> {
    let Some(PortType::Table(s)) = inputs.get(port) else {
        return Err(Error::internal(format!("no table on input port `{port}`")));
    };
    Ok(BTreeMap::from([
        (OUT.to_string(), PortType::Table(out_schema(s))),
        (
            REJECTED.to_string(),
            PortType::Table(dflow_schemas::with_reason(s)),
        ),
    ]))
}

/// Rows whose `reasons` entry is `None` are kept from `kept_batch` and
/// written to `out`; the others are written to `rejected` as they are in
/// `original`, with their reason appended.
pub fn write_split(
    outputs: &mut Outputs,
    kept_batch: &RecordBatch,
    original: &RecordBatch,
    reasons: &[Option<String>],
) -> Result<()> {
    let keep: BooleanArray = reasons.iter().map(|r| Some(r.is_none())).collect();
    let drop: BooleanArray = reasons.iter().map(|r| Some(r.is_some())).collect();
    let out = filter_record_batch(kept_batch, &keep)?;
    let dropped = filter_record_batch(original, &drop)?;
    let why: StringArray = reasons
        .iter()
        .filter_map(|r| r.as_deref().map(Some))
        .collect();
    let mut cols: Vec<ArrayRef> = dropped.columns().to_vec();
    cols.push(Arc::new(why));
    let rejected = RecordBatch::try_new(dflow_schemas::with_reason(&original.schema()), cols)?;
    write_both(outputs, &out, &rejected)
}

/// Writes `out` and `rejected`, skipping empty batches.
pub fn write_both(outputs: &mut Outputs, out: &RecordBatch, rejected: &RecordBatch) -> Result<()> {
    if out.num_rows() > 0 {
        outputs.write(OUT, out)?;
    }
    if rejected.num_rows() > 0 {
        outputs.write(REJECTED, rejected)?;
    }
    Ok(())
}
