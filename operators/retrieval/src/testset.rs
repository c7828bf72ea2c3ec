//! `op: testset` — WebFAQ-style retrieval sets per language, split by
//! origin.
//!
//! An origin goes to the test side when a seeded hash of it falls below
//! `test_fraction`, for every language at once, so no origin (and no
//! translation of a test QA on the same site) is on both sides. From each
//! test origin `per_origin_test` QAs per language become test queries
//! (chosen by a seeded hash of their id), up to `test_size` queries per
//! language, origins taken in hash order. The corpus of a language holds
//! every answer of that language (train and test origins): the test
//! positives and the distractors. Training pairs are the QAs of the other
//! origins, all columns kept, in the partitions they came from (so a new
//! release adds training partitions and leaves the old ones as they were).
//!
//! The decision for an origin depends only on the seed and the origin, so
//! it does not move when a release adds data; only the `test_size` cap can
//! make a newly seen test origin's QAs wait.
//!
//! Outputs: `queries (language, _id, text)`, `corpus (language, _id, title,
//! text)`, `qrels (language, query-id, corpus-id, score)` and `train`, each
//! in the partitions its rows came from, so that what is computed per
//! partition downstream (embedding the corpus) is computed for a new
//! release's rows only. The
//! BEIR/MTEB files are an `export` away
//! (`exports/beir/{language}/corpus.jsonl`, `qrels/test.tsv`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int32Array};
use dflow_engine::datafusion::arrow::compute::filter_record_batch;
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, TableInput, Task,
};
use serde::{Deserialize, Serialize};

use dflow_engine::kit::columns::{input_schema, string_array, strings, text_input};

fn default_seed() -> u64 {
    42
}
fn default_fraction() -> f64 {
    0.2
}
fn default_test_size() -> usize {
    10_000
}
fn default_per_origin() -> usize {
    1
}

/// Params of `op: testset`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestsetParams {
    /// Seed of the origin split and of the choice of test QAs.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Share of origins put on the test side.
    #[serde(default = "default_fraction")]
    pub test_fraction: f64,
    /// Test queries per language, at most.
    #[serde(default = "default_test_size")]
    pub test_size: usize,
    /// Test queries per origin and language (WebFAQ: 1, so near-duplicate
    /// QAs of one site cannot leak between queries).
    #[serde(default = "default_per_origin")]
    pub per_origin_test: usize,
    /// A column for the corpus `title` (e.g. the page title); empty titles
    /// when unset.
    #[serde(default)]
    pub title: Option<String>,
    /// Only these languages (all when unset).
    #[serde(default)]
    pub languages: Option<Vec<String>>,
}

pub struct Testset {
    params: TestsetParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "testset",
        "retrieval test sets per language (queries, corpus, qrels) and training pairs, split by origin",
        |p: TestsetParams, _ctx| {
            if !(0.0..=1.0).contains(&p.test_fraction) {
                return Err(BuildError::invalid("/test_fraction", "must be between 0 and 1"));
            }
            Ok(Arc::new(Testset { params: p }) as Arc<dyn Operator>)
        },
    );
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![s("language"), s("_id"), s("text")]))
}
fn corpus_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("language"),
        s("_id"),
        s("title"),
        s("text"),
    ]))
}
fn qrels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        s("language"),
        s("query-id"),
        s("corpus-id"),
        Field::new("score", DataType::Int32, false),
    ]))
}

