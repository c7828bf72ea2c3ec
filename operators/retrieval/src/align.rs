//! `op: align` — bilingual QA pairs within one origin, as WebFAQ 2.0 built
//! its bitexts.
//!
//! Per origin (scheme + host) with at least two languages and at most
//! `max_urls_per_language` URLs in each: QAs whose question–answer
//! similarity is at least `min_qa_similarity` are compared across each
//! language pair by the cosine of their alignment embeddings (`question +
//! " " + answer`, LaBSE in WebFAQ). A pair is a candidate when the two are
//! each other's best match and their cosine is at least
//! `candidate_threshold`; pairs with the same question or the same answer
//! are dropped. Candidates at or above `release_threshold` are released as
//! `out` (the bitexts), except for language pairs with fewer than
//! `min_pairs_per_language_pair` of them over all origins. All candidates
//! are also written to `candidates`, for precision/recall curves.
//!
//! Incremental: the unit remembers, in its state, the candidates of each
//! origin under a digest of that origin's rows and of the params. When new
//! partitions arrive, origins whose rows did not change reuse their
//! candidates and only the touched origins are compared again; the result
//! is the same as a full recomputation. Within an origin the comparison is
//! blocked (256 rows of one language against all rows of the other at a
//! time, one matrix product each) and parallel, so memory stays at one
//! block's similarities whatever the origin's size.

use dflow_engine::ports::OUT;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, Float32Array};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use dflow_engine::kit::columns::{
    embeddings, floats, input_schema, string_array, strings, text_input,
};
use dflow_engine::kit::state::{read_parquet, write_parquet};

fn default_embedding() -> String {
    "embedding".into()
}
fn default_qa_similarity() -> String {
    "semantic_similarity_score".into()
}
fn default_min_qa() -> Option<f32> {
    Some(0.5)
}
fn default_candidate() -> f32 {
    0.8
}
fn default_release() -> f32 {
    0.9
}
fn default_max_urls() -> usize {
    10_000
}
fn default_min_pairs() -> usize {
    100
}

/// Params of `op: align`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlignParams {
    /// The alignment embedding column (of `question + " " + answer`).
    #[serde(default = "default_embedding")]
    pub embedding: String,
    /// The question–answer similarity column (`score` in `similarity` mode).
    #[serde(default = "default_qa_similarity")]
    pub qa_similarity: String,
    /// QAs below this question–answer similarity are not aligned; `null`
    /// aligns every QA (and needs no `qa_similarity` column).
    #[serde(default = "default_min_qa")]
    pub min_qa_similarity: Option<f32>,
    /// A pair of mutual best matches is a candidate from this cosine up.
    #[serde(default = "default_candidate")]
    pub candidate_threshold: f32,
    /// Candidates from this cosine up are released as bitexts.
    #[serde(default = "default_release")]
    pub release_threshold: f32,
    /// Origins with more URLs than this in one language are skipped.
    #[serde(default = "default_max_urls")]
    pub max_urls_per_language: usize,
    /// Language pairs with fewer released bitexts than this (over all
    /// origins) are dropped.
    #[serde(default = "default_min_pairs")]
    pub min_pairs_per_language_pair: usize,
}

