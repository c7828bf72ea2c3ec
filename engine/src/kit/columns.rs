//! Typed column access: a column as the type an operator wants (any
//! compatible Arrow type is cast), with errors that name the column, and
//! the port declarations of text tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float16Type, Float32Type, Float64Type, Schema, SchemaRef,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::operator::{InputPort, InputPorts, PortType};

/// A text column of `batch`, borrowed (it must already be `Utf8`), or an
/// error naming it.
pub fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| Error::data(format!("column `{name}` is missing or not text")))
}

/// One input port of a table holding at least these text columns.
pub fn text_input(port: &str, columns: &[&str]) -> InputPorts {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect();
    InputPorts::Fixed(vec![InputPort::table(port, Schema::new(fields))])
}

/// The schema on table input `port` at plan time.
pub fn input_schema<'a>(
    inputs: &'a BTreeMap<String, PortType>,
    port: &str,
    op: &str,
) -> Result<&'a SchemaRef> {
    match inputs.get(port) {
        Some(PortType::Table(s)) => Ok(s),
        _ => Err(Error::internal(format!("{op}: no table on `{port}`"))),
    }
}

/// A column as UTF-8 text (any string type is accepted).
pub fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    Ok(cast_column(batch, name, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// A column cast to another type, with the column named in errors.
fn cast_column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(format!("no column `{name}`")))?;
    cast(col, to).map_err(|e| Error::data(format!("column `{name}`: {e}")))
}

/// A column as `Float32` (any numeric type is accepted).
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Float32Array> {
    Ok(cast_column(batch, name, &DataType::Float32)?
        .as_primitive::<Float32Type>()
        .clone())
}

/// A column as `Float64` (any numeric type is accepted).
pub fn doubles(batch: &RecordBatch, name: &str) -> Result<Float64Array> {
    Ok(cast_column(batch, name, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

/// An embedding column (`FixedSizeList` of `Float32` or `Float16`) as one
/// row-major `f32` buffer and its width. Null rows are zero vectors.
pub fn embeddings(batch: &RecordBatch, name: &str) -> Result<(usize, Vec<f32>)> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(format!("no embedding column `{name}`")))?;
    let list: &FixedSizeListArray = col.as_fixed_size_list_opt().ok_or_else(|| {
        Error::data(format!(
            "column `{name}` is {}, not an embedding (a fixed-size list of floats)",
            col.data_type()
        ))
    })?;
    let dim = usize::try_from(list.value_length()).unwrap_or(0);
    let values: ArrayRef = list.values().clone();
    let flat: Vec<f32> = match values.data_type() {
        DataType::Float32 => values.as_primitive::<Float32Type>().values().to_vec(),
        DataType::Float16 => values
            .as_primitive::<Float16Type>()
            .values()
            .iter()
            .map(|h| h.to_f32())
            .collect(),
        other => {
            return Err(Error::data(format!(
                "column `{name}` holds {other}; embeddings must be Float32 or Float16"
            )));
        }
    };
    // The list's own offset into its values.
    let start = list.offset() * dim;
    let mut out = flat[start..start + list.len() * dim].to_vec();
    for row in 0..list.len() {
        if list.is_null(row) {
            out[row * dim..(row + 1) * dim].fill(0.0);
        }
    }
    Ok((dim, out))
}

/// A string array from owned values.
pub fn string_array<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}
