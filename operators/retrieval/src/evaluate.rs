//! `op: evaluate` — retrieval quality of one system on per-language test
//! sets (`testset`'s `queries`, `corpus`, `qrels`).
//!
//! `method: bm25` builds a BM25 index per language over the corpus (the
//! `mine` analyzers and scoring) and retrieves the top `k` for each query;
//! `method: dense` ranks the corpus by the cosine of precomputed embeddings
//! (an `embed` node's column on both queries and corpus), exactly, in
//! blocks of queries against the whole corpus of their language. Metrics
//! are trec_eval's ([`dflow_ir::metrics`]): NDCG@10, MRR@10, Recall@10,
//! Recall@100, MAP@100, per language and their macro average (language
//! `macro`), under the system's `name`, so the outputs of several
//! `evaluate` nodes stack into one comparison table.
//!
//! Cross-lingual retrieval: `query_language` and `corpus_language` pick one
//! language's queries against another language's corpus; qrels then link
//! them (e.g. from `bitexts`).

use dflow_engine::ports::OUT;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, Float64Array, UInt64Array};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result,
    TableInput, Task,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{Analyzer, AnalyzerChoice};
use crate::bm25::{Bm25Params, Doc, Exclude, Scratch, Searcher, extend_index, text_hash};
use dflow_engine::kit::columns::{embeddings, input_schema, string_array, strings};
use dflow_ir::metrics::{QueryMetrics, evaluate};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// BM25 over a per-language index of the corpus.
    #[default]
    Bm25,
    /// Cosine of precomputed embeddings (`embedding` on both inputs).
    Dense,
}

fn default_k() -> usize {
    100
}
fn default_embedding() -> String {
    "embedding".into()
}

/// Params of `op: evaluate`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// The system's name in the results (`bm25`, `e5-base`, `e5-mnrl`...).
    pub name: String,
    #[serde(default)]
    pub method: Method,
    /// Documents retrieved per query (at least 100 for Recall@100).
    #[serde(default = "default_k")]
    pub k: usize,
    /// `dense`: the embedding column of `queries` and `corpus`.
    #[serde(default = "default_embedding")]
    pub embedding: String,
    /// `bm25`: term-frequency saturation.
    #[serde(default = "crate::bm25::default_k1")]
    pub k1: f32,
    /// `bm25`: length normalisation.
    #[serde(default = "crate::bm25::default_b")]
    pub b: f32,
    /// `bm25`: text analysis (`auto` per language, `word`, `whitespace`).
    #[serde(default)]
    pub analyzer: AnalyzerChoice,
    /// Cross-lingual: the queries' language (with `corpus_language`).
    #[serde(default)]
    pub query_language: Option<String>,
    /// Cross-lingual: the corpus' language (with `query_language`).
    #[serde(default)]
    pub corpus_language: Option<String>,
}

