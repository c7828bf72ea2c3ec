//! `op: dedup` — exact dedup on `id` across every partition, and
//! near-duplicate questions within an origin, as an incremental fold.
//!
//! Partitions are taken in name order and rows in table order; the first
//! occurrence of an id is kept. Each unit leaves in its state directory the
//! ids it kept and the MinHash signatures of their questions, so a partition
//! added after the others (a new release) is checked against those small
//! files without reading the old partitions again. A partition changed or
//! inserted in the middle recomputes itself and every later one.
//!
//! Near-duplicates: MinHash over character shingles of the lower-cased
//! question, LSH banding to find candidates within the same origin, and the
//! signature's Jaccard estimate against `near_threshold` to confirm. A
//! near-duplicate is flagged (`near_duplicate_of` = the id of the first
//! question it resembles) or dropped, as `near_duplicates` says.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, StringArray};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::kit::rng::splitmix;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt,
    Task,
};
use serde::{Deserialize, Serialize};

use crate::filter::{filter_ports, write_split};
use dflow_engine::kit::columns::text as text_column;
use dflow_schemas::{batch_with, schema_with};

/// Permutations in a MinHash signature.
const PERMS: usize = 64;
/// LSH bands (of `PERMS / BANDS` rows each): candidates from about 0.5
/// Jaccard up, confirmed against the threshold.
const BANDS: usize = 16;
const ROWS: usize = PERMS / BANDS;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NearMode {
    /// No near-duplicate detection (`near_duplicate_of` stays null).
    Off,
    /// Keep near-duplicates, naming the question they resemble.
    #[default]
    Flag,
    /// Drop near-duplicates to `rejected`.
    Drop,
}

fn default_key() -> String {
    "id".into()
}
fn default_threshold() -> f32 {
    0.8
}
fn default_shingle() -> usize {
    5
}

/// Params of `op: dedup`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupParams {
    /// The column exact dedup keys on (md5 hex ids from `clean`, or any
    /// text).
    #[serde(default = "default_key")]
    pub key: String,
    /// What to do with near-duplicate questions within an origin.
    #[serde(default)]
    pub near_duplicates: NearMode,
    /// Estimated Jaccard similarity of question shingles at or above which
    /// two questions of one origin are near-duplicates.
    #[serde(default = "default_threshold")]
    pub near_threshold: f32,
    /// Shingle length in characters.
    #[serde(default = "default_shingle")]
    pub shingle_chars: usize,
}