pub struct Align {
    params: AlignParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "align",
        "bilingual QA pairs within an origin: mutual best cosine matches across languages; incremental per origin",
        |p: AlignParams, _ctx| {
            for (path, v) in [
                ("/candidate_threshold", p.candidate_threshold),
                ("/release_threshold", p.release_threshold),
            ] {
                if !(-1.0..=1.0).contains(&v) {
                    return Err(BuildError::invalid(path, "a cosine threshold is between -1 and 1"));
                }
            }
            if p.release_threshold < p.candidate_threshold {
                return Err(BuildError::invalid(
                    "/release_threshold",
                    "must be at least candidate_threshold (released pairs are candidates)",
                ));
            }
            Ok(Arc::new(Align { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// The bitext schema (WebFAQ's, with ids and URLs of both sides).
pub fn bitext_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("language1"),
        s("language2"),
        s("origin"),
        Field::new("similarity", DataType::Float32, false),
        s("question1"),
        s("question2"),
        s("answer1"),
        s("answer2"),
        s("id1"),
        s("id2"),
        s("url1"),
        s("url2"),
    ]))
}

fn memo_schema() -> SchemaRef {
    let mut fields: Vec<Field> = vec![Field::new("origin_key", DataType::Utf8, false)];
    fields.extend(bitext_schema().fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

const MEMO_FILE: &str = "align-memo.parquet";

/// One QA of an origin.
#[derive(Clone)]
struct Qa {
    id: String,
    language: String,
    url: String,
    question: String,
    answer: String,
    /// L2-normalised alignment embedding.
    embedding: Vec<f32>,
}

/// One aligned pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Bitext {
    pub language1: String,
    pub language2: String,
    pub origin: String,
    pub similarity: f32,
    pub question1: String,
    pub question2: String,
    pub answer1: String,
    pub answer2: String,
    pub id1: String,
    pub id2: String,
    pub url1: String,
    pub url2: String,
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Rows of one side compared per block: a block's similarities to the
/// whole other side are one matrix product (`BLOCK × n`).
const BLOCK: usize = 256;

/// The best match of a row: (index on the other side, cosine).
pub type Best = (usize, f32);

fn better(x: Best, y: Best) -> Best {
    if y.1 > x.1 || (y.1 == x.1 && y.0 < x.0) {
        y
    } else {
        x
    }
}

/// Rows as one row-major matrix.
fn matrix(rows: &[&[f32]]) -> Array2<f32> {
    let dim = rows.first().map_or(0, |r| r.len());
    let mut m = Array2::<f32>::zeros((rows.len(), dim));
    for (mut dst, src) in m.rows_mut().into_iter().zip(rows) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d = *s;
        }
    }
    m
}

/// For each row of `a` its best match in `b`, and for each row of `b` its
/// best match in `a` (index, cosine; ties to the lower index). Rows are
/// normalised embeddings of one width. Blocks of `a` are multiplied with
/// `bᵀ` (matrixmultiply's AVX/FMA kernels where the CPU has them) in
/// parallel; memory is one `BLOCK × |b|` product and one best-match vector
/// of `b` per worker, whatever the sizes.
pub fn best_matches(a: &[&[f32]], b: &[&[f32]]) -> (Vec<Best>, Vec<Best>) {
    let none = (usize::MAX, f32::NEG_INFINITY);
    if a.is_empty() || b.is_empty() {
        return (vec![none; a.len()], vec![none; b.len()]);
    }
    let bm = matrix(b);
    let blocks: Vec<(Vec<Best>, Vec<Best>)> = a
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(bi, rows)| {
            let sims = matrix(rows).dot(&bm.t());
            let mut row_best = vec![none; rows.len()];
            let mut col_best = vec![none; b.len()];
            for (r, row) in sims.rows().into_iter().enumerate() {
                let i = bi * BLOCK + r;
                for (j, &s) in row.iter().enumerate() {
                    row_best[r] = better(row_best[r], (j, s));
                    col_best[j] = better(col_best[j], (i, s));
                }
            }
            (row_best, col_best)
        })
        .collect();
    let mut a_best = Vec::with_capacity(a.len());
    let mut b_best = vec![none; b.len()];
    for (rows, cols) in blocks {
        a_best.extend(rows);
        for (acc, c) in b_best.iter_mut().zip(cols) {
            *acc = better(*acc, c);
        }
    }
    (a_best, b_best)
}

