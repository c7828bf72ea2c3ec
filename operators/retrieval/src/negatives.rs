//! `op: negatives` — picks hard negatives from teacher-scored candidates,
//! with the denoising of sentence-transformers' `mine_hard_negatives`.
//!
//! Input: `mine`'s candidates after a `score` node (rank 0 the positive,
//! ranks 1.. the BM25 candidates, a teacher score column). For each query
//! the candidates are filtered by rank range, `max_score`, `min_score`, an
//! absolute `margin` and a `relative_margin` below the positive's score
//! (negatives scored about as high as the positive are likely unlabeled
//! positives), then `num_negatives` are taken, the best-scored first (`top`)
//! or at random with a seed (`random`).
//!
//! Outputs: `out`, every candidate with the positive's score and whether it
//! was selected (the `hard_negatives` table: MarginMSE reads the scores of
//! all of them); `grouped`, one row per query (`query`, `positive`,
//! `negatives`, `scores`) for JSON lines; `run`, the teacher's ranking of
//! each query's candidates (positive included) for a TREC run file.
//!
//! Rows of one query must be contiguous, as `mine` writes them; the input
//! is streamed a query at a time.

use dflow_engine::ports::OUT;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::UInt32Array;
use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float32Builder, Int32Array, ListBuilder,
    StringBuilder,
};
use dflow_engine::datafusion::arrow::compute::{concat_batches, take_record_batch};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::kit::rng::splitmix;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use dflow_engine::kit::columns::{floats, input_schema, string_array, strings};
use dflow_schemas::{batch_with, schema_with};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The highest-scored candidates that pass the filters.
    #[default]
    Top,
    /// A seeded random choice among the candidates that pass the filters.
    Random,
}

fn default_score() -> String {
    "teacher_score".into()
}
fn default_num() -> usize {
    4
}
fn default_seed() -> u64 {
    42
}
fn default_tag() -> String {
    "dflow".into()
}

/// Params of `op: negatives`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NegativesParams {
    /// The teacher score column (the `output` of the `score` node).
    #[serde(default = "default_score")]
    pub score: String,
    /// Negatives kept per query.
    #[serde(default = "default_num")]
    pub num_negatives: usize,
    /// How the kept negatives are chosen among those that pass the filters.
    #[serde(default)]
    pub sampling: Sampling,
    /// Seed of `random` sampling (per query, so partitions are independent).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Skip candidates ranked (by BM25) before this (1-based rank > range_min).
    #[serde(default)]
    pub range_min: usize,
    /// Consider only candidates up to this BM25 rank.
    #[serde(default)]
    pub range_max: Option<usize>,
    /// Drop candidates the teacher scores above this.
    #[serde(default)]
    pub max_score: Option<f32>,
    /// Drop candidates the teacher scores below this.
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Keep a candidate only if its score ≤ positive score − margin.
    #[serde(default)]
    pub margin: Option<f32>,
    /// Keep a candidate only if its score ≤ positive score · (1 − relative_margin).
    #[serde(default)]
    pub relative_margin: Option<f32>,
    /// The run tag of the TREC run.
    #[serde(default = "default_tag")]
    pub run_tag: String,
}

pub struct Negatives {
    params: NegativesParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "negatives",
        "pick hard negatives from teacher-scored candidates (margins, score bounds, top/random)",
        |p: NegativesParams, _ctx| {
            if let Some(m) = p.relative_margin
                && !(0.0..=1.0).contains(&m)
            {
                return Err(BuildError::invalid(
                    "/relative_margin",
                    "must be between 0 and 1",
                ));
            }
            Ok(Arc::new(Negatives { params: p }) as Arc<dyn Operator>)
        },
    );
}

