//! `op: mine` — BM25 hard-negative candidates: for each training pair, the
//! top `k` documents of its language for its query, the positive excluded.
//!
//! An incremental fold over the `pairs` partitions. The documents are the
//! pairs' own documents (answers), one tantivy index per language; each unit
//! adds its partition's documents to the indexes as a new segment (the
//! earlier segments are shared with the earlier units' states, not copied)
//! and mines its partition's queries, in parallel. A new release therefore
//! indexes and mines only its own rows.
//!
//! Where this differs from mining everything at once: an old query is not
//! searched again when a release adds documents, so it never sees the new
//! ones; and a query mined after a release sees statistics (N, document
//! frequencies, average length) of everything indexed so far, which is
//! exactly what one index over those documents would give. `dflow run
//! --full NODE` computes a fold as one unit over all partitions, which
//! restores the from-scratch result.
//!
//! Output: one row per (query, candidate): rank 0 is the positive (with its
//! BM25 score, so a teacher can score it too), ranks 1..=k the negatives.

use dflow_engine::ports::OUT;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, Float32Array, Int32Array, UInt64Array,
};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt,
    Task,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{Analyzer, AnalyzerChoice};
use crate::bm25::{Bm25Params, Doc, Exclude, Scratch, Searcher, extend_index, text_hash};
use dflow_engine::kit::columns::{input_schema, string_array, strings};
use dflow_engine::kit::state::{read_parquet, write_parquet};

fn default_query() -> String {
    "question".into()
}
fn default_document() -> String {
    "answer".into()
}
fn default_id() -> String {
    "id".into()
}
fn default_language() -> String {
    "language".into()
}
fn default_k() -> usize {
    200
}
fn default_true() -> bool {
    true
}

/// Params of `op: mine`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MineParams {
    /// The query column of `pairs`.
    #[serde(default = "default_query")]
    pub query: String,
    /// The positive document column; these documents are also the corpus.
    #[serde(default = "default_document")]
    pub document: String,
    /// The pair id column (the positive's document id).
    #[serde(default = "default_id")]
    pub id: String,
    /// The language column: one index per language.
    #[serde(default = "default_language")]
    pub language: String,
    /// Candidates per query.
    #[serde(default = "default_k")]
    pub k: usize,
    /// BM25 term-frequency saturation (Pyserini's default).
    #[serde(default = "crate::bm25::default_k1")]
    pub k1: f32,
    /// BM25 length normalisation (Pyserini's default).
    #[serde(default = "crate::bm25::default_b")]
    pub b: f32,
    /// Text analysis: `auto` (per language), `word`, `whitespace`.
    #[serde(default)]
    pub analyzer: AnalyzerChoice,
    /// Skip candidates whose text is the positive's (the same answer on
    /// another page is not a negative).
    #[serde(default = "default_true")]
    pub skip_positive_copies: bool,
}