impl Align {
    /// The candidates of one origin (its eligible QAs).
    fn align_origin(&self, origin: &str, qas: &[Qa]) -> Vec<Bitext> {
        let mut by_lang: BTreeMap<&str, Vec<&Qa>> = BTreeMap::new();
        for q in qas {
            by_lang.entry(q.language.as_str()).or_default().push(q);
        }
        let langs: Vec<&str> = by_lang.keys().copied().collect();
        let mut out = Vec::new();
        for (i, l1) in langs.iter().enumerate() {
            for l2 in &langs[i + 1..] {
                let (a, b) = (&by_lang[l1], &by_lang[l2]);
                let ea: Vec<&[f32]> = a.iter().map(|q| q.embedding.as_slice()).collect();
                let eb: Vec<&[f32]> = b.iter().map(|q| q.embedding.as_slice()).collect();
                let (a_best, b_best) = best_matches(&ea, &eb);
                for (ia, &(jb, sim)) in a_best.iter().enumerate() {
                    if jb == usize::MAX
                        || b_best[jb].0 != ia
                        || sim < self.params.candidate_threshold
                    {
                        continue;
                    }
                    let (x, y) = (a[ia], b[jb]);
                    if x.question == y.question || x.answer == y.answer {
                        continue;
                    }
                    out.push(Bitext {
                        language1: l1.to_string(),
                        language2: l2.to_string(),
                        origin: origin.to_string(),
                        similarity: sim,
                        question1: x.question.clone(),
                        question2: y.question.clone(),
                        answer1: x.answer.clone(),
                        answer2: y.answer.clone(),
                        id1: x.id.clone(),
                        id2: y.id.clone(),
                        url1: x.url.clone(),
                        url2: y.url.clone(),
                    });
                }
            }
        }
        out
    }