fn grouped_schema() -> SchemaRef {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    Arc::new(Schema::new(vec![
        Field::new("language", DataType::Utf8, false),
        Field::new("query_id", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("positive_id", DataType::Utf8, false),
        Field::new("positive", DataType::Utf8, false),
        Field::new("positive_score", DataType::Float32, false),
        Field::new("negative_ids", list(DataType::Utf8), false),
        Field::new("negatives", list(DataType::Utf8), false),
        Field::new("scores", list(DataType::Float32), false),
    ]))
}

fn run_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("score", DataType::Float32, false),
        Field::new("tag", DataType::Utf8, false),
    ]))
}

fn out_schema(input: &Schema) -> SchemaRef {
    schema_with(
        input,
        &[
            Field::new("positive_score", DataType::Float32, false),
            Field::new("selected", DataType::Boolean, false),
            Field::new("negative_rank", DataType::Int32, true),
        ],
    )
}

impl Negatives {
    /// Whether a candidate at BM25 `rank` with teacher `score` passes the
    /// filters, given the positive's score.
    pub fn passes(&self, rank: usize, score: f32, positive: f32) -> bool {
        let p = &self.params;
        rank > p.range_min
            && p.range_max.is_none_or(|m| rank <= m)
            && p.max_score.is_none_or(|m| score <= m)
            && p.min_score.is_none_or(|m| score >= m)
            && p.margin.is_none_or(|m| score <= positive - m)
            && p.relative_margin
                .is_none_or(|m| score <= positive * (1.0 - m))
    }

    /// The indexes (into `cands`) of the chosen negatives, in the order they
    /// are ranked: `cands` is (rank, score) of each candidate.
    pub fn choose(&self, query_id: &str, cands: &[(usize, f32)], positive: f32) -> Vec<usize> {
        let p = &self.params;
        let mut ok: Vec<usize> = (0..cands.len())
            .filter(|&i| self.passes(cands[i].0, cands[i].1, positive))
            .collect();
        match p.sampling {
            Sampling::Top => {
                ok.sort_by(|&a, &b| {
                    cands[b]
                        .1
                        .total_cmp(&cands[a].1)
                        .then(cands[a].0.cmp(&cands[b].0))
                });
            }
            Sampling::Random => {
                let seed = splitmix(p.seed ^ crate::bm25::text_hash(query_id));
                ok.sort_by_key(|&i| splitmix(seed ^ cands[i].0 as u64));
            }
        }
        ok.truncate(p.num_negatives);
        ok
    }
}

impl Operator for Negatives {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "candidates".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::table(
            "candidates",
            Schema::new(vec![
                Field::new("language", DataType::Utf8, false),
                Field::new("query_id", DataType::Utf8, false),
                Field::new("query", DataType::Utf8, false),
                Field::new("doc_id", DataType::Utf8, false),
                Field::new("document", DataType::Utf8, false),
                Field::new("rank", DataType::Int32, false),
            ]),
        )])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let s = input_schema(inputs, "candidates", "negatives")?;
        if s.field_with_name(&self.params.score).is_err() {
            return Err(Error::config(format!(
                "negatives: the candidates have no score column `{}`; score them first (op: score, output: {})",
                self.params.score, self.params.score
            )));
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(out_schema(s))),
            ("grouped".to_string(), PortType::Table(grouped_schema())),
            ("run".to_string(), PortType::Table(run_schema())),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let input = task.table("candidates")?.clone();
        let schema = input.schema.clone();
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut writer = GroupWriter::new(self, &schema);
        for batch in input.batches(8192) {
            let batch = batch?;
            let ids = strings(&batch, "query_id")?;
            // Split the batch where the query changes.
            let mut start = 0;
            for i in 1..=batch.num_rows() {
                if i == batch.num_rows() || ids.value(i) != ids.value(start) {
                    let slice = batch.slice(start, i - start);
                    let same = pending
                        .first()
                        .map(|b| strings(b, "query_id").map(|s| s.value(0) == ids.value(start)))
                        .transpose()?
                        .unwrap_or(true);
                    if !same {
                        writer.group(&concat_batches(&schema, &pending)?, &mut done, task)?;
                        pending.clear();
                    }
                    pending.push(slice);
                    start = i;
                }
            }
        }
        if !pending.is_empty() {
            writer.group(&concat_batches(&schema, &pending)?, &mut done, task)?;
        }
        writer.flush(task)
    }
}

