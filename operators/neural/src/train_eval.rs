//! Evaluation during training: the model being trained, as it stands after
//! a step, on a retrieval test set (`testset`'s `queries`, `corpus` and
//! `qrels`), per language — exact dense retrieval and trec_eval's metrics,
//! the same as `op: evaluate` computes for a finished model.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, UInt64Array,
};
use dflow_engine::datafusion::arrow::compute::cast;
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::{Error, Result, Task};
use dflow_ir::dense::top_k;
use dflow_ir::metrics::{QueryMetrics, evaluate};
use serde::{Deserialize, Serialize};

use crate::error::NeuralError;
use crate::model::Model;

/// Documents retrieved per query (Recall@100 needs 100).
const K: usize = 100;

/// One language's test set.
#[derive(Default)]
struct LanguageSet {
    query_ids: Vec<String>,
    queries: Vec<String>,
    doc_ids: Vec<String>,
    docs: Vec<String>,
    qrels: BTreeMap<String, HashMap<String, i64>>,
}

/// The test set, by language.
pub struct EvalSet {
    languages: BTreeMap<String, LanguageSet>,
}

/// One `eval` row: the metrics of a language (or `macro`) after `step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub step: u64,
    pub language: String,
    pub queries: u64,
    /// ndcg@10, mrr@10, recall@10, recall@100, map@100, as f64 bits (a
    /// resumed run's rows must equal an uninterrupted run's).
    pub metrics: [u64; 5],
}

impl EvalRow {
    fn new(step: u64, language: &str, queries: u64, m: &QueryMetrics) -> Self {
        Self {
            step,
            language: language.to_string(),
            queries,
            metrics: [
                m.ndcg_cut_10.to_bits(),
                m.mrr_10.to_bits(),
                m.recall_10.to_bits(),
                m.recall_100.to_bits(),
                m.map_cut_100.to_bits(),
            ],
        }
    }

    pub fn value(&self, i: usize) -> f64 {
        f64::from_bits(self.metrics[i])
    }
}

/// The `eval` port of `train`: `step`, then `op: evaluate`'s result
/// columns without `system` (language, queries, ndcg@10, mrr@10,
/// recall@10, recall@100, map@100).
pub fn eval_schema() -> SchemaRef {
    let results = dflow_schemas::results();
    let mut fields = vec![Arc::new(Field::new("step", DataType::UInt64, false))];
    fields.extend(
        results
            .fields()
            .iter()
            .filter(|f| f.name() != "system")
            .cloned(),
    );
    Arc::new(Schema::new(fields))
}

pub fn eval_batch(rows: &[EvalRow]) -> Result<RecordBatch> {
    let col = |i: usize| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.value(i)),
        ))
    };
    Ok(RecordBatch::try_new(
        eval_schema(),
        vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.step))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.language.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.queries),
            )),
            col(0),
            col(1),
            col(2),
            col(3),
            col(4),
        ],
    )?)
}

fn text_column(batch: &RecordBatch, name: &str, port: &str) -> Result<ArrayRef> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(format!("train: `{port}` has no column `{name}`")))?;
    Ok(cast(c, &DataType::Utf8)?)
}