/// A seeded 64-bit hash of a text.
fn seeded(seed: u64, text: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(text.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(b)
}

impl Testset {
    fn is_test_origin(&self, origin: &str) -> bool {
        (seeded(self.params.seed, origin) as f64 / u64::MAX as f64) < self.params.test_fraction
    }

    fn wants(&self, lang: &str) -> bool {
        self.params
            .languages
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == lang))
    }

    /// The test query ids, given (language, origin, id) of every QA.
    fn choose_queries<'a>(
        &self,
        rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> HashSet<String> {
        let p = &self.params;
        // language → origin → ids
        let mut test: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
        for (lang, origin, id) in rows {
            if self.wants(lang) && self.is_test_origin(origin) {
                test.entry(lang)
                    .or_default()
                    .entry(origin)
                    .or_default()
                    .push(id);
            }
        }
        let mut chosen = HashSet::new();
        for origins in test.values() {
            let mut order: Vec<(&&str, &Vec<&str>)> = origins.iter().collect();
            order.sort_by_key(|(o, _)| (seeded(p.seed, o), **o));
            let mut n = 0;
            for (_, ids) in order {
                let mut ids: Vec<&&str> = ids.iter().collect();
                ids.sort_by_key(|id| (seeded(p.seed ^ 0x5eed, id), **id));
                ids.dedup();
                for id in ids.into_iter().take(p.per_origin_test) {
                    if n >= p.test_size {
                        break;
                    }
                    chosen.insert(id.to_string());
                    n += 1;
                }
            }
        }
        chosen
    }
}