/// Output rows gathered across queries.
struct GroupWriter<'a> {
    op: &'a Negatives,
    out_schema: SchemaRef,
    out: Vec<RecordBatch>,
    out_rows: usize,
    grouped: Vec<RecordBatch>,
    run: Vec<RecordBatch>,
}

impl<'a> GroupWriter<'a> {
    fn new(op: &'a Negatives, input: &Schema) -> Self {
        Self {
            op,
            out_schema: out_schema(input),
            out: Vec::new(),
            out_rows: 0,
            grouped: Vec::new(),
            run: Vec::new(),
        }
    }

    /// One query's candidates (all rows share `query_id`).
    fn group(
        &mut self,
        rows: &RecordBatch,
        done: &mut HashSet<String>,
        task: &mut Task<'_>,
    ) -> Result<()> {
        let op = self.op;
        let qid = strings(rows, "query_id")?.value(0).to_string();
        if !done.insert(qid.clone()) {
            return Err(Error::data(format!(
                "the candidates of query `{qid}` are not contiguous; sort them by query_id (as `mine` writes them)"
            )));
        }
        let rank = rows
            .column_by_name("rank")
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
            .ok_or_else(|| Error::data("column `rank` is not Int32"))?;
        let score = floats(rows, &op.params.score)?;
        let Some(pos) = (0..rows.num_rows()).find(|&i| rank.value(i) == 0) else {
            return Err(Error::data(format!(
                "query `{qid}` has no positive (a rank-0 row); the candidates must come from `mine`"
            )));
        };
        let positive = score.value(pos);
        let negs: Vec<usize> = (0..rows.num_rows()).filter(|&i| i != pos).collect();
        let cands: Vec<(usize, f32)> = negs
            .iter()
            .map(|&i| (usize::try_from(rank.value(i)).unwrap_or(0), score.value(i)))
            .collect();
        let chosen = op.choose(&qid, &cands, positive);

        // `out`: every negative candidate, flagged.
        let mut neg_rank: Vec<Option<i32>> = vec![None; negs.len()];
        for (n, &c) in chosen.iter().enumerate() {
            neg_rank[c] = Some(i32::try_from(n + 1).unwrap_or(i32::MAX));
        }
        let idx = UInt32Array::from_iter_values(negs.iter().map(|&i| i as u32));
        let neg_rows = take_record_batch(rows, &idx)?;
        let added: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(vec![positive; negs.len()])),
            Arc::new(BooleanArray::from_iter(
                neg_rank.iter().map(|r| Some(r.is_some())),
            )),
            Arc::new(Int32Array::from(neg_rank)),
        ];
        let out = batch_with(&neg_rows, &self.out_schema, added)?;
        self.out_rows += out.num_rows();
        self.out.push(out);

        // `grouped`: one row.
        let (lang, query, doc_id, doc) = (
            strings(rows, "language")?,
            strings(rows, "query")?,
            strings(rows, "doc_id")?,
            strings(rows, "document")?,
        );
        let mut ids_b = ListBuilder::new(StringBuilder::new());
        let mut texts_b = ListBuilder::new(StringBuilder::new());
        let mut scores_b = ListBuilder::new(Float32Builder::new());
        for &c in &chosen {
            let i = negs[c];
            ids_b.values().append_value(doc_id.value(i));
            texts_b.values().append_value(doc.value(i));
            scores_b.values().append_value(score.value(i));
        }
        ids_b.append(true);
        texts_b.append(true);
        scores_b.append(true);
        self.grouped.push(RecordBatch::try_new(
            grouped_schema(),
            vec![
                string_array([lang.value(pos)]),
                string_array([qid.as_str()]),
                string_array([query.value(pos)]),
                string_array([doc_id.value(pos)]),
                string_array([doc.value(pos)]),
                Arc::new(Float32Array::from(vec![positive])),
                Arc::new(ids_b.finish()),
                Arc::new(texts_b.finish()),
                Arc::new(scores_b.finish()),
            ],
        )?);

        // `run`: the teacher's ranking, positive included.
        let mut order: Vec<usize> = (0..rows.num_rows()).collect();
        order.sort_by(|&a, &b| {
            score
                .value(b)
                .total_cmp(&score.value(a))
                .then(rank.value(a).cmp(&rank.value(b)))
        });
        self.run.push(RecordBatch::try_new(
            run_schema(),
            vec![
                string_array(order.iter().map(|_| qid.as_str())),
                string_array(order.iter().map(|&i| doc_id.value(i))),
                Arc::new(Int32Array::from_iter_values(
                    (1..=order.len()).map(|r| r as i32),
                )),
                Arc::new(Float32Array::from_iter_values(
                    order.iter().map(|&i| score.value(i)),
                )),
                string_array(order.iter().map(|_| op.params.run_tag.as_str())),
            ],
        )?);

        if self.out_rows >= 8192 {
            self.flush(task)?;
        }
        Ok(())
    }

    fn flush(&mut self, task: &mut Task<'_>) -> Result<()> {
        for (port, schema, batches) in [
            (OUT, self.out_schema.clone(), std::mem::take(&mut self.out)),
            (
                "grouped",
                grouped_schema(),
                std::mem::take(&mut self.grouped),
            ),
            ("run", run_schema(), std::mem::take(&mut self.run)),
        ] {
            if !batches.is_empty() {
                let b = concat_batches(&schema, &batches)?;
                if b.num_rows() > 0 {
                    task.outputs.write(port, &b)?;
                }
            }
        }
        self.out_rows = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: impl FnOnce(&mut NegativesParams)) -> Negatives {
        let mut p: NegativesParams = serde_json::from_str("{}").expect("defaults");
        f(&mut p);
        Negatives { params: p }
    }

    const CANDS: &[(usize, f32)] = &[(1, 0.95), (2, 0.7), (3, 0.2), (4, 0.5), (5, -0.3), (6, 0.6)];

    #[test]
    fn top_takes_the_best_scored_first() {
        let o = op(|p| p.num_negatives = 3);
        assert_eq!(o.choose("q", CANDS, 0.9), [0, 1, 5]);
    }

    #[test]
    fn margins_drop_likely_positives() {
        // Absolute: ≤ 0.9 − 0.1 = 0.8 drops 0.95.
        let o = op(|p| p.margin = Some(0.1));
        assert_eq!(o.choose("q", CANDS, 0.9), [1, 5, 3, 2]);
        // Relative: ≤ 0.9 · 0.25 = 0.225.
        let o = op(|p| p.relative_margin = Some(0.75));
        assert_eq!(o.choose("q", CANDS, 0.9), [2, 4]);
    }

    #[test]
    fn score_bounds_and_rank_range() {
        let o = op(|p| {
            p.max_score = Some(0.65);
            p.min_score = Some(0.0);
        });
        assert_eq!(o.choose("q", CANDS, 0.9), [5, 3, 2]);
        let o = op(|p| {
            p.range_min = 2;
            p.range_max = Some(5);
        });
        // Ranks 3, 4, 5 only.
        assert_eq!(o.choose("q", CANDS, 0.9), [3, 2, 4]);
    }

    #[test]
    fn random_is_seeded_per_query() {
        let o = op(|p| {
            p.sampling = Sampling::Random;
            p.num_negatives = 3;
        });
        let a = o.choose("q1", CANDS, 0.9);
        assert_eq!(a, o.choose("q1", CANDS, 0.9));
        assert_eq!(a.len(), 3);
        let other = op(|p| {
            p.sampling = Sampling::Random;
            p.num_negatives = 3;
            p.seed = 7;
        });
        // Another seed picks another set or order for at least one query.
        assert!((0..20).any(|i| {
            let q = format!("q{i}");
            o.choose(&q, CANDS, 0.9) != other.choose(&q, CANDS, 0.9)
        }));
    }
}
