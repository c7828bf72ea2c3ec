//! `op: train` — fine-tunes a bi-encoder from a `model` artifact and
//! writes it in the sentence-transformers layout (an artifact on `out`),
//! with the loss of every optimiser step on `log` (a table to query and
//! plot).
//!
//! Losses ([`crate::losses`], equal to sentence-transformers' with their
//! gradients): `mnrl` — MultipleNegativesRankingLoss over in-batch
//! negatives plus the first `num_hard_negatives` of each row's `negatives`
//! list (`negatives`' `grouped` output has them best first), optionally
//! symmetric; `margin_mse` — MarginMSELoss of each row's query, positive
//! and every hard negative (or the first `num_hard_negatives`) against the
//! teacher's margins `positive_score − scores[i]`, plus `mnrl_weight` times
//! the in-batch MNRL. `op: distill` is this operator with `margin_mse` and
//! the teacher's columns named as `negatives`' `grouped` output names them.
//!
//! AdamW with linear warm-up then linear decay to 0, weight decay,
//! gradient clipping (per parameter tensor, by norm, as Burn clips),
//! gradient accumulation, `epochs` or `max_steps`, dropout at the
//! checkpoint's rates (or `hidden_dropout`, `attention_dropout`), and a seed
//! that fixes the order of examples and the dropout masks (drawn per batch
//! from the seed and the batch's place, so a CPU run repeats exactly and a
//! resumed one draws what an uninterrupted one would). A step's texts run through the encoder in groups of about
//! one length (`group_tokens`), each padded only to its own longest.
//! Runs on the CPU (Burn's Flex under autodiff) or, in a build with the
//! `cuda` feature, on `resources.device: cuda[:N]`; `precision: bf16`
//! runs the dense products in bfloat16 (mixed precision, for a GPU).
//! Given a test
//! set on `eval_queries`/`eval_corpus`/`eval_qrels`, the model is evaluated
//! before, every `eval_every` steps and after training into `eval`
//! ([`crate::train_eval`]).

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, UInt32Array, UInt64Array,
};
use dflow_engine::datafusion::arrow::compute::cast;
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::kit::rng::{shuffle, splitmix};
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use crate::Cpu;
use crate::checkpoint::{self, LogRow};
use crate::encoder::{Dropout, Precision};
use crate::error::NeuralError;
use crate::losses::{embed_grouped, margin_mse, mnrl, mnrl_symmetric};
use crate::model::Model;
use crate::runtime::Device;
use crate::save::save_sentence_transformers;
use crate::train_eval::{EvalSet, eval_batch, eval_schema};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// MultipleNegativesRankingLoss.
    #[default]
    Mnrl,
    /// MarginMSELoss against the teacher's margins.
    MarginMse,
}

fn default_query() -> String {
    "query".into()
}
fn default_positive() -> String {
    "positive".into()
}
fn default_batch() -> usize {
    32
}
fn default_epochs() -> usize {
    1
}
fn default_lr() -> f64 {
    2e-5
}
fn default_warmup() -> usize {
    10
}
fn default_weight_decay() -> f32 {
    0.01
}
fn default_accumulation() -> usize {
    1
}
fn default_seed() -> u64 {
    42
}
fn default_scale() -> f32 {
    20.0
}
fn default_max_length() -> usize {
    128
}
fn is_zero(x: &f32) -> bool {
    *x == 0.0
}
fn default_group_tokens() -> usize {
    crate::losses::GROUP_TOKENS
}