impl Operator for Testset {
    fn version(&self) -> u32 {
        // 2: queries, corpus and qrels kept in their input partitions.
        2
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        text_input("qa", &["id", "origin", "language", "question", "answer"])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        let schema = input_schema(inputs, "qa", "testset")?;
        if let Some(t) = &self.params.title
            && schema.field_with_name(t).is_err()
        {
            return Err(Error::config(format!(
                "testset: `qa` has no title column `{t}`"
            )));
        }
        Ok(BTreeMap::from([
            ("queries".to_string(), PortType::Table(queries_schema())),
            ("corpus".to_string(), PortType::Table(corpus_schema())),
            ("qrels".to_string(), PortType::Table(qrels_schema())),
            ("train".to_string(), PortType::Table(schema.clone())),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let input = task.table("qa")?.clone();
        // Pass 1: (language, origin, id) of every row.
        let mut keys: Vec<(String, String, String)> = Vec::new();
        for batch in input.batches(8192) {
            let batch = batch?;
            let (l, o, id) = (
                strings(&batch, "language")?,
                strings(&batch, "origin")?,
                strings(&batch, "id")?,
            );
            for i in 0..batch.num_rows() {
                if l.is_valid(i) && o.is_valid(i) && id.is_valid(i) {
                    keys.push((l.value(i).into(), o.value(i).into(), id.value(i).into()));
                }
            }
        }
        let chosen = self.choose_queries(
            keys.iter()
                .map(|(l, o, i)| (l.as_str(), o.as_str(), i.as_str())),
        );
        drop(keys);

        // Pass 2, partition by partition.
        let mut in_corpus: HashSet<String> = HashSet::new();
        for part in &input.parts {
            let one = TableInput {
                schema: input.schema.clone(),
                parts: vec![part.clone()],
            };
            for batch in one.batches(8192) {
                let batch = batch?;
                self.split_batch(&batch, &part.name, &chosen, &mut in_corpus, task)?;
            }
        }
        Ok(())
    }
}

impl Testset {
    fn split_batch(
        &self,
        batch: &RecordBatch,
        partition: &str,
        chosen: &HashSet<String>,
        in_corpus: &mut HashSet<String>,
        task: &mut Task<'_>,
    ) -> Result<()> {
        let (lang, origin, id, q, a) = (
            strings(batch, "language")?,
            strings(batch, "origin")?,
            strings(batch, "id")?,
            strings(batch, "question")?,
            strings(batch, "answer")?,
        );
        let title = self
            .params
            .title
            .as_ref()
            .map(|t| strings(batch, t))
            .transpose()?;
        let n = batch.num_rows();
        let valid = |i: usize| {
            lang.is_valid(i)
                && origin.is_valid(i)
                && id.is_valid(i)
                && q.is_valid(i)
                && a.is_valid(i)
        };
        let mut train = Vec::with_capacity(n);
        let (mut queries, mut corpus, mut qrels) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let ok = valid(i) && self.wants(lang.value(i));
            train.push(Some(ok && !self.is_test_origin(origin.value(i))));
            if !ok {
                continue;
            }
            if in_corpus.insert(format!("{}\0{}", lang.value(i), id.value(i))) {
                corpus.push(i);
            }
            if chosen.contains(id.value(i)) {
                queries.push(i);
                qrels.push(i);
            }
        }
        let kept = filter_record_batch(batch, &BooleanArray::from(train))?;
        if kept.num_rows() > 0 {
            task.outputs
                .table_partition("train", partition)?
                .write(&kept)?;
        }
        let pick = |rows: &[usize], col: &dflow_engine::datafusion::arrow::array::StringArray| {
            string_array(rows.iter().map(|&i| col.value(i)))
        };
        if !queries.is_empty() {
            let b = RecordBatch::try_new(
                queries_schema(),
                vec![
                    pick(&queries, &lang),
                    pick(&queries, &id),
                    pick(&queries, &q),
                ],
            )?;
            task.outputs
                .table_partition("queries", partition)?
                .write(&b)?;
            let cols: Vec<ArrayRef> = vec![
                pick(&qrels, &lang),
                pick(&qrels, &id),
                pick(&qrels, &id),
                Arc::new(Int32Array::from(vec![1; qrels.len()])),
            ];
            task.outputs
                .table_partition("qrels", partition)?
                .write(&RecordBatch::try_new(qrels_schema(), cols)?)?;
        }
        if !corpus.is_empty() {
            let titles = match &title {
                Some(t) => string_array(
                    corpus
                        .iter()
                        .map(|&i| if t.is_valid(i) { t.value(i) } else { "" }),
                ),
                None => string_array(corpus.iter().map(|_| "")),
            };
            let b = RecordBatch::try_new(
                corpus_schema(),
                vec![
                    pick(&corpus, &lang),
                    pick(&corpus, &id),
                    titles,
                    pick(&corpus, &a),
                ],
            )?;
            task.outputs
                .table_partition("corpus", partition)?
                .write(&b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: impl FnOnce(&mut TestsetParams)) -> Testset {
        let mut p: TestsetParams = serde_json::from_str("{}").expect("defaults");
        f(&mut p);
        Testset { params: p }
    }

    fn rows() -> Vec<(String, String, String)> {
        let mut r = Vec::new();
        for o in 0..200 {
            for lang in ["eng", "deu"] {
                for q in 0..3 {
                    r.push((
                        lang.to_string(),
                        format!("https://site{o}.test"),
                        format!("{lang}-{o}-{q}"),
                    ));
                }
            }
        }
        r
    }

    fn choose(t: &Testset, r: &[(String, String, String)]) -> HashSet<String> {
        t.choose_queries(
            r.iter()
                .map(|(l, o, i)| (l.as_str(), o.as_str(), i.as_str())),
        )
    }

    #[test]
    fn one_query_per_test_origin_and_language() {
        let t = op(|_| {});
        let r = rows();
        let chosen = choose(&t, &r);
        let test_origins: HashSet<&str> = r
            .iter()
            .filter(|x| t.is_test_origin(&x.1))
            .map(|x| x.1.as_str())
            .collect();
        // About a fifth of the origins.
        assert!(
            (25..=55).contains(&test_origins.len()),
            "{}",
            test_origins.len()
        );
        assert_eq!(chosen.len(), 2 * test_origins.len());
        for (_, o, id) in &r {
            if chosen.contains(id) {
                assert!(test_origins.contains(o.as_str()));
            }
        }
    }

    #[test]
    fn test_size_caps_each_language_and_seed_moves_the_split() {
        let r = rows();
        let t = op(|p| p.test_size = 5);
        let chosen = choose(&t, &r);
        assert_eq!(chosen.iter().filter(|i| i.starts_with("eng")).count(), 5);
        assert_eq!(chosen.iter().filter(|i| i.starts_with("deu")).count(), 5);
        let other = op(|p| p.seed = 7);
        assert_ne!(choose(&op(|_| {}), &r), choose(&other, &r));
    }

    #[test]
    fn split_is_stable_when_data_is_added() {
        let t = op(|_| {});
        let r = rows();
        let before = choose(&t, &r[..600]);
        let after = choose(&t, &r);
        // Origins seen before keep their queries.
        assert!(before.iter().all(|id| after.contains(id)));
    }
}