impl EvalSet {
    /// The test set on `eval_queries`, `eval_corpus` and `eval_qrels`
    /// (`testset`'s columns: `language`, `_id`, `text`, `title`;
    /// `query-id`, `corpus-id`, `score`), or `None` without them.
    pub fn load(
        task: &Task<'_>,
        query_prefix: &str,
        document_prefix: &str,
    ) -> Result<Option<Self>> {
        if !task.inputs.contains_key("eval_queries") {
            return Ok(None);
        }
        let mut languages: BTreeMap<String, LanguageSet> = BTreeMap::new();
        for batch in task.table("eval_queries")?.batches(8192) {
            let batch = batch?;
            let (lang, id, text) = (
                text_column(&batch, "language", "eval_queries")?,
                text_column(&batch, "_id", "eval_queries")?,
                text_column(&batch, "text", "eval_queries")?,
            );
            let (lang, id, text) = (
                lang.as_string::<i32>(),
                id.as_string::<i32>(),
                text.as_string::<i32>(),
            );
            for i in 0..batch.num_rows() {
                if lang.is_null(i) || id.is_null(i) || text.is_null(i) {
                    continue;
                }
                let set = languages.entry(lang.value(i).to_string()).or_default();
                set.query_ids.push(id.value(i).to_string());
                set.queries.push(format!("{query_prefix}{}", text.value(i)));
            }
        }
        for batch in task.table("eval_corpus")?.batches(8192) {
            let batch = batch?;
            let (lang, id, text) = (
                text_column(&batch, "language", "eval_corpus")?,
                text_column(&batch, "_id", "eval_corpus")?,
                text_column(&batch, "text", "eval_corpus")?,
            );
            let title = match batch.column_by_name("title") {
                Some(c) => Some(cast(c, &DataType::Utf8)?),
                None => None,
            };
            let (lang, id, text) = (
                lang.as_string::<i32>(),
                id.as_string::<i32>(),
                text.as_string::<i32>(),
            );
            let title = title.as_ref().map(|t| t.as_string::<i32>());
            for i in 0..batch.num_rows() {
                if lang.is_null(i) || id.is_null(i) || text.is_null(i) {
                    continue;
                }
                let Some(set) = languages.get_mut(lang.value(i)) else {
                    continue;
                };
                let doc = match title.filter(|t| t.is_valid(i) && !t.value(i).is_empty()) {
                    Some(t) => format!("{document_prefix}{} {}", t.value(i), text.value(i)),
                    None => format!("{document_prefix}{}", text.value(i)),
                };
                set.doc_ids.push(id.value(i).to_string());
                set.docs.push(doc);
            }
        }
        for batch in task.table("eval_qrels")?.batches(8192) {
            let batch = batch?;
            let (lang, q, d) = (
                text_column(&batch, "language", "eval_qrels")?,
                text_column(&batch, "query-id", "eval_qrels")?,
                text_column(&batch, "corpus-id", "eval_qrels")?,
            );
            let score = batch
                .column_by_name("score")
                .ok_or_else(|| Error::data("train: `eval_qrels` has no column `score`"))?;
            let score = cast(score, &DataType::Int64)?;
            let score = score
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| Error::internal("qrels score cast"))?
                .clone();
            let (lang, q, d) = (
                lang.as_string::<i32>(),
                q.as_string::<i32>(),
                d.as_string::<i32>(),
            );
            for i in 0..batch.num_rows() {
                if lang.is_null(i) || q.is_null(i) || d.is_null(i) || score.is_null(i) {
                    continue;
                }
                if let Some(set) = languages.get_mut(lang.value(i)) {
                    set.qrels
                        .entry(q.value(i).to_string())
                        .or_default()
                        .insert(d.value(i).to_string(), score.value(i));
                }
            }
        }
        languages.retain(|_, s| !s.queries.is_empty() && !s.docs.is_empty());
        Ok(Some(Self { languages }))
    }

    /// The metrics of `model` after `step`: one row per language and their
    /// macro average (language `macro`).
    pub fn run<B: burn::tensor::backend::Backend>(
        &self,
        model: &Model<B>,
        step: u64,
        batch_size: usize,
    ) -> std::result::Result<Vec<EvalRow>, NeuralError> {
        let mut rows = Vec::new();
        let mut means = Vec::new();
        for (language, set) in &self.languages {
            let flat = |texts: &[String]| -> std::result::Result<(Vec<f32>, usize), NeuralError> {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let vectors = model.embed(&refs, batch_size)?;
                let dim = vectors.first().map_or(0, Vec::len);
                Ok((vectors.into_iter().flatten().collect(), dim))
            };
            let (q, dim) = flat(&set.queries)?;
            let (c, _) = flat(&set.docs)?;
            let hits = top_k(&q, &c, dim, K)?;
            let run: BTreeMap<String, Vec<(String, f64)>> = set
                .query_ids
                .iter()
                .zip(hits)
                .map(|(qid, h)| {
                    let docs = h
                        .into_iter()
                        .map(|(row, s)| (set.doc_ids[row].clone(), f64::from(s)))
                        .collect();
                    (qid.clone(), docs)
                })
                .collect();
            let per_query = evaluate(&run, &set.qrels);
            let mean = QueryMetrics::mean(per_query.values());
            rows.push(EvalRow::new(step, language, per_query.len() as u64, &mean));
            means.push((mean, per_query.len() as u64));
        }
        if !means.is_empty() {
            let mean = QueryMetrics::mean(means.iter().map(|(m, _)| m));
            let queries = means.iter().map(|(_, n)| n).sum();
            rows.push(EvalRow::new(step, "macro", queries, &mean));
        }
        Ok(rows)
    }
}