/// Params of `op: train`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    #[serde(default)]
    pub loss: Loss,
    /// The query column.
    #[serde(default = "default_query")]
    pub query: String,
    /// The positive document column.
    #[serde(default = "default_positive")]
    pub positive: String,
    /// A list column of hard negatives, best first (`mnrl` with
    /// `num_hard_negatives` > 0, and `margin_mse`). Null entries are
    /// skipped (with their scores).
    #[serde(default)]
    pub negatives: Option<String>,
    /// `margin_mse`: the list column of the negatives' teacher scores.
    #[serde(default)]
    pub scores: Option<String>,
    /// `margin_mse`: the positive's teacher score column.
    #[serde(default)]
    pub positive_score: Option<String>,
    /// `mnrl`: hard negatives per query besides the in-batch ones (0 =
    /// in-batch only; WebFAQ used 4). `margin_mse`: the first this many
    /// negatives of each row (0 = every negative the row has). Rows with
    /// fewer are skipped.
    #[serde(default)]
    pub num_hard_negatives: usize,
    /// `margin_mse`: adds this weight times the in-batch MNRL of the
    /// queries against the positives (cosine × `scale`) to the loss; 0 =
    /// MarginMSE alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mnrl_weight: f32,
    /// Build each batch from one language (WebFAQ v1 did, so in-batch
    /// negatives are in the query's language): the language column.
    #[serde(default)]
    pub per_language_batches: Option<String>,
    /// `mnrl`: also rank the queries for each positive.
    #[serde(default)]
    pub symmetric: bool,
    /// `mnrl`: the cosine scale.
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Examples per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many optimiser steps (whatever `epochs` says).
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Linear warm-up steps, then linear decay to 0.
    #[serde(default = "default_warmup")]
    pub warmup_steps: usize,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f32,
    /// Clip each parameter's gradient to this norm.
    #[serde(default)]
    pub max_grad_norm: Option<f32>,
    /// Batches whose gradients are summed per optimiser step.
    #[serde(default = "default_accumulation")]
    pub gradient_accumulation: usize,
    /// Fixes the order of examples and the dropout masks.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Dropout on the embeddings and on each sub-layer's output while
    /// training. Default: the checkpoint's `hidden_dropout_prob` (0.1 for
    /// BERT and XLM-R), as transformers and sentence-transformers train;
    /// 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_dropout: Option<f32>,
    /// Dropout on the attention probabilities while training. Default: the
    /// checkpoint's `attention_probs_dropout_prob`; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_dropout: Option<f32>,
    /// Inputs are truncated to this many tokens.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// A step's texts go through the encoder in groups of about one
    /// length, each padded only to its own longest text; a group closes
    /// at this many padded tokens. (Padded as one batch, every short
    /// question would cost as much as the longest answer.) Larger groups
    /// suit a GPU.
    #[serde(default = "default_group_tokens")]
    pub group_tokens: usize,
    /// `bf16`: mixed precision, the dense layers' products in bfloat16
    /// (weights, optimiser and everything else in f32), for a GPU
    /// (`resources: { device: cuda }`); on the CPU it runs slower.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Also copy the trained model to this directory (relative to the
    /// pipeline file, or an object store folder such as
    /// `s3://bucket/models/mine`), ready for `SentenceTransformer(path)`.
    #[serde(default)]
    pub path: Option<String>,
    /// Write a checkpoint (weights, optimiser state, position) every this
    /// many optimiser steps; an interrupted run then resumes from the last
    /// one and ends with the same model. Not part of the cache key. Off by
    /// default (a checkpoint of e5-small with AdamW's moments is 1.4 GB).
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// With a test set on `eval_queries`, `eval_corpus` and `eval_qrels`
    /// (`testset`'s outputs): evaluate every this many optimiser steps, as
    /// well as before the first step and after the last, into the `eval`
    /// table (NDCG@10, MRR@10, Recall@10/100, MAP@100 per language and
    /// their macro average). Without it, only before and after.
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Prepended to evaluation queries (`"query: "` for e5).
    #[serde(default)]
    pub eval_query_prefix: String,
    /// Prepended to evaluation documents (`"passage: "` for e5).
    #[serde(default)]
    pub eval_document_prefix: String,
}

pub struct TrainOp {
    params: TrainParams,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "train",
        "fine-tune a bi-encoder (MNRL with in-batch and hard negatives, or MarginMSE); writes a sentence-transformers model",
        // How often to checkpoint does not change the model.
        &["checkpoint_every"],
        |p: TrainParams, _ctx| build(p),
    );
}

