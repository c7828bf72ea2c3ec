//! `op: embed` — a vector per row from a text column (or a template over
//! columns), one output partition per input partition, so a new release
//! embeds only its new rows. Rows are read and embedded in chunks: memory
//! stays bounded whatever the partition size.

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float16Array, Float32Array,
};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use crate::text::{Template, texts_of};
use crate::vector_store::VectorMemo;
use dflow_schemas::{batch_with, schema_with};

/// Element type of the output vectors.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    #[default]
    Float32,
    Float16,
}

fn default_output() -> String {
    "embedding".into()
}
fn default_max_length() -> usize {
    512
}

/// Params of `op: embed`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedParams {
    /// The text column to embed (or use `template`).
    #[serde(default)]
    pub column: Option<String>,
    /// Text built from columns, e.g. `{question} {answer}`.
    #[serde(default)]
    pub template: Option<String>,
    /// Put before every text (`query: `, `passage: ` for e5).
    #[serde(default)]
    pub prefix: String,
    /// The name of one of the model's prompts
    /// (`config_sentence_transformers.json`, e.g. `query`), put before
    /// every text instead of `prefix`. Without either, the model's
    /// `default_prompt_name` applies, as in sentence-transformers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Name of the vector column added to the rows.
    #[serde(default = "default_output")]
    pub output: String,
    /// Length of the model's vectors (384 for multilingual-e5-small); the
    /// output column is `FixedSizeList` of this size, checked at run time.
    pub dimensions: usize,
    /// Inputs are truncated to this many tokens (capped by the model).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    #[serde(default)]
    pub dtype: VectorType,
    /// `bf16`: the dense layers' products in bfloat16 (mixed precision,
    /// for a GPU: `resources: { device: cuda }`); on the CPU it runs
    /// slower than `f32`.
    #[serde(default, skip_serializing_if = "crate::encoder::Precision::is_f32")]
    pub precision: crate::encoder::Precision,
}

pub struct Embed {
    params: EmbedParams,
    template: Template,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "embed",
        "a vector per row from a text column or template, with a model artifact (per partition)",
        |p: EmbedParams, _ctx| {
            let template = Template::from_params(p.column.as_deref(), p.template.as_deref())?;
            if p.dimensions == 0 {
                return Err(BuildError::invalid("/dimensions", "must be at least 1"));
            }
            if p.prompt.is_some() && !p.prefix.is_empty() {
                return Err(BuildError::invalid(
                    "/prompt",
                    "give `prompt` (one of the model's) or `prefix` (any text), not both",
                ));
            }
            Ok(Arc::new(Embed {
                params: p,
                template,
            }) as Arc<dyn Operator>)
        },
    );
}

/// Rows read and embedded at a time.
pub const CHUNK_ROWS: usize = 1024;

impl Embed {
    fn vector_field(&self) -> Field {
        let item = match self.params.dtype {
            VectorType::Float32 => DataType::Float32,
            VectorType::Float16 => DataType::Float16,
        };
        Field::new(
            &self.params.output,
            DataType::FixedSizeList(
                Arc::new(Field::new("item", item, false)),
                i32::try_from(self.params.dimensions).unwrap_or(i32::MAX),
            ),
            false,
        )
    }

    fn output_schema(&self, input: &Schema) -> SchemaRef {
        schema_with(input, &[self.vector_field()])
    }

    fn vectors(&self, vectors: &[Arc<Vec<f32>>]) -> Result<ArrayRef> {
        let dim = self.params.dimensions;
        if let Some(v) = vectors.iter().find(|v| v.len() != dim) {
            return Err(Error::data(format!(
                "the model gives {}-dimensional vectors; `dimensions` says {dim}",
                v.len()
            )));
        }
        let flat: Vec<f32> = vectors.iter().flat_map(|v| v.iter().copied()).collect();
        let values: ArrayRef = match self.params.dtype {
            VectorType::Float32 => Arc::new(Float32Array::from(flat)),
            VectorType::Float16 => Arc::new(Float16Array::from(
                flat.into_iter()
                    .map(half::f16::from_f32)
                    .collect::<Vec<_>>(),
            )),
        };
        let field = match self.vector_field().data_type() {
            DataType::FixedSizeList(f, _) => f.clone(),
            _ => return Err(Error::internal("vector field")),
        };
        Ok(Arc::new(FixedSizeListArray::try_new(
            field,
            i32::try_from(dim).unwrap_or(i32::MAX),
            values,
            None,
        )?))
    }
}