    /// A digest of an origin's eligible rows and the params that shape its
    /// candidates.
    fn origin_key(&self, origin: &str, qas: &[Qa]) -> String {
        let mut h = blake3::Hasher::new();
        let p = &self.params;
        h.update(b"dflow-align-v1\0");
        h.update(origin.as_bytes());
        h.update(&p.candidate_threshold.to_le_bytes());
        for q in qas {
            for s in [&q.id, &q.language, &q.url, &q.question, &q.answer] {
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            for x in &q.embedding {
                h.update(&x.to_le_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

impl Align {
    /// Each origin's key and candidates: from `memo` when an earlier run
    /// aligned the same rows under the same params, computed otherwise.
    fn origin_candidates(
        &self,
        by_origin: &mut BTreeMap<String, Vec<Qa>>,
        memo: &HashMap<String, Vec<Bitext>>,
    ) -> Vec<(String, Vec<Bitext>)> {
        by_origin
            .par_iter_mut()
            .map(|(origin, qas)| {
                qas.sort_by(|x, y| (&x.language, &x.id).cmp(&(&y.language, &y.id)));
                let key = self.origin_key(origin, qas);
                let found = match memo.get(&key) {
                    Some(b) => b.clone(),
                    None => self.align_origin(origin, qas),
                };
                (key, found)
            })
            .collect()
    }
}

fn bitexts_batch(
    schema: &SchemaRef,
    key: Option<&[String]>,
    rows: &[Bitext],
) -> Result<RecordBatch> {
    let col = |f: fn(&Bitext) -> &str| string_array(rows.iter().map(f));
    let mut cols: Vec<ArrayRef> = Vec::new();
    if let Some(k) = key {
        cols.push(string_array(k));
    }
    cols.extend([
        col(|b| &b.language1),
        col(|b| &b.language2),
        col(|b| &b.origin),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|b| b.similarity),
        )) as ArrayRef,
        col(|b| &b.question1),
        col(|b| &b.question2),
        col(|b| &b.answer1),
        col(|b| &b.answer2),
        col(|b| &b.id1),
        col(|b| &b.id2),
        col(|b| &b.url1),
        col(|b| &b.url2),
    ]);
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Memoised candidates by origin key, from an earlier unit's state.
fn read_memo(dir: &Path) -> Result<HashMap<String, Vec<Bitext>>> {
    let path = dir.join(MEMO_FILE);
    let mut memo: HashMap<String, Vec<Bitext>> = HashMap::new();
    if !path.exists() {
        return Ok(memo);
    }
    for batch in read_parquet(&path)? {
        let c: Vec<_> = memo_schema()
            .fields()
            .iter()
            .filter(|f| f.name() != "similarity")
            .map(|f| strings(&batch, f.name()))
            .collect::<Result<_>>()?;
        let sim = floats(&batch, "similarity")?;
        for i in 0..batch.num_rows() {
            let v = |k: usize| c[k].value(i).to_string();
            memo.entry(v(0)).or_default().push(Bitext {
                language1: v(1),
                language2: v(2),
                origin: v(3),
                similarity: sim.value(i),
                question1: v(4),
                question2: v(5),
                answer1: v(6),
                answer2: v(7),
                id1: v(8),
                id2: v(9),
                url1: v(10),
                url2: v(11),
            });
        }
    }
    Ok(memo)
}

impl Operator for Align {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        text_input(
            "qa",
            &["id", "origin", "url", "language", "question", "answer"],
        )
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let s = input_schema(inputs, "qa", "align")?;
        let p = &self.params;
        match s.field_with_name(&p.embedding).map(|f| f.data_type()) {
            Ok(DataType::FixedSizeList(_, _)) => {}
            _ => {
                return Err(Error::config(format!(
                    "align: `qa` has no embedding column `{}` (a fixed-size list of floats); embed `{{question}} {{answer}}` first (op: embed)",
                    p.embedding
                )));
            }
        }
        if p.min_qa_similarity.is_some() && s.field_with_name(&p.qa_similarity).is_err() {
            return Err(Error::config(format!(
                "align: `qa` has no column `{}` for min_qa_similarity; compute it (op: score, mode: similarity) or set min_qa_similarity: null",
                p.qa_similarity
            )));
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(bitext_schema())),
            ("candidates".to_string(), PortType::Table(bitext_schema())),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let p = &self.params;
        let input = task.table("qa")?.clone();
        let eligible = |sims: &Option<Float32Array>, i: usize| match (p.min_qa_similarity, sims) {
            (Some(min), Some(s)) => s.is_valid(i) && s.value(i) >= min,
            _ => true,
        };

        // Pass 1: which origins have two languages and not too many URLs.
        let mut urls: HashMap<String, HashMap<String, BTreeSet<String>>> = HashMap::new();
        for batch in input.batches(8192) {
            let batch = batch?;
            let (origin, lang, url) = (
                strings(&batch, "origin")?,
                strings(&batch, "language")?,
                strings(&batch, "url")?,
            );
            let sims = p
                .min_qa_similarity
                .map(|_| floats(&batch, &p.qa_similarity))
                .transpose()?;
            for i in 0..batch.num_rows() {
                if origin.is_null(i) || lang.is_null(i) || !eligible(&sims, i) {
                    continue;
                }
                urls.entry(origin.value(i).to_string())
                    .or_default()
                    .entry(lang.value(i).to_string())
                    .or_default()
                    .insert(url.value(i).to_string());
            }
        }
        let wanted: BTreeSet<String> = urls
            .into_iter()
            .filter(|(_, langs)| {
                langs.len() >= 2 && langs.values().all(|u| u.len() <= p.max_urls_per_language)
            })
            .map(|(o, _)| o)
            .collect();

        // Pass 2: the eligible QAs of those origins.
        let mut by_origin: BTreeMap<String, Vec<Qa>> = BTreeMap::new();
        for batch in input.batches(8192) {
            let batch = batch?;
            let (origin, lang) = (strings(&batch, "origin")?, strings(&batch, "language")?);
            let (id, url, q, a) = (
                strings(&batch, "id")?,
                strings(&batch, "url")?,
                strings(&batch, "question")?,
                strings(&batch, "answer")?,
            );
            let sims = p
                .min_qa_similarity
                .map(|_| floats(&batch, &p.qa_similarity))
                .transpose()?;
            let (dim, emb) = embeddings(&batch, &p.embedding)?;
            for i in 0..batch.num_rows() {
                if origin.is_null(i)
                    || lang.is_null(i)
                    || !eligible(&sims, i)
                    || !wanted.contains(origin.value(i))
                {
                    continue;
                }
                let mut e = emb[i * dim..(i + 1) * dim].to_vec();
                normalise(&mut e);
                by_origin
                    .entry(origin.value(i).to_string())
                    .or_default()
                    .push(Qa {
                        id: id.value(i).to_string(),
                        language: lang.value(i).to_string(),
                        url: url.value(i).to_string(),
                        question: q.value(i).to_string(),
                        answer: a.value(i).to_string(),
                        embedding: e,
                    });
            }
        }

        // Reuse what an earlier run computed for unchanged origins.
        let mut memo: HashMap<String, Vec<Bitext>> = HashMap::new();
        for dir in task.prior_states {
            memo.extend(read_memo(dir)?);
        }
        let results = self.origin_candidates(&mut by_origin, &memo);

        let mut keys = Vec::new();
        let mut candidates = Vec::new();
        for (key, rows) in results {
            keys.extend(std::iter::repeat_n(key, rows.len()));
            candidates.extend(rows);
        }
        let state = task.outputs.state_dir()?;
        write_parquet(
            &state.join(MEMO_FILE),
            memo_schema(),
            &[bitexts_batch(&memo_schema(), Some(&keys), &candidates)?],
        )?;

        // Release: the threshold, then enough pairs per language pair.
        let released: Vec<&Bitext> = candidates
            .iter()
            .filter(|b| b.similarity >= p.release_threshold)
            .collect();
        let mut per_pair: HashMap<(&str, &str), usize> = HashMap::new();
        for b in &released {
            *per_pair.entry((&b.language1, &b.language2)).or_default() += 1;
        }
        let out: Vec<Bitext> = released
            .into_iter()
            .filter(|b| {
                per_pair[&(b.language1.as_str(), b.language2.as_str())]
                    >= p.min_pairs_per_language_pair
            })
            .cloned()
            .collect();
        let schema = bitext_schema();
        if !candidates.is_empty() {
            task.outputs
                .write("candidates", &bitexts_batch(&schema, None, &candidates)?)?;
        }
        if !out.is_empty() {
            task.outputs
                .write(OUT, &bitexts_batch(&schema, None, &out)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AlignParams {
        serde_json::from_str("{}").expect("defaults")
    }

    fn qa(id: &str, lang: &str, q: &str, a: &str, e: &[f32]) -> Qa {
        let mut embedding = e.to_vec();
        normalise(&mut embedding);
        Qa {
            id: id.into(),
            language: lang.into(),
            url: format!("https://x.test/{lang}"),
            question: q.into(),
            answer: a.into(),
            embedding,
        }
    }

    #[test]
    fn best_matches_equal_brute_force() {
        // Enough rows for several blocks, with ties.
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) % 5) as f32 - 2.0
        };
        let a: Vec<Vec<f32>> = (0..150).map(|_| (0..12).map(|_| rnd()).collect()).collect();
        let b: Vec<Vec<f32>> = (0..70).map(|_| (0..12).map(|_| rnd()).collect()).collect();
        let ar: Vec<&[f32]> = a.iter().map(Vec::as_slice).collect();
        let br: Vec<&[f32]> = b.iter().map(Vec::as_slice).collect();
        let (ab, bb) = best_matches(&ar, &br);
        let brute = |x: &[f32], ys: &[&[f32]]| {
            let mut best = (usize::MAX, f32::NEG_INFINITY);
            for (j, y) in ys.iter().enumerate() {
                let s: f32 = x.iter().zip(*y).map(|(p, q)| p * q).sum();
                if s > best.1 {
                    best = (j, s);
                }
            }
            best
        };
        for (i, x) in ar.iter().enumerate() {
            assert_eq!(ab[i].0, brute(x, &br).0, "row {i} of a");
        }
        for (j, y) in br.iter().enumerate() {
            assert_eq!(bb[j].0, brute(y, &ar).0, "row {j} of b");
        }
    }

    #[test]
    fn mutual_best_above_threshold_and_not_identical() {
        let op = Align { params: params() };
        let qas = vec![
            qa(
                "e1",
                "eng",
                "How long is delivery?",
                "Two days.",
                &[1.0, 0.0, 0.0],
            ),
            qa(
                "e2",
                "eng",
                "Can I return it?",
                "Within 30 days.",
                &[0.0, 1.0, 0.0],
            ),
            qa("e3", "eng", "Do you ship abroad?", "Yes.", &[0.0, 0.0, 1.0]),
            qa(
                "d1",
                "deu",
                "Wie lange dauert die Lieferung?",
                "Zwei Tage.",
                &[0.98, 0.1, 0.0],
            ),
            // Same answer text as e2: dropped even though it matches.
            qa(
                "d2",
                "deu",
                "Kann ich es zurückgeben?",
                "Within 30 days.",
                &[0.0, 1.0, 0.05],
            ),
            // Its best match is e3 but the cosine is below 0.8.
            qa("d3", "deu", "Versand ins Ausland?", "Ja.", &[0.0, 0.7, 0.7]),
        ];
        let out = op.align_origin("https://x.test", &qas);
        let ids: Vec<(&str, &str)> = out
            .iter()
            .map(|b| (b.id1.as_str(), b.id2.as_str()))
            .collect();
        // Languages are ordered: deu before eng.
        assert_eq!(ids, [("d1", "e1")]);
        assert_eq!(out[0].language1, "deu");
        assert!(out[0].similarity > 0.98);
    }

    #[test]
    fn unchanged_origins_come_from_the_memo() {
        let op = Align { params: params() };
        let rows = |answer: &str| {
            vec![
                qa("e1", "eng", "Delivery?", answer, &[1.0, 0.0]),
                qa("d1", "deu", "Lieferung?", "Zwei Tage.", &[1.0, 0.05]),
            ]
        };
        let mut by_origin = BTreeMap::from([
            ("https://a.test".to_string(), rows("Two days.")),
            ("https://b.test".to_string(), rows("Two days!")),
        ]);
        // An earlier run left a (recognisable) result for origin a only.
        let mut a = by_origin["https://a.test"].clone();
        a.sort_by(|x, y| (&x.language, &x.id).cmp(&(&y.language, &y.id)));
        let key = op.origin_key("https://a.test", &a);
        let mut remembered = op.align_origin("https://a.test", &a);
        remembered[0].similarity = 0.123;
        let memo = HashMap::from([(key, remembered)]);
        let got = op.origin_candidates(&mut by_origin, &memo);
        assert_eq!(got[0].1[0].similarity, 0.123, "origin a was aligned again");
        assert!(got[1].1[0].similarity > 0.99, "origin b was not aligned");
    }

    #[test]
    fn origin_key_changes_with_rows_and_threshold() {
        let op = Align { params: params() };
        let a = vec![qa("e1", "eng", "q", "a", &[1.0, 0.0])];
        let mut b = a.clone();
        b[0].answer = "b".into();
        assert_ne!(op.origin_key("o", &a), op.origin_key("o", &b));
        let mut p = params();
        p.candidate_threshold = 0.7;
        let op2 = Align { params: p };
        assert_ne!(op.origin_key("o", &a), op2.origin_key("o", &a));
        assert_eq!(op.origin_key("o", &a), op.origin_key("o", &a.clone()));
    }
}