/// `op: train` (and `op: distill`) from checked params.
pub(crate) fn build(p: TrainParams) -> std::result::Result<Arc<dyn Operator>, BuildError> {
    if p.batch_size < 2 && p.loss == Loss::Mnrl && p.num_hard_negatives == 0 {
        return Err(BuildError::invalid(
            "/batch_size",
            "in-batch negatives need a batch of at least 2",
        ));
    }
    if p.loss == Loss::MarginMse
        && (p.negatives.is_none() || p.scores.is_none() || p.positive_score.is_none())
    {
        return Err(BuildError::invalid(
            "/loss",
            "margin_mse needs `negatives`, `scores` and `positive_score` columns",
        )
        .with_help(
            "the `grouped` output of op: negatives has them: negatives, scores, positive_score",
        ));
    }
    if p.num_hard_negatives > 0 && p.negatives.is_none() {
        return Err(BuildError::invalid(
            "/negatives",
            "num_hard_negatives needs a `negatives` list column",
        ));
    }
    if p.path
        .as_deref()
        .is_some_and(|x| x.split('/').any(|s| s == ".."))
    {
        return Err(BuildError::invalid("/path", "`..` is not allowed"));
    }
    if p.eval_every == Some(0) {
        return Err(BuildError::invalid(
            "/eval_every",
            "must be at least 1 (or leave it out to evaluate before and after only)",
        ));
    }
    if p.checkpoint_every == Some(0) {
        return Err(BuildError::invalid(
            "/checkpoint_every",
            "must be at least 1 (or leave it out for no checkpoints)",
        ));
    }
    if p.gradient_accumulation == 0 || p.batch_size == 0 {
        return Err(BuildError::invalid("/batch_size", "must be at least 1"));
    }
    if p.mnrl_weight != 0.0 && p.loss != Loss::MarginMse {
        return Err(BuildError::invalid(
            "/mnrl_weight",
            "mnrl_weight adds MNRL to margin_mse; with loss: mnrl leave it out",
        ));
    }
    for (name, rate) in [
        ("hidden_dropout", p.hidden_dropout),
        ("attention_dropout", p.attention_dropout),
    ] {
        if rate.is_some_and(|r| !(0.0..1.0).contains(&r)) {
            return Err(BuildError::invalid(
                &format!("/{name}"),
                "a dropout rate is at least 0 and below 1",
            ));
        }
    }
    if !(p.mnrl_weight.is_finite() && p.mnrl_weight >= 0.0) {
        return Err(BuildError::invalid("/mnrl_weight", "must be 0 or more"));
    }
    Ok(Arc::new(TrainOp { params: p }) as Arc<dyn Operator>)
}

fn log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("step", DataType::UInt64, false),
        Field::new("epoch", DataType::UInt32, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("learning_rate", DataType::Float64, false),
    ]))
}

/// The run log's line on a training's speed (`dflow_runs.note`). Wall
/// times live there and not in the `log` table, so the same inputs give
/// the same bytes and the same lock file.
fn timing_note(step_seconds: &[f64], resumed_at: usize) -> String {
    let total: f64 = step_seconds.iter().sum();
    let steps = step_seconds.len();
    let mean = if steps == 0 {
        0.0
    } else {
        total / steps as f64
    };
    let mut note = format!("{steps} steps in {total:.1} s ({mean:.2} s/step");
    // The first step also warms up (allocations, kernel choices): the
    // steady pace is the one `benches/train.sh` compares.
    if let [_, rest @ ..] = step_seconds
        && !rest.is_empty()
    {
        let steady = rest.iter().sum::<f64>() / rest.len() as f64;
        note.push_str(&format!("; {steady:.3} s/step after the first"));
    }
    note.push(')');
    if resumed_at > 0 {
        note.push_str(&format!(", resumed at step {resumed_at}"));
    }
    note
}

/// One training example.
struct Example {
    /// The batch group (the language with `per_language_batches`).
    group: String,
    query: String,
    positive: String,
    negatives: Vec<String>,
    /// Teacher margins `positive_score − score` per negative.
    margins: Vec<f32>,
}

/// One epoch's batches (indexes into `examples`): examples shuffled, cut
/// into batches within each group (one group unless batches are per
/// language), and the batches shuffled again so groups interleave.
fn batches(examples: &mut [Example], size: usize, seed: u64) -> Vec<Vec<usize>> {
    shuffle(examples, seed);
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_group.entry(e.group.as_str()).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = by_group
        .into_values()
        .flat_map(|idx| idx.chunks(size).map(<[usize]>::to_vec).collect::<Vec<_>>())
        .collect();
    shuffle(&mut out, splitmix(seed));
    out
}