pub struct Dedup {
    params: DedupParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "dedup",
        "exact dedup on `id` across all partitions and near-duplicate questions per origin; incremental",
        |p: DedupParams, _ctx| {
            if !(0.0..=1.0).contains(&p.near_threshold) {
                return Err(BuildError::invalid(
                    "/near_threshold",
                    "must be between 0 and 1",
                ));
            }
            if p.shingle_chars == 0 {
                return Err(BuildError::invalid("/shingle_chars", "must be at least 1"));
            }
            Ok(Arc::new(Dedup { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// The 128-bit key of an id: its value if it is 32 hex digits (an md5),
/// else a hash of it.
fn key128(id: &str) -> u128 {
    if id.len() == 32
        && let Ok(v) = u128::from_str_radix(id, 16)
    {
        return v;
    }
    let h = blake3::hash(id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_le_bytes(b)
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The MinHash signature of a question's character shingles.
pub fn signature(question: &str, shingle: usize) -> [u32; PERMS] {
    let norm: Vec<char> = question
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let mut sig = [u32::MAX; PERMS];
    let mut add = |h: u64| {
        for (i, s) in sig.iter_mut().enumerate() {
            let v = (splitmix(h ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)) >> 32) as u32;
            if v < *s {
                *s = v;
            }
        }
    };
    if norm.len() <= shingle {
        add(fnv(norm.iter().collect::<String>().as_bytes()));
    } else {
        let mut buf = String::new();
        for w in norm.windows(shingle) {
            buf.clear();
            buf.extend(w);
            add(fnv(buf.as_bytes()));
        }
    }
    sig
}

fn similarity(a: &[u32; PERMS], b: &[u32; PERMS]) -> f32 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f32 / PERMS as f32
}

fn band_hash(sig: &[u32; PERMS], band: usize) -> u64 {
    let mut h = band as u64;
    for v in &sig[band * ROWS..(band + 1) * ROWS] {
        h = splitmix(h ^ u64::from(*v));
    }
    h
}

/// The position of a partition in `Seen::partitions`. Ids map to it, and a
/// `u32` keeps that map small at billions of ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PartitionIdx(u32);

/// The position of a canonical question in `Seen::questions` (what the
/// near-duplicate buckets hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct QuestionIdx(u32);

/// `len` as the next `u32` index, or an error past `u32::MAX` (never a
/// wrapped or saturated index that would point at the wrong entry).
fn next_index(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len).map_err(|_| {
        Error::data(format!(
            "dedup keeps at most {} {what} in its state; split the fold into several nodes",
            u32::MAX
        ))
    })
}

/// What the earlier units kept, and this unit's additions.
#[derive(Default)]
struct Seen {
    /// Kept ids and the partition that kept them.
    ids: HashMap<u128, PartitionIdx>,
    partitions: Vec<String>,
    /// Canonical questions: id, origin hash, signature.
    questions: Vec<(u128, u64, [u32; PERMS])>,
    /// (origin hash, band, band hash) → canonical questions.
    buckets: HashMap<(u64, u8, u64), Vec<QuestionIdx>>,
    /// The ids of `questions`, as text, for `near_duplicate_of`.
    names: Vec<String>,
}

impl Seen {
    /// Adds a partition; its index is what its ids map to.
    fn add_partition(&mut self, name: String) -> Result<PartitionIdx> {
        let idx = PartitionIdx(next_index(self.partitions.len(), "partitions")?);
        self.partitions.push(name);
        Ok(idx)
    }

    fn add_question(
        &mut self,
        id: u128,
        name: String,
        origin: u64,
        sig: [u32; PERMS],
    ) -> Result<()> {
        let idx = QuestionIdx(next_index(self.questions.len(), "canonical questions")?);
        for band in 0..BANDS {
            self.buckets
                .entry((origin, band as u8, band_hash(&sig, band)))
                .or_default()
                .push(idx);
        }
        self.questions.push((id, origin, sig));
        self.names.push(name);
        Ok(())
    }

    fn near(&self, origin: u64, sig: &[u32; PERMS], threshold: f32) -> Option<&str> {
        let mut best: Option<(f32, QuestionIdx)> = None;
        for band in 0..BANDS {
            let Some(cands) = self
                .buckets
                .get(&(origin, band as u8, band_hash(sig, band)))
            else {
                continue;
            };
            for &c in cands {
                let s = similarity(sig, &self.questions[c.0 as usize].2);
                if s >= threshold && best.is_none_or(|(b, i)| s > b || (s == b && c < i)) {
                    best = Some((s, c));
                }
            }
        }
        best.map(|(_, i)| self.names[i.0 as usize].as_str())
    }

    /// Reads one earlier unit's state.
    fn load(&mut self, dir: &Path) -> Result<()> {
        let what = || format!("reading the dedup state in {}", dir.display());
        let partition = std::fs::read_to_string(dir.join("partition.txt")).context(what)?;
        let pidx = self.add_partition(partition.trim().to_string())?;
        let mut ids = Vec::new();
        std::fs::File::open(dir.join("ids.bin"))
            .and_then(|mut f| f.read_to_end(&mut ids))
            .context(what)?;
        if ids.len() % 16 != 0 {
            return Err(Error::data(format!(
                "{}: ids.bin is truncated",
                dir.display()
            )));
        }
        for chunk in ids.chunks_exact(16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(chunk);
            self.ids.entry(u128::from_le_bytes(b)).or_insert(pidx);
        }
        let mut q = Vec::new();
        std::fs::File::open(dir.join("questions.bin"))
            .and_then(|mut f| f.read_to_end(&mut q))
            .context(what)?;
        let truncated = || Error::data(format!("{}: questions.bin is truncated", dir.display()));
        let mut rest = q.as_slice();
        while !rest.is_empty() {
            let (id, r) = take::<16>(rest).ok_or_else(truncated)?;
            let (origin, r) = take::<8>(r).ok_or_else(truncated)?;
            let mut sig = [0u32; PERMS];
            let mut r = r;
            for s in sig.iter_mut() {
                let (v, next) = take::<4>(r).ok_or_else(truncated)?;
                *s = u32::from_le_bytes(v);
                r = next;
            }
            let (len, r) = take::<4>(r).ok_or_else(truncated)?;
            let len = u32::from_le_bytes(len) as usize;
            if r.len() < len {
                return Err(truncated());
            }
            let name = String::from_utf8_lossy(&r[..len]).into_owned();
            rest = &r[len..];
            self.add_question(
                u128::from_le_bytes(id),
                name,
                u64::from_le_bytes(origin),
                sig,
            )?;
        }
        Ok(())
    }
}

/// The first `N` bytes of `b` and the rest.
fn take<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    let head: [u8; N] = b.get(..N)?.try_into().ok()?;
    Some((head, &b[N..]))
}

/// A canonical question this unit adds: id, origin hash, signature, id text.
type NewQuestion = (u128, u64, [u32; PERMS], String);

/// Writes this unit's additions.
fn save(dir: &Path, partition: &str, ids: &[u128], questions: &[NewQuestion]) -> Result<()> {
    std::fs::write(dir.join("partition.txt"), partition)?;
    let mut w = BufWriter::new(std::fs::File::create(dir.join("ids.bin"))?);
    for id in ids {
        w.write_all(&id.to_le_bytes())?;
    }
    w.flush()?;
    let mut w = BufWriter::new(std::fs::File::create(dir.join("questions.bin"))?);
    for (id, origin, sig, name) in questions {
        w.write_all(&id.to_le_bytes())?;
        w.write_all(&origin.to_le_bytes())?;
        for s in sig {
            w.write_all(&s.to_le_bytes())?;
        }
        let len = u32::try_from(name.len())
            .map_err(|_| Error::data(format!("a dedup key of {} bytes is too long", name.len())))?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(name.as_bytes())?;
    }
    w.flush()?;
    Ok(())
}

fn output_schema(input: &Schema) -> SchemaRef {
    schema_with(
        input,
        &[Field::new("near_duplicate_of", DataType::Utf8, true)],
    )
}

impl Operator for Dedup {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Fold {
            port: "faqs".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::table(
            "faqs",
            Schema::new(vec![
                Field::new("origin", DataType::Utf8, true),
                Field::new("question", DataType::Utf8, true),
            ]),
        )])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let Some(PortType::Table(s)) = inputs.get("faqs")
            && !s
                .field_with_name(&self.params.key)
                .is_ok_and(|f| f.data_type() == &DataType::Utf8)
        {
            return Err(Error::data(format!(
                "`faqs` has no text column `{}` to dedup on (set `key`)",
                self.params.key
            )));
        }
        filter_ports(inputs, "faqs", output_schema)
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let mut seen = Seen::default();
        for dir in task.prior_states {
            seen.load(dir)?;
        }
        let partition = task.partition.unwrap_or("all").to_string();
        let this = seen.add_partition(partition.clone())?;
        let input = task.table("faqs")?.clone();
        let out_schema = output_schema(&input.schema);
        let near = self.params.near_duplicates;
        let (mut new_ids, mut new_questions) = (Vec::new(), Vec::new());
        for batch in input.batches(task.batch_size()) {
            let batch = batch?;
            let keys = text_column(&batch, &self.params.key)?;
            let origins = text_column(&batch, "origin")?;
            let questions = text_column(&batch, "question")?;
            let mut reasons = Vec::with_capacity(batch.num_rows());
            let mut near_of: Vec<Option<String>> = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let key_text = if keys.is_null(i) { "" } else { keys.value(i) };
                let id = key128(key_text);
                if let Some(first) = seen.ids.get(&id) {
                    let at = &seen.partitions[first.0 as usize];
                    reasons.push(Some(format!(
                        "duplicate_id: first kept in partition `{at}`"
                    )));
                    near_of.push(None);
                    continue;
                }
                seen.ids.insert(id, this);
                let mut flagged = None;
                if near != NearMode::Off {
                    let origin = fnv(origins.value(i).as_bytes());
                    let q = if questions.is_null(i) {
                        ""
                    } else {
                        questions.value(i)
                    };
                    let sig = signature(q, self.params.shingle_chars);
                    match seen.near(origin, &sig, self.params.near_threshold) {
                        Some(first) => flagged = Some(first.to_string()),
                        None => {
                            seen.add_question(id, key_text.to_string(), origin, sig)?;
                            new_questions.push((id, origin, sig, key_text.to_string()));
                        }
                    }
                }
                match (&flagged, near) {
                    (Some(first), NearMode::Drop) => {
                        // The id still counts as seen: an exact copy later is
                        // a duplicate of this dropped row's id.
                        reasons.push(Some(format!("near_duplicate_of {first}")));
                        near_of.push(None);
                    }
                    _ => {
                        reasons.push(None);
                        near_of.push(flagged);
                    }
                }
                new_ids.push(id);
            }
            let flagged = batch_with(
                &batch,
                &out_schema,
                vec![Arc::new(StringArray::from(near_of))],
            )?;
            write_split(task.outputs, &flagged, &batch, &reasons)?;
        }
        let dir = task.outputs.state_dir()?;
        save(&dir, &partition, &new_ids, &new_questions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_ids_are_their_own_keys() {
        assert_eq!(
            key128("206e6755538c677659272086c43eb91b"),
            0x206e6755538c677659272086c43eb91b
        );
        assert_ne!(key128("a"), key128("b"));
    }

    #[test]
    fn near_duplicates_by_signature() {
        let a = signature("How long does delivery to Austria take?", 5);
        let b = signature("How long does the delivery to Austria take?", 5);
        let c = signature("Can I pay with a credit card?", 5);
        assert!(similarity(&a, &b) >= 0.6, "{}", similarity(&a, &b));
        assert!(similarity(&a, &c) < 0.2);
        assert_eq!(
            similarity(
                &a,
                &signature("how LONG does delivery  to austria take?", 5)
            ),
            1.0
        );
    }

    #[test]
    fn indexes_past_u32_are_an_error_not_a_wrong_entry() {
        assert_eq!(next_index(7, "partitions").expect("fits"), 7);
        let too_many = usize::try_from(u64::from(u32::MAX) + 1).expect("64-bit");
        let err = next_index(too_many, "partitions").expect_err("past u32");
        assert!(err.to_string().contains("split the fold"), "{err}");
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let sig = signature("Where is the shop?", 5);
        save(dir.path(), "p0", &[1, 2], &[(1, 7, sig, "q-1".into())]).expect("save");
        let mut seen = Seen::default();
        seen.load(dir.path()).expect("load");
        assert_eq!(seen.ids.len(), 2);
        assert_eq!(seen.partitions, ["p0"]);
        assert_eq!(seen.near(7, &sig, 0.8), Some("q-1"));
        assert_eq!(seen.near(8, &sig, 0.8), None);
    }
}