impl Operator for Embed {
    /// Encoder work: on a cluster, GPU executors first.
    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "rows".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        crate::ports::table_and_model("rows")
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        crate::ports::rows_out(inputs, "embed", &self.template, |s| self.output_schema(s))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let p = &self.params;
        let (model, batch_size) = crate::runtime::for_task(task, p.max_length, p.precision)?;
        let prefix = prompt_prefix(model.profile(), p.prompt.as_deref(), &p.prefix)?;
        let mut memo = VectorMemo::for_task(task, model, batch_size, p.max_length, p.precision)?;
        let input = task.table("rows")?.clone();
        let schema = self.output_schema(&input.schema);
        for batch in input.batches(CHUNK_ROWS) {
            let batch = batch?;
            let texts = texts_of(&batch, &self.template, &prefix)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = memo.embed(&refs)?;
            let out = batch_with(&batch, &schema, vec![self.vectors(&vectors)?])?;
            if out.num_rows() > 0 {
                task.outputs.write(OUT, &out)?;
            }
        }
        let stats = memo.finish();
        task.outputs.note(stats.note());
        Ok(())
    }
}

/// The text put before every input: the named prompt of the model, else
/// `prefix`, else the model's default prompt.
fn prompt_prefix(
    profile: &crate::model::Profile,
    prompt: Option<&str>,
    prefix: &str,
) -> Result<String> {
    match prompt {
        Some(name) => profile.prompts.get(name).cloned().ok_or_else(|| {
            Error::data(format!(
                "the model `{}` has no prompt `{name}` (it has: {})",
                profile.name,
                if profile.prompts.is_empty() {
                    "none".to_string()
                } else {
                    profile
                        .prompts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        }),
        None if !prefix.is_empty() => Ok(prefix.to_string()),
        None => Ok(profile
            .default_prompt
            .as_ref()
            .and_then(|n| profile.prompts.get(n))
            .cloned()
            .unwrap_or_default()),
    }
}

/// Reads a FixedSizeList<Float32|Float16> column as rows of f32.
pub fn read_vectors(col: &dyn Array) -> Option<Vec<Vec<f32>>> {
    let list = col.as_any().downcast_ref::<FixedSizeListArray>()?;
    (0..list.len())
        .map(|i| {
            let row = list.value(i);
            if let Some(v) = row.as_any().downcast_ref::<Float32Array>() {
                Some(v.values().to_vec())
            } else {
                row.as_any()
                    .downcast_ref::<Float16Array>()
                    .map(|v| v.values().iter().map(|x| x.to_f32()).collect())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Pooling;
    use crate::model::Profile;

    #[test]
    fn prompts_come_from_the_model() {
        let mut profile = Profile::new("e5ish", Pooling::Mean, true);
        assert_eq!(prompt_prefix(&profile, None, "").expect("none"), "");
        profile.prompts.insert("query".into(), "query: ".into());
        profile.prompts.insert("passage".into(), "passage: ".into());
        assert_eq!(
            prompt_prefix(&profile, Some("query"), "").expect("named"),
            "query: "
        );
        assert_eq!(prompt_prefix(&profile, None, "q> ").expect("prefix"), "q> ");
        profile.default_prompt = Some("passage".into());
        assert_eq!(
            prompt_prefix(&profile, None, "").expect("default"),
            "passage: "
        );
        let e = prompt_prefix(&profile, Some("doc"), "")
            .expect_err("unknown")
            .to_string();
        assert!(
            e.contains("no prompt `doc`") && e.contains("passage, query"),
            "{e}"
        );
    }
}