/// The learning rate at optimiser step `step` (0-based) of `total`.
pub fn learning_rate(peak: f64, warmup: usize, total: usize, step: usize) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else if total > warmup {
        peak * (total - step) as f64 / (total - warmup) as f64
    } else {
        peak
    }
}

impl TrainOp {
    fn read_examples(&self, task: &Task<'_>) -> Result<Vec<Example>> {
        let p = &self.params;
        let mut out = Vec::new();
        for batch in task.table("pairs")?.clone().batches(8192) {
            let batch = batch?;
            let text = |name: &str| -> Result<ArrayRef> {
                let c = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::data(format!("no column `{name}`")))?;
                Ok(cast(c, &DataType::Utf8)?)
            };
            let (q, pos) = (text(&p.query)?, text(&p.positive)?);
            let (q, pos) = (q.as_string::<i32>(), pos.as_string::<i32>());
            let group = p.per_language_batches.as_deref().map(text).transpose()?;
            let group = group.as_ref().map(|g| g.as_string::<i32>());
            let negs = match &p.negatives {
                Some(n) => Some(cast(
                    batch
                        .column_by_name(n)
                        .ok_or_else(|| Error::data(format!("no column `{n}`")))?,
                    &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                )?),
                None => None,
            };
            let scores = match &p.scores {
                Some(n) => Some(cast(
                    batch
                        .column_by_name(n)
                        .ok_or_else(|| Error::data(format!("no column `{n}`")))?,
                    &DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
                )?),
                None => None,
            };
            let pos_score: Option<Float32Array> = match &p.positive_score {
                Some(n) => Some(
                    cast(
                        batch
                            .column_by_name(n)
                            .ok_or_else(|| Error::data(format!("no column `{n}`")))?,
                        &DataType::Float32,
                    )?
                    .as_primitive::<Float32Type>()
                    .clone(),
                ),
                None => None,
            };
            for i in 0..batch.num_rows() {
                if q.is_null(i) || pos.is_null(i) {
                    continue;
                }
                let neg_texts = negs.as_ref().filter(|l| l.is_valid(i)).map(|l| {
                    let v = l.as_list::<i32>().value(i);
                    v.as_string::<i32>().clone()
                });
                // Teacher scores line up with the negatives by position.
                let neg_scores = match (&scores, &pos_score) {
                    (Some(l), Some(ps)) if l.is_valid(i) && ps.is_valid(i) => {
                        let v = l.as_list::<i32>().value(i);
                        Some((ps.value(i), v.as_primitive::<Float32Type>().clone()))
                    }
                    _ => None,
                };
                let mut negatives = Vec::new();
                let mut margins = Vec::new();
                if let Some(s) = &neg_texts {
                    for k in (0..s.len()).filter(|&k| s.is_valid(k)) {
                        match &neg_scores {
                            Some((ps, sc)) if k < sc.len() && sc.is_valid(k) => {
                                negatives.push(s.value(k).to_string());
                                margins.push(ps - sc.value(k));
                            }
                            Some(_) => {}
                            None => negatives.push(s.value(k).to_string()),
                        }
                    }
                }
                out.push(Example {
                    group: group
                        .filter(|g| g.is_valid(i))
                        .map(|g| g.value(i).to_string())
                        .unwrap_or_default(),
                    query: q.value(i).to_string(),
                    positive: pos.value(i).to_string(),
                    negatives,
                    margins,
                });
            }
        }
        // Rows that cannot feed the loss.
        out.retain(|e| match p.loss {
            Loss::Mnrl => e.negatives.len() >= p.num_hard_negatives,
            Loss::MarginMse => {
                e.margins.len() == e.negatives.len()
                    && e.negatives.len() >= p.num_hard_negatives.max(1)
            }
        });
        Ok(out)
    }

    fn batch_loss<B: AutodiffBackend>(
        &self,
        model: &Model<B>,
        batch: &[&Example],
    ) -> std::result::Result<Tensor<B, 1>, NeuralError> {
        let p = &self.params;
        let embed = |texts: Vec<&str>| {
            embed_grouped(
                &model.encoder,
                &model.tokenizer,
                &model.profile,
                &texts,
                p.group_tokens,
            )
        };
        let queries = embed(batch.iter().map(|e| e.query.as_str()).collect())?;
        match p.loss {
            Loss::Mnrl => {
                let mut candidates: Vec<&str> = batch.iter().map(|e| e.positive.as_str()).collect();
                for k in 0..p.num_hard_negatives {
                    candidates.extend(batch.iter().map(|e| e.negatives[k].as_str()));
                }
                let candidates = embed(candidates)?;
                Ok(if p.symmetric {
                    mnrl_symmetric(queries, candidates, p.scale)
                } else {
                    mnrl(queries, candidates, p.scale)
                })
            }
            Loss::MarginMse => {
                let positives = embed(batch.iter().map(|e| e.positive.as_str()).collect())?;
                let per_row = match p.num_hard_negatives {
                    0 => usize::MAX,
                    k => k,
                };
                let (mut texts, mut owners, mut margins) = (Vec::new(), Vec::new(), Vec::new());
                for (i, e) in batch.iter().enumerate() {
                    for (n, m) in e.negatives.iter().zip(&e.margins).take(per_row) {
                        texts.push(n.as_str());
                        owners.push(i);
                        margins.push(*m);
                    }
                }
                let n = margins.len();
                let teacher =
                    Tensor::<B, 1>::from_data(TensorData::new(margins, [n]), &queries.device());
                let distilled = margin_mse(
                    queries.clone(),
                    positives.clone(),
                    embed(texts)?,
                    &owners,
                    teacher,
                );
                Ok(if p.mnrl_weight > 0.0 {
                    distilled + mnrl(queries, positives, p.scale) * p.mnrl_weight
                } else {
                    distilled
                })
            }
        }
    }

    /// The whole training on backend `B` (autodiff over Flex or CUDA).
    fn train_on<B: AutodiffBackend>(&self, task: &mut Task<'_>, dev: B::Device) -> Result<()> {
        let p = &self.params;
        let art = task.artifact("model")?.clone();
        let mut examples = self.read_examples(task)?;
        if examples.is_empty() {
            return Err(Error::data(
                "train: no usable training rows (check the columns and num_hard_negatives)",
            ));
        }
        let eval_set = EvalSet::load(task, &p.eval_query_prefix, &p.eval_document_prefix)?;
        let eval_batch_size = task.resources.batch_size.unwrap_or(32).max(1);
        let mut model = Model::<B>::load(&art.dir, p.max_length, &dev)?;
        model.encoder.precision = p.precision;
        let hidden_dropout = p
            .hidden_dropout
            .unwrap_or(model.encoder.config.hidden_dropout);
        let attention_dropout = p
            .attention_dropout
            .unwrap_or(model.encoder.config.attention_dropout);
        let batches_per_epoch: usize = {
            let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &examples {
                *groups.entry(e.group.as_str()).or_default() += 1;
            }
            groups.values().map(|n| n.div_ceil(p.batch_size)).sum()
        };
        let steps_per_epoch = batches_per_epoch.div_ceil(p.gradient_accumulation);
        let total = p
            .max_steps
            .unwrap_or(usize::MAX)
            .min(steps_per_epoch * p.epochs)
            .max(1);
        let mut optim = AdamWConfig::new()
            .with_weight_decay(p.weight_decay)
            .with_grad_clipping(p.max_grad_norm.map(GradientClippingConfig::Norm))
            .init::<B, crate::encoder::Encoder<B>>();
        let mut accumulator = GradientsAccumulator::new();
        let (mut in_accum, mut accum_loss) = (0usize, 0.0f64);
        let work = match p.checkpoint_every {
            Some(_) => Some(task.work_dir()?),
            None => None,
        };
        let mut at = checkpoint::Position::default();
        if let Some(dir) = &work {
            let (encoder, restored, position) = checkpoint::load(dir, model.encoder, optim, &dev)?;
            (model.encoder, optim) = (encoder, restored);
            if let Some(position) = position {
                eprintln!(
                    "dflow: {}: resuming at step {} of {total} from its checkpoint",
                    task.node, position.step
                );
                at = position;
            }
        }
        let mut step = at.step;
        let (start_epoch, start_batch) = (at.epoch, at.next_batch);
        let mut log = at.log;
        let mut evals = at.eval;
        let resumed_at = step;
        let mut step_started = Instant::now();
        let mut step_seconds: Vec<f64> = Vec::new();
        let evaluate = |model: &Model<B>, step: usize| -> Result<Vec<crate::train_eval::EvalRow>> {
            let Some(set) = &eval_set else {
                return Ok(Vec::new());
            };
            // Evaluated in f32, as `evaluate` will run the saved model.
            let mut encoder = model.encoder.valid();
            encoder.precision = Precision::F32;
            encoder.dropout = None;
            let inference = Model {
                encoder,
                tokenizer: model.tokenizer.clone(),
                profile: model.profile.clone(),
            };
            set.run(&inference, step as u64, eval_batch_size)
                .map_err(Error::from)
        };
        if step == 0 {
            evals.extend(evaluate(&model, 0)?);
        }
        // Replay the earlier epochs' shuffles: each epoch's order is a
        // shuffle of the previous one.
        for epoch in 0..start_epoch {
            batches(&mut examples, p.batch_size, splitmix(p.seed ^ epoch as u64));
        }
        'epochs: for epoch in start_epoch..p.epochs.max(1) {
            let batches = batches(&mut examples, p.batch_size, splitmix(p.seed ^ epoch as u64));
            for (index, batch) in batches.into_iter().enumerate() {
                if epoch == start_epoch && index < start_batch {
                    continue;
                }
                if in_accum == 0 {
                    step_started = Instant::now();
                }
                let refs: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
                // This batch's masks, from the seed and its place alone.
                model.encoder.dropout =
                    (hidden_dropout > 0.0 || attention_dropout > 0.0).then(|| {
                        Dropout::new(
                            hidden_dropout,
                            attention_dropout,
                            splitmix(
                                splitmix(p.seed ^ 0xD5) ^ ((epoch as u64) << 32) ^ index as u64,
                            ),
                        )
                    });
                let loss = self.batch_loss(&model, &refs)?;
                let value = loss
                    .clone()
                    .into_data()
                    .convert::<f64>()
                    .to_vec::<f64>()
                    .map_err(|e| Error::internal(format!("reading the loss: {e:?}")))?
                    .first()
                    .copied()
                    .unwrap_or(f64::NAN);
                if !value.is_finite() {
                    return Err(Error::data(format!(
                        "train: the loss became {value} at step {step}; lower learning_rate"
                    )));
                }
                let scaled = loss / p.gradient_accumulation as f32;
                let grads = GradientsParams::from_grads(scaled.backward(), &model.encoder);
                accumulator.accumulate(&model.encoder, grads);
                in_accum += 1;
                accum_loss += value;
                if in_accum == p.gradient_accumulation {
                    let lr = learning_rate(p.learning_rate, p.warmup_steps, total, step);
                    model.encoder = optim.step(lr, model.encoder, accumulator.grads());
                    step_seconds.push(step_started.elapsed().as_secs_f64());
                    log.push(LogRow {
                        step: step as u64 + 1,
                        epoch: epoch as u32,
                        loss: accum_loss / in_accum as f64,
                        learning_rate: lr,
                    });
                    step += 1;
                    in_accum = 0;
                    accum_loss = 0.0;
                    if step >= total {
                        break 'epochs;
                    }
                    if p.eval_every.is_some_and(|every| step % every == 0) {
                        evals.extend(evaluate(&model, step)?);
                    }
                    if let (Some(dir), Some(every)) = (&work, p.checkpoint_every)
                        && step % every == 0
                    {
                        let position = checkpoint::Position {
                            step,
                            epoch,
                            next_batch: index + 1,
                            log: log.clone(),
                            eval: evals.clone(),
                        };
                        checkpoint::save(dir, &model.encoder, &optim, &position)?;
                    }
                }
            }
        }
        if eval_set.is_some() && evals.last().is_none_or(|r| r.step != step as u64) {
            evals.extend(evaluate(&model, step)?);
        }
        if !evals.is_empty() {
            task.outputs.write("eval", &eval_batch(&evals)?)?;
        }
        task.outputs.note(timing_note(&step_seconds, resumed_at));
        let n = log.len();
        let batch = RecordBatch::try_new(
            log_schema(),
            vec![
                Arc::new(UInt64Array::from_iter_values(log.iter().map(|r| r.step))),
                Arc::new(UInt32Array::from_iter_values(log.iter().map(|r| r.epoch))),
                Arc::new(Float64Array::from_iter_values(log.iter().map(|r| r.loss))),
                Arc::new(Float64Array::from_iter_values(
                    log.iter().map(|r| r.learning_rate),
                )),
            ],
        )?;
        if n > 0 {
            task.outputs.write("log", &batch)?;
        }
        model.encoder.dropout = None;
        let trained = Model {
            encoder: model.encoder.valid(),
            tokenizer: model.tokenizer,
            profile: model.profile,
        };
        let out = task.outputs.artifact_dir(OUT)?;
        let readme = format!(
            "# {} fine-tuned by dflow\n\nLoss `{:?}`, {step} optimiser steps on {} examples.\n\nParams:\n\n```json\n{}\n```\n",
            trained.profile.name,
            p.loss,
            examples.len(),
            serde_json::to_string_pretty(p).unwrap_or_default()
        );
        save_sentence_transformers(&trained, &art.dir.join("tokenizer.json"), &out, &readme)?;
        Ok(())
    }
}