pub struct Evaluate {
    params: EvaluateParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "evaluate",
        "NDCG@10, MRR@10, Recall@10/100, MAP@100 (as trec_eval) of BM25 or dense retrieval, per language",
        |p: EvaluateParams, _ctx| {
            if p.query_language.is_some() != p.corpus_language.is_some() {
                return Err(BuildError::invalid(
                    "/query_language",
                    "cross-lingual evaluation needs both query_language and corpus_language",
                ));
            }
            if p.k == 0 {
                return Err(BuildError::invalid("/k", "must be at least 1"));
            }
            Ok(Arc::new(Evaluate { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// One language's test set as read from the inputs.
#[derive(Default)]
struct Set {
    queries: Vec<(String, String)>,
    query_vectors: Vec<f32>,
    corpus: Vec<(String, String)>,
    corpus_vectors: Vec<f32>,
    dim: usize,
}

type Run = BTreeMap<String, Vec<(String, f64)>>;

impl Evaluate {
    /// The (query language, corpus language) pairs to evaluate.
    fn language_pairs(&self, languages: impl Iterator<Item = String>) -> Vec<(String, String)> {
        match (&self.params.query_language, &self.params.corpus_language) {
            (Some(q), Some(c)) => vec![(q.clone(), c.clone())],
            _ => languages.map(|l| (l.clone(), l)).collect(),
        }
    }

    fn read(
        &self,
        input: &TableInput,
        into: &mut BTreeMap<String, Set>,
        query_side: bool,
    ) -> Result<()> {
        let dense = self.params.method == Method::Dense;
        for batch in input.batches(8192) {
            let batch = batch?;
            let (lang, id, txt) = (
                strings(&batch, "language")?,
                strings(&batch, "_id")?,
                strings(&batch, "text")?,
            );
            let vectors = if dense {
                Some(embeddings(&batch, &self.params.embedding)?)
            } else {
                None
            };
            for i in 0..batch.num_rows() {
                if lang.is_null(i) || id.is_null(i) {
                    continue;
                }
                let set = into.entry(lang.value(i).to_string()).or_default();
                let row = (id.value(i).to_string(), txt.value(i).to_string());
                let (rows, vecs) = if query_side {
                    (&mut set.queries, &mut set.query_vectors)
                } else {
                    (&mut set.corpus, &mut set.corpus_vectors)
                };
                rows.push(row);
                if let Some((dim, v)) = &vectors {
                    set.dim = *dim;
                    let mut e = v[i * dim..(i + 1) * dim].to_vec();
                    let n = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if n > 0.0 {
                        e.iter_mut().for_each(|x| *x /= n);
                    }
                    vecs.extend(e);
                }
            }
        }
        Ok(())
    }

    fn bm25_run(
        &self,
        queries: &[(String, String)],
        corpus: &[(String, String)],
        lang: &str,
    ) -> Result<Run> {
        let p = &self.params;
        let dir = tempfile::tempdir()?;
        let docs: Vec<Doc> = corpus
            .par_iter()
            .enumerate()
            .map_init(
                || Analyzer::new(p.analyzer, lang),
                |a, (i, (_, text))| Doc {
                    ord: i as u64,
                    tokens: a.tokens(text),
                    hash: text_hash(text),
                },
            )
            .collect();
        extend_index(dir.path(), None, docs).map_err(Error::data)?;
        let searcher =
            Searcher::open(dir.path(), Bm25Params { k1: p.k1, b: p.b }).map_err(Error::data)?;
        queries
            .par_iter()
            .map_init(
                || (Analyzer::new(p.analyzer, lang), Scratch::default()),
                |(a, scratch), (qid, text)| {
                    let (hits, _) = searcher
                        .search(&a.tokens(text), p.k, Exclude::default(), scratch)
                        .map_err(Error::data)?;
                    Ok((
                        qid.clone(),
                        hits.iter()
                            .map(|h| (corpus[h.ord as usize].0.clone(), f64::from(h.score)))
                            .collect(),
                    ))
                },
            )
            .collect()
    }

    fn dense_run(&self, q: &Set, c: &Set) -> Result<Run> {
        if q.dim != c.dim && !q.queries.is_empty() && !c.corpus.is_empty() {
            return Err(Error::data(format!(
                "query embeddings have {} dimensions, corpus embeddings {}",
                q.dim, c.dim
            )));
        }
        let hits = dflow_ir::dense::top_k(
            &q.query_vectors,
            &c.corpus_vectors,
            c.dim.max(1),
            self.params.k,
        )
        .map_err(Error::data)?;
        Ok(q.queries
            .iter()
            .zip(hits)
            .map(|((qid, _), hits)| {
                let docs = hits
                    .into_iter()
                    .map(|(j, s)| (c.corpus[j].0.clone(), f64::from(s)))
                    .collect();
                (qid.clone(), docs)
            })
            .collect())
    }
}

impl Operator for Evaluate {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        InputPorts::Fixed(vec![
            InputPort::table(
                "queries",
                Schema::new(vec![s("language"), s("_id"), s("text")]),
            ),
            InputPort::table(
                "corpus",
                Schema::new(vec![s("language"), s("_id"), s("text")]),
            ),
            InputPort::table("qrels", Schema::new(vec![s("query-id"), s("corpus-id")])),
        ])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if self.params.method == Method::Dense {
            for port in ["queries", "corpus"] {
                let s = input_schema(inputs, port, "evaluate")?;
                if !matches!(
                    s.field_with_name(&self.params.embedding)
                        .map(|f| f.data_type()),
                    Ok(DataType::FixedSizeList(_, _))
                ) {
                    return Err(Error::config(format!(
                        "evaluate: `{port}` has no embedding column `{}`; embed it first (op: embed)",
                        self.params.embedding
                    )));
                }
            }
        }
        let qrels = input_schema(inputs, "qrels", "evaluate")?;
        if qrels.field_with_name("score").is_err() {
            return Err(Error::config(
                "evaluate: `qrels` needs a `score` column (the relevance grade)",
            ));
        }
        Ok(BTreeMap::from([(
            OUT.to_string(),
            PortType::Table(dflow_schemas::results()),
        )]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let mut sets: BTreeMap<String, Set> = BTreeMap::new();
        let queries = task.table("queries")?.clone();
        let corpus = task.table("corpus")?.clone();
        self.read(&queries, &mut sets, true)?;
        self.read(&corpus, &mut sets, false)?;
        let mut qrels: BTreeMap<String, HashMap<String, i64>> = BTreeMap::new();
        for batch in task.table("qrels")?.clone().batches(8192) {
            let batch = batch?;
            let (q, d) = (strings(&batch, "query-id")?, strings(&batch, "corpus-id")?);
            let grade = dflow_engine::kit::columns::floats(&batch, "score")?;
            for i in 0..batch.num_rows() {
                if q.is_valid(i) && d.is_valid(i) {
                    qrels
                        .entry(q.value(i).to_string())
                        .or_default()
                        .insert(d.value(i).to_string(), grade.value(i).round() as i64);
                }
            }
        }

        let pairs = self.language_pairs(sets.keys().cloned().collect::<Vec<_>>().into_iter());
        let mut rows: Vec<(String, u64, QueryMetrics)> = Vec::new();
        let mut per_language = Vec::new();
        for (ql, cl) in pairs {
            let (Some(qset), Some(cset)) = (sets.get(&ql), sets.get(&cl)) else {
                continue;
            };
            if qset.queries.is_empty() || cset.corpus.is_empty() {
                continue;
            }
            let run = match self.params.method {
                Method::Bm25 => self.bm25_run(&qset.queries, &cset.corpus, &cl)?,
                Method::Dense => self.dense_run(qset, cset)?,
            };
            let results = evaluate(&run, &qrels);
            if results.is_empty() {
                continue;
            }
            let mean = QueryMetrics::mean(results.values());
            let label = if ql == cl { ql } else { format!("{ql}-{cl}") };
            rows.push((label, results.len() as u64, mean));
            per_language.push(mean);
        }
        if !per_language.is_empty() {
            let n = rows.iter().map(|r| r.1).sum();
            rows.push(("macro".into(), n, QueryMetrics::mean(per_language.iter())));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&QueryMetrics) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(&r.2))))
        };
        let batch = RecordBatch::try_new(
            dflow_schemas::results(),
            vec![
                string_array(rows.iter().map(|_| self.params.name.as_str())),
                string_array(rows.iter().map(|r| r.0.as_str())),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
                col(|m| m.ndcg_cut_10),
                col(|m| m.mrr_10),
                col(|m| m.recall_10),
                col(|m| m.recall_100),
                col(|m| m.map_cut_100),
            ],
        )?;
        task.outputs.write(OUT, &batch)?;
        Ok(())
    }
}