pub struct Mine {
    params: MineParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "mine",
        "BM25 top-k hard-negative candidates per query (tantivy, one index per language); incremental",
        |p: MineParams, _ctx| {
            if !(p.k1 >= 0.0 && p.k1.is_finite()) {
                return Err(BuildError::invalid("/k1", "must be a finite number ≥ 0"));
            }
            if !(0.0..=1.0).contains(&p.b) {
                return Err(BuildError::invalid("/b", "must be between 0 and 1"));
            }
            Ok(Arc::new(Mine { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// The schema of mined candidates.
pub fn candidates_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("language", DataType::Utf8, false),
        Field::new("query_id", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("document", DataType::Utf8, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("bm25_score", DataType::Float32, false),
    ]))
}

fn docs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ord", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// What a unit leaves for the next one besides its index directories.
#[derive(Default, Serialize, Deserialize)]
struct MineState {
    /// The first document ordinal the next unit may use.
    next_ord: u64,
    /// Languages with an index.
    languages: Vec<String>,
}

const STATE_FILE: &str = "mine.json";
const DOCS_FILE: &str = "docs.parquet";

fn index_dir(state: &Path, lang: &str) -> PathBuf {
    // Language codes come from data: keep the directory name harmless.
    let safe: String = lang
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state
        .join("index")
        .join(format!("{safe}-{:08x}", text_hash(lang) as u32))
}

/// One training pair of this unit.
struct Pair {
    ord: u64,
    id: String,
    query: String,
    document: String,
}

impl Operator for Mine {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Fold {
            port: "pairs".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("pairs")])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let s = input_schema(inputs, "pairs", "mine")?;
        let p = &self.params;
        for col in [&p.query, &p.document, &p.id, &p.language] {
            if s.field_with_name(col).is_err() {
                return Err(Error::config(format!(
                    "mine: `pairs` has no column `{col}`; its columns are: {}",
                    s.fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(BTreeMap::from([(
            OUT.to_string(),
            PortType::Table(candidates_schema()),
        )]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let p = &self.params;
        let prior = task.prior_states.last().cloned();
        let mut state: MineState = match &prior {
            Some(dir) => {
                let text = std::fs::read_to_string(dir.join(STATE_FILE))
                    .context(|| format!("reading the earlier mining state in {}", dir.display()))?;
                serde_json::from_str(&text)?
            }
            None => MineState::default(),
        };
        let base_ord = state.next_ord;

        // This partition's pairs, by language.
        let mut by_lang: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
        let mut next = base_ord;
        let input = task.table("pairs")?.clone();
        for batch in input.batches(8192) {
            let batch = batch?;
            let (q, d, id, lang) = (
                strings(&batch, &p.query)?,
                strings(&batch, &p.document)?,
                strings(&batch, &p.id)?,
                strings(&batch, &p.language)?,
            );
            for i in 0..batch.num_rows() {
                if q.is_null(i) || d.is_null(i) || id.is_null(i) {
                    continue;
                }
                let l = if lang.is_null(i) || lang.value(i).is_empty() {
                    "und"
                } else {
                    lang.value(i)
                };
                by_lang.entry(l.to_string()).or_default().push(Pair {
                    ord: next,
                    id: id.value(i).to_string(),
                    query: q.value(i).to_string(),
                    document: d.value(i).to_string(),
                });
                next += 1;
            }
        }
        state.next_ord = next;

        let state_dir = task.outputs.state_dir()?;
        // This unit's documents, for later units' candidate texts.
        let pairs: Vec<&Pair> = by_lang.values().flatten().collect();
        let docs = RecordBatch::try_new(
            docs_schema(),
            vec![
                Arc::new(UInt64Array::from_iter_values(pairs.iter().map(|r| r.ord))),
                string_array(pairs.iter().map(|r| r.id.as_str())),
                string_array(pairs.iter().map(|r| r.document.as_str())),
            ],
        )?;
        write_parquet(&state_dir.join(DOCS_FILE), docs_schema(), &[docs])?;

        // Every language's index moves forward, with or without new rows.
        let mut languages: Vec<String> = state.languages.clone();
        for l in by_lang.keys() {
            if !languages.contains(l) {
                languages.push(l.clone());
            }
        }
        languages.sort();
        for lang in &languages {
            let rows = by_lang.get(lang).map(Vec::as_slice).unwrap_or_default();
            let prior_index = prior
                .as_ref()
                .map(|d| index_dir(d, lang))
                .filter(|d| d.exists());
            let docs: Vec<Doc> = rows
                .par_iter()
                .map_init(
                    || Analyzer::new(p.analyzer, lang),
                    |a, r| Doc {
                        ord: r.ord,
                        tokens: a.tokens(&r.document),
                        hash: text_hash(&r.document),
                    },
                )
                .collect();
            extend_index(&index_dir(&state_dir, lang), prior_index.as_deref(), docs)
                .map_err(|e| Error::data(format!("language `{lang}`: {e}")))?;
        }
        state.languages = languages;
        std::fs::write(
            state_dir.join(STATE_FILE),
            serde_json::to_vec_pretty(&state)?,
        )?;

        // Mine this unit's queries.
        let bm25 = Bm25Params { k1: p.k1, b: p.b };
        let mut mined: Vec<(&str, &Pair, f32, Vec<crate::bm25::Hit>)> = Vec::new();
        for (lang, rows) in &by_lang {
            let searcher = Searcher::open(&index_dir(&state_dir, lang), bm25)
                .map_err(|e| Error::data(format!("language `{lang}`: {e}")))?;
            let found: Vec<_> = rows
                .par_iter()
                .map_init(
                    || (Analyzer::new(p.analyzer, lang), Scratch::default()),
                    |(a, scratch), r| {
                        let exclude = Exclude {
                            ord: Some(r.ord),
                            hash: p.skip_positive_copies.then(|| text_hash(&r.document)),
                        };
                        searcher
                            .search(&a.tokens(&r.query), p.k, exclude, scratch)
                            .map(|(hits, positive)| (lang.as_str(), r, positive, hits))
                    },
                )
                .collect::<std::result::Result<_, String>>()
                .map_err(|e| Error::data(format!("language `{lang}`: {e}")))?;
            mined.extend(found);
        }

        // Candidate texts: this unit's from memory, earlier ones from the
        // earlier units' document files.
        let mut texts: HashMap<u64, (String, String)> = HashMap::new();
        let wanted: HashSet<u64> = mined
            .iter()
            .flat_map(|(_, _, _, hits)| hits.iter().map(|h| h.ord))
            .filter(|o| *o < base_ord)
            .collect();
        if !wanted.is_empty() {
            for dir in task.prior_states {
                for batch in read_parquet(&dir.join(DOCS_FILE))? {
                    let ords = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<UInt64Array>()
                        .ok_or_else(|| Error::internal("mine state: `ord` is not UInt64"))?;
                    let (ids, text) = (strings(&batch, "id")?, strings(&batch, "text")?);
                    for i in 0..batch.num_rows() {
                        let o = ords.value(i);
                        if wanted.contains(&o) {
                            texts.insert(o, (ids.value(i).to_string(), text.value(i).to_string()));
                        }
                    }
                }
            }
        }
        let local: HashMap<u64, &Pair> = pairs.iter().map(|r| (r.ord, *r)).collect();
        let lookup = |ord: u64| -> Result<(&str, &str)> {
            if let Some(r) = local.get(&ord) {
                return Ok((r.id.as_str(), r.document.as_str()));
            }
            texts
                .get(&ord)
                .map(|(i, t)| (i.as_str(), t.as_str()))
                .ok_or_else(|| Error::internal(format!("mine: document {ord} is in no state")))
        };

        let mut out = CandidateRows::default();
        for (lang, pair, positive, hits) in &mined {
            out.push(lang, pair, &pair.id, &pair.document, 0, *positive);
            for (rank, h) in hits.iter().enumerate() {
                let (id, text) = lookup(h.ord)?;
                out.push(lang, pair, id, text, rank + 1, h.score);
            }
            if out.len() >= 8192 {
                task.outputs.write(OUT, &out.take()?)?;
            }
        }
        if out.len() > 0 {
            task.outputs.write(OUT, &out.take()?)?;
        }
        Ok(())
    }
}

/// Candidate rows being gathered into a batch.
#[derive(Default)]
struct CandidateRows {
    language: Vec<String>,
    query_id: Vec<String>,
    query: Vec<String>,
    doc_id: Vec<String>,
    document: Vec<String>,
    rank: Vec<i32>,
    score: Vec<f32>,
}

impl CandidateRows {
    fn push(&mut self, lang: &str, pair: &Pair, doc_id: &str, doc: &str, rank: usize, score: f32) {
        self.language.push(lang.to_string());
        self.query_id.push(pair.id.clone());
        self.query.push(pair.query.clone());
        self.doc_id.push(doc_id.to_string());
        self.document.push(doc.to_string());
        self.rank.push(i32::try_from(rank).unwrap_or(i32::MAX));
        self.score.push(score);
    }

    fn len(&self) -> usize {
        self.rank.len()
    }

    fn take(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(self);
        let cols: Vec<ArrayRef> = vec![
            string_array(rows.language),
            string_array(rows.query_id),
            string_array(rows.query),
            string_array(rows.doc_id),
            string_array(rows.document),
            Arc::new(Int32Array::from(rows.rank)),
            Arc::new(Float32Array::from(rows.score)),
        ];
        Ok(RecordBatch::try_new(candidates_schema(), cols)?)
    }
}