impl Operator for TrainOp {
    /// Encoder work: on a cluster, GPU executors first.
    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        // 5: margin_mse over every hard negative, not the first only.
        // 6: dropout while training, at the checkpoint's rates.
        // 7: attention dropout inside the fused kernel.
        7
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![
            InputPort::any_table("pairs"),
            InputPort::artifact("model"),
            InputPort::any_table("eval_queries").optional(),
            InputPort::any_table("eval_corpus").optional(),
            InputPort::any_table("eval_qrels").optional(),
        ])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let s = dflow_engine::kit::columns::input_schema(inputs, "pairs", "train")?;
        let p = &self.params;
        let wanted = [
            Some(&p.query),
            Some(&p.positive),
            p.negatives.as_ref(),
            p.scores.as_ref(),
            p.positive_score.as_ref(),
            p.per_language_batches.as_ref(),
        ];
        for col in wanted.into_iter().flatten() {
            if s.field_with_name(col).is_err() {
                return Err(Error::config(format!(
                    "train: `pairs` has no column `{col}`; its columns are: {}",
                    s.fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let eval_ports = ["eval_queries", "eval_corpus", "eval_qrels"];
        let given = eval_ports
            .iter()
            .filter(|p| inputs.contains_key(**p))
            .count();
        if given != 0 && given != eval_ports.len() {
            return Err(Error::config(
                "train: evaluation needs all of `eval_queries`, `eval_corpus` and `eval_qrels` (testset's outputs)",
            ));
        }
        if given == 0 && p.eval_every.is_some() {
            return Err(Error::config(
                "train: `eval_every` needs a test set on `eval_queries`, `eval_corpus` and `eval_qrels`",
            ));
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Artifact),
            ("log".to_string(), PortType::Table(log_schema())),
            ("eval".to_string(), PortType::Table(eval_schema())),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        match Device::parse(task.resources.device.as_deref())? {
            Device::Cpu => self.train_on::<Autodiff<Cpu>>(task, Default::default()),
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => self.train_on::<Autodiff<burn::backend::Cuda>>(
                task,
                burn::backend::cuda::CudaDevice::new(index),
            ),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(index) => Err(crate::runtime::no_cuda(index).into()),
        }
    }

    fn publish(&self, ctx: &PlanContext, outputs: &dflow_engine::NodeOutput) -> Result<()> {
        let (Some(path), Some(dflow_engine::PortData::Artifact { dir, .. })) =
            (&self.params.path, outputs.ports.get(OUT))
        else {
            return Ok(());
        };
        dflow_engine::ops::export::publish_to(dir, path, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        assert!((learning_rate(1.0, 4, 10, 0) - 0.25).abs() < 1e-12);
        assert!((learning_rate(1.0, 4, 10, 3) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 4, 10, 4) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 4, 10, 9) - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn per_language_batches_hold_one_language() {
        let mut ex: Vec<Example> = (0..10)
            .map(|i| Example {
                group: if i % 3 == 0 { "deu" } else { "eng" }.into(),
                query: format!("q{i}"),
                positive: String::new(),
                negatives: Vec::new(),
                margins: Vec::new(),
            })
            .collect();
        let b = batches(&mut ex, 3, 7);
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 10);
        for batch in &b {
            assert!(batch.iter().all(|&i| ex[i].group == ex[batch[0]].group));
        }
    }
}
