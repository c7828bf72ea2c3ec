//! `op: score` — a score for each (query, document) row, one output
//! partition per input partition: a cross-encoder's logit (the teacher of
//! hard-negative mining), or the cosine of a bi-encoder's embeddings when
//! that is the teacher, or WebFAQ's `semantic_similarity_score` =
//! cos(question, answer) (`mode: similarity`).

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::Float32Array;
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use crate::embed_op::CHUNK_ROWS;
use crate::text::{Template, texts_of};
use crate::vector_store::VectorMemo;
use dflow_schemas::{batch_with, schema_with};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    /// The pair through a sequence-classification head.
    #[default]
    CrossEncoder,
    /// Cosine of the two texts' embeddings.
    BiEncoder,
    /// `bi_encoder` writing `semantic_similarity_score` (WebFAQ).
    Similarity,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The raw logit.
    #[default]
    None,
    /// `1 / (1 + e^-logit)`, as sentence-transformers' CrossEncoder does for
    /// one label.
    Sigmoid,
}

fn default_query() -> String {
    "question".into()
}
fn default_document() -> String {
    "answer".into()
}
fn default_max_length() -> usize {
    512
}

/// Params of `op: score`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreParams {
    #[serde(default)]
    pub mode: ScoreMode,
    /// The query column.
    #[serde(default = "default_query")]
    pub query: String,
    /// The document column.
    #[serde(default = "default_document")]
    pub document: String,
    /// Put before queries (bi-encoders: `query: ` for e5).
    #[serde(default)]
    pub query_prefix: String,
    /// Put before documents (bi-encoders: `passage: ` for e5).
    #[serde(default)]
    pub document_prefix: String,
    /// The score column (default `score`, or `semantic_similarity_score`
    /// in `similarity` mode).
    #[serde(default)]
    pub output: Option<String>,
    /// Which logit of a multi-label cross-encoder is the score.
    #[serde(default)]
    pub label: usize,
    #[serde(default)]
    pub activation: Activation,
    /// Inputs are truncated to this many tokens (capped by the model).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// `bf16`: the dense layers' products in bfloat16 (mixed precision,
    /// for a GPU: `resources: { device: cuda }`); on the CPU it runs
    /// slower than `f32`.
    #[serde(default, skip_serializing_if = "crate::encoder::Precision::is_f32")]
    pub precision: crate::encoder::Precision,
}

pub struct Score {
    params: ScoreParams,
    query: Template,
    document: Template,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "score",
        "a score per (query, document) row: cross-encoder logit, bi-encoder cosine, or semantic_similarity_score",
        |p: ScoreParams, _ctx| {
            if p.mode == ScoreMode::CrossEncoder
                && (!p.query_prefix.is_empty() || !p.document_prefix.is_empty())
            {
                return Err(BuildError::invalid(
                    "/mode",
                    "prefixes are for bi-encoders; a cross-encoder reads the pair as it is",
                ));
            }
            Ok(Arc::new(Score {
                query: Template::column(&p.query),
                document: Template::column(&p.document),
                params: p,
            }) as Arc<dyn Operator>)
        },
    );
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

impl Score {
    fn output(&self) -> String {
        self.params
            .output
            .clone()
            .unwrap_or_else(|| match self.params.mode {
                ScoreMode::Similarity => "semantic_similarity_score".into(),
                _ => "score".into(),
            })
    }

    fn output_schema(&self, input: &Schema) -> SchemaRef {
        schema_with(
            input,
            &[Field::new(self.output(), DataType::Float32, false)],
        )
    }
}

impl Operator for Score {
    /// Encoder work: on a cluster, GPU executors first.
    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "pairs".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        crate::ports::table_and_model("pairs")
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let s = dflow_engine::kit::columns::input_schema(inputs, "pairs", "score")?;
        self.query.check(s)?;
        self.document.check(s)?;
        Ok(BTreeMap::from([(
            OUT.to_string(),
            PortType::Table(self.output_schema(s)),
        )]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let (model, batch_size) =
            crate::runtime::for_task(task, self.params.max_length, self.params.precision)?;
        let input = task.table("pairs")?.clone();
        let schema = self.output_schema(&input.schema);
        // A teacher's candidate table repeats each query `k` times and each
        // document across queries: the memo embeds each distinct text once,
        // and reads those another node or run embedded from the store.
        let mut memo = match self.params.mode {
            ScoreMode::CrossEncoder => None,
            ScoreMode::BiEncoder | ScoreMode::Similarity => Some(VectorMemo::for_task(
                task,
                model.clone(),
                batch_size,
                self.params.max_length,
                self.params.precision,
            )?),
        };
        for batch in input.batches(CHUNK_ROWS) {
            let batch = batch?;
            let p = &self.params;
            let queries = texts_of(&batch, &self.query, &p.query_prefix)?;
            let docs = texts_of(&batch, &self.document, &p.document_prefix)?;
            let scores: Vec<f32> = match p.mode {
                ScoreMode::CrossEncoder => {
                    let pairs: Vec<(&str, &str)> = queries
                        .iter()
                        .zip(&docs)
                        .map(|(q, d)| (q.as_str(), d.as_str()))
                        .collect();
                    let logits = model.score_pairs(&pairs, batch_size)?;
                    logits
                        .iter()
                        .map(|l| {
                            let x = l.get(p.label).copied().ok_or_else(|| {
                                Error::data(format!(
                                    "label {} asked, the model has {} labels",
                                    p.label,
                                    l.len()
                                ))
                            })?;
                            Ok(match p.activation {
                                Activation::None => x,
                                Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                            })
                        })
                        .collect::<Result<_>>()?
                }
                ScoreMode::BiEncoder | ScoreMode::Similarity => {
                    let mut texts = queries;
                    texts.extend(docs);
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let memo = memo
                        .as_mut()
                        .ok_or_else(|| Error::internal("score: no embedder for a bi-encoder"))?;
                    let vectors = memo.embed(&refs)?;
                    let (qe, de) = vectors.split_at(texts.len() / 2);
                    qe.iter().zip(de).map(|(a, b)| cosine(a, b)).collect()
                }
            };
            let out = batch_with(&batch, &schema, vec![Arc::new(Float32Array::from(scores))])?;
            if out.num_rows() > 0 {
                task.outputs.write(OUT, &out)?;
            }
        }
        if let Some(memo) = memo {
            let stats = memo.finish();
            task.outputs.note(stats.note());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
