//! `op: owi` — Open Web Index metadata Parquet files, one partition per
//! file (a new day's files are new partitions). Columns are normalised to
//! the `owi_pages` schema; optional columns may be missing; a file that is
//! not OWI Parquet becomes a `rejected` row with the reason.

use dflow_engine::ports::{OUT, REJECTED};
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, StringArray, new_null_array,
};
use dflow_engine::datafusion::arrow::compute::{CastOptions, cast_with_options};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use dflow_engine::ops::files::expand_sources;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt,
    SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

use crate::udf::url_origin;

/// Params of `op: owi`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwiParams {
    /// Globs relative to the pipeline file, e.g. `["owi/**/*.parquet"]`.
    pub paths: Vec<String>,
}

pub struct OwiSource {
    paths: Vec<String>,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "owi",
        "Open Web Index metadata Parquet files (url, title, json-ld, faq, ...), one partition per file",
        &["paths"],
        |p: OwiParams, _| {
            if p.paths.is_empty() {
                return Err(BuildError::invalid("/paths", "`paths` is empty"));
            }
            Ok(Arc::new(OwiSource { paths: p.paths }) as Arc<dyn Operator>)
        },
    );
}

/// The `rejected` port of `owi`: whole files that are not OWI Parquet.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// OWI column name for each output column (`json-ld` has a dash upstream).
fn source_column(out: &str) -> &str {
    match out {
        "json_ld" => "json-ld",
        other => other,
    }
}

impl OwiSource {
    /// One normalised batch, or why the file is not OWI.
    fn normalise(
        &self,
        batch: &RecordBatch,
        file: &str,
    ) -> std::result::Result<RecordBatch, String> {
        let out = dflow_schemas::owi_pages();
        let n = batch.num_rows();
        let safe = CastOptions {
            safe: true,
            ..Default::default()
        };
        let url = batch
            .column_by_name("url")
            .ok_or("no `url` column")
            .and_then(|c| {
                cast_with_options(c, &DataType::Utf8, &safe).map_err(|_| "`url` is not text")
            })?;
        let url = url.as_string::<i32>().clone();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(out.fields().len());
        for field in out.fields() {
            let col: ArrayRef = match field.name().as_str() {
                "url" => Arc::new(url.clone()),
                "origin" => Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                    if url.is_null(i) {
                        String::new()
                    } else {
                        url_origin(url.value(i)).unwrap_or_default()
                    }
                }))),
                "source_file" => {
                    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(file, n)))
                }
                name => match batch.column_by_name(source_column(name)) {
                    None => new_null_array(field.data_type(), n),
                    Some(c) => {
                        // Strict for structured columns: a `faq` of another
                        // shape is not OWI; lenient (null) for bad dates.
                        let strict = matches!(name, "faq" | "json_ld" | "microdata");
                        let options = CastOptions {
                            safe: !strict,
                            ..Default::default()
                        };
                        cast_with_options(c, field.data_type(), &options).map_err(|e| {
                            format!(
                                "column `{}` is {}, expected {}: {e}",
                                source_column(name),
                                c.data_type(),
                                field.data_type()
                            )
                        })?
                    }
                },
            };
            columns.push(col);
        }
        RecordBatch::try_new(out, columns).map_err(|e| e.to_string())
    }
}

impl Operator for OwiSource {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Source
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(Vec::new())
    }

    fn output_ports(
        &self,
        ctx: &PlanContext,
        _inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        self.list_partitions(ctx)?;
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(dflow_schemas::owi_pages())),
            (REJECTED.to_string(), PortType::Table(rejected_schema())),
        ]))
    }

    fn list_partitions(&self, ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        expand_sources(ctx, &self.paths)
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let Some(source) = task.source else {
            return Err(Error::internal("owi unit without a file"));
        };
        let name = source.name.clone();
        let reject = |task: &mut Task<'_>, reason: String| -> Result<()> {
            let batch = RecordBatch::try_new(
                rejected_schema(),
                vec![
                    Arc::new(StringArray::from(vec![name.clone()])),
                    Arc::new(StringArray::from(vec![reason])),
                ],
            )?;
            task.outputs.write(REJECTED, &batch)
        };
        let file = source.open()?;
        let builder = match ParquetRecordBatchReaderBuilder::try_new(file) {
            Ok(b) => b,
            Err(e) => return reject(task, format!("not a Parquet file: {e}")),
        };
        if builder.schema().field_with_name("url").is_err() {
            let cols: Vec<&str> = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let reason = format!(
                "not OWI Parquet: no `url` column (columns: {})",
                cols.join(", ")
            );
            return reject(task, reason);
        }
        let reader = builder
            .with_batch_size(task.batch_size().min(4096))
            .build()
            .context(|| format!("reading {name}"))?;
        let mut normalised = Vec::new();
        for batch in reader {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return reject(task, format!("unreadable Parquet data: {e}")),
            };
            match self.normalise(&batch, &name) {
                Ok(b) => normalised.push(b),
                Err(reason) => return reject(task, format!("not OWI Parquet: {reason}")),
            }
            // Bounded memory: flush as we go once the file proved readable.
            if normalised.len() >= 4 {
                for b in normalised.drain(..) {
                    task.outputs.write(OUT, &b)?;
                }
            }
        }
        for b in normalised {
            task.outputs.write(OUT, &b)?;
        }
        Ok(())
    }
}
