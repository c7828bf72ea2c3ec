//! Adding one computed column to a table (the vector of `embed`, the score
//! of `score`), replacing a column of the same name.

use std::sync::Arc;

use dflow_engine::Result;
use dflow_engine::datafusion::arrow::array::{ArrayRef, RecordBatch};
use dflow_engine::datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

/// `input` without a column named like `field`, then `field`.
pub fn schema_with(input: &Schema, field: Field) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .filter(|f| f.name() != field.name())
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(field);
    Arc::new(Schema::new(fields))
}

/// `batch` with `column` as the last column of `schema` (made by
/// [`schema_with`]).
pub fn batch_with(
    batch: &RecordBatch,
    schema: &SchemaRef,
    column: ArrayRef,
) -> Result<RecordBatch> {
    let name = schema.fields()[schema.fields().len() - 1].name();
    let mut cols: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name() != name)
        .map(|(_, c)| c.clone())
        .collect();
    cols.push(column);
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}
