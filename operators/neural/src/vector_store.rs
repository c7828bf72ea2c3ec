//! The vector store: the vectors that `embed` and `score` compute on the
//! CPU, kept under `.dflow/memo/vectors/` and shared by every node and run
//! of a workspace, so that a text a model has embedded once is not
//! embedded again — by another node (the sample's teacher and test corpus
//! read the answers the similarity node embedded) or by a later run (a new
//! release's BM25 candidates are mostly old answers).
//!
//! Exact, not approximate: the CPU encoder is batch-invariant (a text's
//! vector has the same bits whichever texts share its batch and however far
//! that batch is padded; `tests/batch_invariance.rs`), so a stored vector is
//! the one the node would have computed, and the store stays out of every
//! cache key. On a GPU the kernels pick their tiles by shape, so the store
//! is not used there.
//!
//! Layout: one directory per *space* — a model artifact's digest, the
//! maximum length, the precision and a fingerprint of the encoder's
//! numerics (the bits of two probe texts' vectors, so a build whose kernels
//! round differently starts a new space instead of mixing its vectors with
//! older ones). In a space, each flush writes one segment file, named by
//! its content's digest and renamed into place whole:
//!
//! ```text
//! "DFVEC01\n" | dim: u32 LE | count: u64 LE | count × 32-byte BLAKE3 key of the text
//!             | count × dim × f32 LE
//! ```
//!
//! A damaged or foreign file is skipped with a warning, never read as
//! vectors. Each space names its model's digest in `artifact.digest`, so
//! `dflow gc` removes the spaces of models no lock file uses; `dflow gc
//! --memo` deletes the store. `DFLOW_VECTOR_STORE=off`
//! turns it off (to measure what it saves).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::encoder::Precision;
use crate::error::NeuralError;
use crate::runtime::{Device, TextModel};

const MAGIC: &[u8; 8] = b"DFVEC01\n";
/// Magic, dimensions (u32), count (u64).
const HEADER: usize = 8 + 4 + 8;
/// Vectors a task holds before writing them out as a segment.
const FLUSH_VECTORS: usize = 16_384;
/// Segments a space may hold before its smaller half is merged into one
/// (every task writes one, so a run over thousands of partitions would
/// otherwise leave thousands of files to list and index).
const MAX_SEGMENTS: usize = 64;
/// Vectors a task keeps in memory for its own later rows (about 60 MB at
/// 384 dimensions); past that the store answers.
const RECENT_VECTORS: usize = 40_000;
/// Texts embedded to fingerprint the encoder's numerics: a short one and
/// one long enough to cross the kernels' 8-wide and tiled paths.
const PROBES: [&str; 2] = [
    "query: dflow vector store probe",
    "passage: The probe text of dflow's vector store is long enough to fill several \
     lanes of every kernel: tokenised, embedded, pooled and normalised, its vector's bits \
     say whether this build computes vectors exactly as the one that wrote the store did, \
     in every script: Привет, мир. مرحبا بالعالم. 你好，世界。 नमस्ते दुनिया. สวัสดีชาวโลก",
];

/// A text's key in the store.
type Key = [u8; 32];

fn key(text: &str) -> Key {
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// One segment file, known to be whole.
struct Segment {
    path: PathBuf,
    dim: usize,
    count: usize,
}

impl Segment {
    /// The header and keys of the segment at `path`, or `None` when the
    /// file is not a whole segment (damaged, cut short or foreign).
    fn open(path: &Path) -> std::io::Result<Option<(Segment, Vec<Key>)>> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER];
        if len < HEADER as u64 || file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
            return Ok(None);
        }
        let dim = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let mut count_bytes = [0u8; 8];
        count_bytes.copy_from_slice(&header[12..20]);
        let count = u64::from_le_bytes(count_bytes);
        let whole = (count as u128) * (32 + 4 * dim as u128) + HEADER as u128;
        if dim == 0 || whole != u128::from(len) {
            return Ok(None);
        }
        let count = count as usize;
        let mut raw = vec![0u8; 32 * count];
        file.read_exact(&mut raw)?;
        let keys = raw
            .chunks_exact(32)
            .map(|c| {
                let mut k = [0u8; 32];
                k.copy_from_slice(c);
                k
            })
            .collect();
        Ok(Some((
            Segment {
                path: path.to_path_buf(),
                dim,
                count,
            },
            keys,
        )))
    }

    fn vector_offset(&self, row: usize) -> u64 {
        (HEADER + 32 * self.count + 4 * self.dim * row) as u64
    }
}

/// Writes `entries` as a new segment in `dir`: staged under a temporary
/// name and renamed, so a reader sees all of it or nothing.
fn write_segment(
    dir: &Path,
    dim: usize,
    entries: &[(Key, Arc<Vec<f32>>)],
) -> Result<String, NeuralError> {
    let mut bytes = Vec::with_capacity(HEADER + entries.len() * (32 + 4 * dim));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&u32::try_from(dim)?.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (k, _) in entries {
        bytes.extend_from_slice(k);
    }
    for (_, v) in entries {
        if v.len() != dim {
            return Err(NeuralError::Internal(format!(
                "vector store: a {}-dimensional vector in a {dim}-dimensional segment",
                v.len()
            )));
        }
        for x in v.iter() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    let name = format!("{}.vec", &blake3::hash(&bytes).to_hex()[..32]);
    let staged = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let failed = |e: std::io::Error| NeuralError::io("vector store", dir, e);
    fs::write(&staged, &bytes).map_err(failed)?;
    fs::rename(&staged, dir.join(&name)).map_err(failed)?;
    Ok(name)
}

/// The segments of one space and where each key's vector is: shared by
/// every task of the process, refreshed from the directory as tasks start.
struct Index {
    dir: PathBuf,
    segments: Vec<Segment>,
    seen: HashSet<String>,
    keys: HashMap<Key, (u32, u32)>,
}

impl Index {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            seen: HashSet::new(),
            keys: HashMap::new(),
        }
    }

    /// Indexes the segments written since the last look (by this process
    /// or an earlier one).
    fn refresh(&mut self) -> Result<(), NeuralError> {
        let failed = |e: std::io::Error| NeuralError::io("vector store", &self.dir, e);
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map_err(failed)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".vec") && !n.starts_with('.') && !self.seen.contains(n))
            .collect();
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            match Segment::open(&path) {
                Ok(Some((segment, keys))) => self.add(segment, keys)?,
                Ok(None) => eprintln!(
                    "dflow: vector store: {} is not a whole segment; ignored (`dflow gc --memo` clears the store)",
                    path.display()
                ),
                Err(e) => eprintln!("dflow: vector store: {}: {e}; ignored", path.display()),
            }
            self.seen.insert(name);
        }
        Ok(())
    }

    fn add(&mut self, segment: Segment, keys: Vec<Key>) -> Result<(), NeuralError> {
        let at = u32::try_from(self.segments.len())?;
        for (row, k) in keys.into_iter().enumerate() {
            let row = u32::try_from(row)?;
            self.keys.entry(k).or_insert((at, row));
        }
        self.segments.push(segment);
        Ok(())
    }

    /// Merges the smaller half of the segments into one once there are
    /// more than [`MAX_SEGMENTS`] (size-tiered, so each vector is rewritten
    /// a logarithmic number of times), then indexes the space afresh.
    fn compact(&mut self) -> Result<(), NeuralError> {
        if self.segments.len() <= MAX_SEGMENTS {
            return Ok(());
        }
        let mut by_size: Vec<usize> = (0..self.segments.len()).collect();
        by_size.sort_by_key(|&s| (self.segments[s].count, s));
        let merged: Vec<usize> = by_size[..self.segments.len() / 2].to_vec();
        let dim = self.segments[merged[0]].dim;
        let merged: Vec<usize> = merged
            .into_iter()
            .filter(|&s| self.segments[s].dim == dim)
            .collect();
        // The rows the index points at in each merged segment: a key's
        // first copy (a later copy is the same vector and is dropped).
        let mut rows: HashMap<usize, Vec<(usize, Key)>> =
            merged.iter().map(|&s| (s, Vec::new())).collect();
        for (k, &(s, row)) in &self.keys {
            if let Some(r) = rows.get_mut(&(s as usize)) {
                r.push((row as usize, *k));
            }
        }
        let mut entries: Vec<(Key, Arc<Vec<f32>>)> = Vec::new();
        for &s in &merged {
            let mut at = rows.remove(&s).unwrap_or_default();
            at.sort_unstable();
            for (k, v) in self.read_rows(s, &at)? {
                entries.push((k, Arc::new(v)));
            }
        }
        let name = write_segment(&self.dir, dim, &entries)?;
        for &s in &merged {
            let path = &self.segments[s].path;
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy() != name)
            {
                fs::remove_file(path).map_err(|e| NeuralError::io("vector store", path, e))?;
            }
        }
        self.segments.clear();
        self.seen.clear();
        self.keys.clear();
        self.refresh()
    }

    /// The vectors at `rows` (`(row, tag)`, in row order) of segment `s`,
    /// each with its tag.
    fn read_rows<T: Copy>(
        &self,
        s: usize,
        rows: &[(usize, T)],
    ) -> Result<Vec<(T, Vec<f32>)>, NeuralError> {
        let segment = &self.segments[s];
        let failed = |e: std::io::Error| NeuralError::io("vector store", &segment.path, e);
        let mut file = File::open(&segment.path).map_err(failed)?;
        rows.iter()
            .map(|&(row, tag)| {
                file.seek(SeekFrom::Start(segment.vector_offset(row)))
                    .map_err(failed)?;
                let mut raw = vec![0u8; 4 * segment.dim];
                file.read_exact(&mut raw).map_err(failed)?;
                Ok((tag, floats(&raw)))
            })
            .collect()
    }

    /// The stored vectors of `wanted` (`(slot, key)`), as `(slot, vector)`.
    fn read(&self, wanted: &[(usize, Key)]) -> Result<Vec<(usize, Vec<f32>)>, NeuralError> {
        let mut by_segment: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (slot, k) in wanted {
            if let Some(&(s, row)) = self.keys.get(k) {
                by_segment
                    .entry(s as usize)
                    .or_default()
                    .push((row as usize, *slot));
            }
        }
        let mut out = Vec::new();
        for (s, mut rows) in by_segment {
            rows.sort_unstable();
            out.extend(self.read_rows(s, &rows)?);
        }
        Ok(out)
    }
}

fn floats(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The index of the space in `dir`, shared within the process.
fn index_of(dir: &Path) -> Result<Arc<Mutex<Index>>, NeuralError> {
    static SPACES: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<Index>>>>> = OnceLock::new();
    let mut spaces = SPACES
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| NeuralError::internal("vector store index poisoned"))?;
    Ok(spaces
        .entry(dir.to_path_buf())
        .or_insert_with(|| Arc::new(Mutex::new(Index::new(dir))))
        .clone())
}

/// Space names by (model digest, maximum length, precision).
type SpaceNames = Mutex<HashMap<(String, usize, Precision), String>>;

/// The space of a model (by its artifact digest), length and precision,
/// with the fingerprint of this build's numerics; computed once per
/// process.
fn space(
    model: &dyn TextModel,
    digest: &str,
    max_length: usize,
    precision: Precision,
) -> Result<String, NeuralError> {
    static SPACES: OnceLock<SpaceNames> = OnceLock::new();
    let id = (digest.to_string(), max_length, precision);
    let known = SPACES.get_or_init(Default::default);
    if let Some(s) = known
        .lock()
        .map_err(|_| NeuralError::internal("poisoned"))?
        .get(&id)
    {
        return Ok(s.clone());
    }
    let probes = model.embed(&PROBES, PROBES.len())?;
    let mut h = blake3::Hasher::new();
    h.update(b"dflow-vectors-v1\0");
    h.update(digest.as_bytes());
    h.update(&(max_length as u64).to_le_bytes());
    h.update(format!("{precision:?}").as_bytes());
    for v in &probes {
        for x in v {
            h.update(&x.to_bits().to_le_bytes());
        }
    }
    let s = h.finalize().to_hex()[..32].to_string();
    known
        .lock()
        .map_err(|_| NeuralError::internal("poisoned"))?
        .insert(id, s.clone());
    Ok(s)
}

/// What a task's embeddings came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Whether the vector store was used (on the CPU, unless turned off).
    pub with_store: bool,
    /// Texts asked for (with repeats).
    pub asked: usize,
    /// Distinct texts read from the store.
    pub stored: usize,
    /// Distinct texts the model embedded.
    pub computed: usize,
}

/// A task's embedder: each distinct text is embedded once, texts already
/// in the store are read from it, and what the model computes is written
/// to it (in segments of [`FLUSH_VECTORS`], and by [`VectorMemo::finish`]).
pub struct VectorMemo {
    model: Arc<dyn TextModel>,
    batch_size: usize,
    index: Option<Arc<Mutex<Index>>>,
    recent: HashMap<Key, Arc<Vec<f32>>>,
    pending: Vec<(Key, Arc<Vec<f32>>)>,
    stats: MemoStats,
}

impl VectorMemo {
    /// Without a store: distinct texts are still embedded once per task.
    pub fn in_memory(model: Arc<dyn TextModel>, batch_size: usize) -> Self {
        Self {
            model,
            batch_size,
            index: None,
            recent: HashMap::new(),
            pending: Vec::new(),
            stats: MemoStats::default(),
        }
    }

    /// With the store in `root` (`Task::memo_dir("vectors")`), for the
    /// model whose artifact digest is `digest`.
    pub fn with_store(
        model: Arc<dyn TextModel>,
        batch_size: usize,
        root: &Path,
        digest: &str,
        max_length: usize,
        precision: Precision,
    ) -> Result<Self, NeuralError> {
        let dir = root.join(space(model.as_ref(), digest, max_length, precision)?);
        let failed = |e: std::io::Error| NeuralError::io("vector store", &dir, e);
        fs::create_dir_all(&dir).map_err(failed)?;
        // Whose vectors these are: `dflow gc` removes the space once no
        // lock file uses the model.
        let owner = dir.join(dflow_engine::cache::store::ARTIFACT_FILE);
        if !owner.exists() {
            dflow_engine::cache::store::write_atomic(&owner, digest.as_bytes()).map_err(|e| {
                NeuralError::from(e).context(format!("vector store {}", dir.display()))
            })?;
        }
        let index = index_of(&dir)?;
        index
            .lock()
            .map_err(|_| NeuralError::internal("vector store index poisoned"))?
            .refresh()?;
        let mut memo = Self::in_memory(model, batch_size);
        memo.index = Some(index);
        memo.stats.with_store = true;
        Ok(memo)
    }

    /// The embedder of a task: with the store for a model on the CPU,
    /// unless `DFLOW_VECTOR_STORE=off`.
    pub fn for_task(
        task: &dflow_engine::Task<'_>,
        model: Arc<dyn TextModel>,
        batch_size: usize,
        max_length: usize,
        precision: Precision,
    ) -> dflow_engine::Result<Self> {
        let on_cpu = Device::parse(task.resources.device.as_deref()).ok() == Some(Device::Cpu);
        let off = std::env::var("DFLOW_VECTOR_STORE").is_ok_and(|v| v == "off");
        if !on_cpu || off {
            return Ok(Self::in_memory(model, batch_size));
        }
        let digest = task.artifact("model")?.digest.clone();
        let opened = task
            .memo_dir("vectors")
            .map_err(NeuralError::from)
            .and_then(|root| {
                Self::with_store(
                    model.clone(),
                    batch_size,
                    &root,
                    &digest,
                    max_length,
                    precision,
                )
            });
        Ok(opened.unwrap_or_else(|e| {
            eprintln!(
                "dflow: {}: vector store: {e}; embedding without it",
                task.node
            );
            Self::in_memory(model, batch_size)
        }))
    }

    /// Goes on without the store after it failed (a full disk, a file
    /// removed under the run): vectors are still computed, only not kept.
    fn abandon(&mut self, e: &NeuralError) {
        eprintln!("dflow: vector store: {e}; going on without it");
        self.index = None;
        self.pending.clear();
        self.stats.with_store = false;
    }

    /// The vectors of `texts`, in their order.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Arc<Vec<f32>>>, NeuralError> {
        self.stats.asked += texts.len();
        let keys: Vec<Key> = texts.iter().map(|t| key(t)).collect();
        let mut out: Vec<Option<Arc<Vec<f32>>>> =
            keys.iter().map(|k| self.recent.get(k).cloned()).collect();
        // Distinct keys still missing, each with the first slot asking.
        let mut first: HashMap<Key, usize> = HashMap::new();
        for (slot, k) in keys.iter().enumerate() {
            if out[slot].is_none() {
                first.entry(*k).or_insert(slot);
            }
        }
        let found = match &self.index {
            Some(index) => {
                let wanted: Vec<(usize, Key)> = first.iter().map(|(k, &s)| (s, *k)).collect();
                let read = index
                    .lock()
                    .map_err(|_| NeuralError::internal("vector store index poisoned"))
                    .and_then(|index| index.read(&wanted));
                match read {
                    Ok(found) => found,
                    Err(e) => {
                        self.abandon(&e);
                        Vec::new()
                    }
                }
            }
            None => Vec::new(),
        };
        self.stats.stored += found.len();
        for (slot, v) in found {
            let v = Arc::new(v);
            first.remove(&keys[slot]);
            self.recent.insert(keys[slot], v.clone());
            out[slot] = Some(v);
        }
        let mut missing: Vec<usize> = first.into_values().collect();
        missing.sort_unstable();
        if !missing.is_empty() {
            let miss_texts: Vec<&str> = missing.iter().map(|&s| texts[s]).collect();
            let vectors = self.model.embed(&miss_texts, self.batch_size)?;
            self.stats.computed += vectors.len();
            for (&slot, v) in missing.iter().zip(vectors) {
                let v = Arc::new(v);
                self.recent.insert(keys[slot], v.clone());
                if self.index.is_some() {
                    self.pending.push((keys[slot], v.clone()));
                }
                out[slot] = Some(v);
            }
        }
        let out = keys
            .iter()
            .zip(out)
            .map(|(k, v)| {
                v.or_else(|| self.recent.get(k).cloned()).ok_or_else(|| {
                    NeuralError::internal("vector store: a text was left without a vector")
                })
            })
            .collect();
        if self.pending.len() >= FLUSH_VECTORS {
            self.flush();
        }
        if self.recent.len() > RECENT_VECTORS {
            self.recent.clear();
        }
        out
    }

    /// Writes the pending vectors out as a segment.
    fn flush(&mut self) {
        let (Some(index), false) = (&self.index, self.pending.is_empty()) else {
            return;
        };
        let dim = self.pending[0].1.len();
        let written = index
            .lock()
            .map_err(|_| NeuralError::internal("vector store index poisoned"))
            .and_then(|mut index| {
                write_segment(&index.dir, dim, &self.pending)?;
                // This process's own segment: indexed now, found by
                // `refresh` by the next process.
                index.refresh()?;
                index.compact()
            });
        match written {
            Ok(()) => self.pending.clear(),
            Err(e) => self.abandon(&e),
        }
    }

    /// Writes what is left to the store; the task's statistics.
    pub fn finish(mut self) -> MemoStats {
        self.flush();
        self.stats
    }
}

impl MemoStats {
    /// The line a unit leaves in `dflow_runs.note`.
    pub fn note(&self) -> String {
        let store = if self.with_store {
            format!("{} read from the vector store", self.stored)
        } else {
            "no vector store".to_string()
        };
        format!("{} texts: {} embedded, {store}", self.asked, self.computed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Pooling;
    use crate::model::Profile;

    /// A text's vector is its length and its first byte; counts the texts
    /// it embeds.
    struct Fake {
        profile: Profile,
        config: crate::config::EncoderConfig,
        embedded: Mutex<usize>,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                profile: Profile::new("fake", Pooling::Mean, false),
                config: crate::config::EncoderConfig::from_hf_json(
                    r#"{"hidden_size": 2, "num_hidden_layers": 1, "num_attention_heads": 1,
                        "intermediate_size": 2, "vocab_size": 2, "max_position_embeddings": 8}"#,
                )
                .expect("config"),
                embedded: Mutex::new(0),
            })
        }
        fn embedded(&self) -> usize {
            *self.embedded.lock().expect("count")
        }
    }

    impl TextModel for Fake {
        fn profile(&self) -> &Profile {
            &self.profile
        }
        fn embed(&self, texts: &[&str], _: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
            *self
                .embedded
                .lock()
                .map_err(|e| NeuralError::internal(e.to_string()))? += texts.len();
            Ok(texts
                .iter()
                .map(|t| vec![t.len() as f32, f32::from(t.bytes().next().unwrap_or(0))])
                .collect())
        }
        fn score_pairs(&self, _: &[(&str, &str)], _: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
            Err(NeuralError::internal("no"))
        }
        fn config(&self) -> &crate::config::EncoderConfig {
            &self.config
        }
        fn classify(&self, _: &[&str], _: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
            Err(NeuralError::internal("no"))
        }
    }

    fn values(v: &[Arc<Vec<f32>>]) -> Vec<Vec<f32>> {
        v.iter().map(|x| x.to_vec()).collect()
    }

    #[test]
    fn distinct_texts_are_embedded_once_per_task() {
        let fake = Fake::new();
        let mut memo = VectorMemo::in_memory(fake.clone(), 8);
        let got = memo.embed(&["ab", "c", "ab", "c", "xyz"]).expect("embed");
        assert_eq!(
            values(&got),
            vec![
                vec![2.0, 97.0],
                vec![1.0, 99.0],
                vec![2.0, 97.0],
                vec![1.0, 99.0],
                vec![3.0, 120.0]
            ]
        );
        memo.embed(&["xyz", "ab"]).expect("again");
        assert_eq!(fake.embedded(), 3);
        let stats = memo.finish();
        assert_eq!((stats.asked, stats.stored, stats.computed), (7, 0, 3));
    }

    /// The one space directory under `dir`.
    fn only_space(dir: &Path) -> PathBuf {
        let spaces: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        assert_eq!(spaces.len(), 1, "{spaces:?}");
        spaces[0].clone()
    }

    fn store(fake: &Arc<Fake>, dir: &Path, digest: &str) -> VectorMemo {
        VectorMemo::with_store(fake.clone(), 8, dir, digest, 128, Precision::F32).expect("open")
    }

    #[test]
    fn a_later_task_reads_what_an_earlier_one_stored() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::new();
        let open = || store(&fake, dir.path(), "digest-a");
        let mut first = open();
        let a = first.embed(&["one", "two", "one"]).expect("embed");
        first.finish();
        assert_eq!(fake.embedded(), 2 + PROBES.len());

        // A second task finds them (through the process's index of the
        // space; a new process lists the directory, as the next test does).
        only_space(dir.path());
        let mut second = open();
        let b = second.embed(&["two", "three", "one"]).expect("embed");
        let stats = second.finish();
        assert_eq!((stats.stored, stats.computed), (2, 1));
        assert_eq!(values(&b)[0], values(&a)[1]);
        assert_eq!(values(&b)[2], values(&a)[0]);
        assert_eq!(values(&b)[1], vec![5.0, 116.0]);

        // Another model digest is another space: nothing is shared.
        let mut other = store(&fake, dir.path(), "digest-b");
        other.embed(&["one"]).expect("embed");
        assert_eq!(other.finish().computed, 1);
    }

    #[test]
    fn damaged_segments_are_skipped_not_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::new();
        let open = || store(&fake, dir.path(), "digest-c");
        let mut memo = open();
        memo.embed(&["kept", "cut"]).expect("embed");
        memo.finish();
        let fresh = |space: &Path| {
            let mut index = Index::new(space);
            index.refresh().expect("refresh skips damage");
            index
        };
        let space = only_space(dir.path());
        let segment = std::fs::read_dir(&space)
            .expect("space dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "vec"))
            .expect("segment");
        let whole = fresh(&space);
        let got = whole
            .read(&[(0, key("kept")), (1, key("cut"))])
            .expect("read");
        assert_eq!(got, vec![(0, vec![4.0, 107.0]), (1, vec![3.0, 99.0])]);
        // Cut short, plus a file that is not a segment at all.
        let bytes = std::fs::read(&segment).expect("read");
        std::fs::write(space.join("cut.vec"), &bytes[..bytes.len() - 3]).expect("write");
        std::fs::write(space.join("junk.vec"), b"not vectors").expect("write");
        std::fs::remove_file(&segment).expect("rm");

        assert!(
            fresh(&space).keys.is_empty(),
            "nothing read from damaged files"
        );
    }

    #[test]
    fn many_small_segments_are_merged_and_every_vector_stays_readable() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::new();
        let texts: Vec<String> = (0..MAX_SEGMENTS + 6).map(|i| format!("text {i}")).collect();
        // One task per text, each leaving a segment of one vector.
        for t in &texts {
            let mut memo = store(&fake, dir.path(), "digest-d");
            memo.embed(&[t.as_str()]).expect("embed");
            memo.finish();
        }
        let space = only_space(dir.path());
        let segments = std::fs::read_dir(&space)
            .expect("space")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "vec"))
            .count();
        assert!(segments <= MAX_SEGMENTS, "{segments} segments");
        // A fresh index (a new process) finds every vector, unchanged.
        let mut index = Index::new(&space);
        index.refresh().expect("refresh");
        let wanted: Vec<(usize, Key)> =
            texts.iter().enumerate().map(|(i, t)| (i, key(t))).collect();
        let mut got = index.read(&wanted).expect("read");
        got.sort_by_key(|(slot, _)| *slot);
        assert_eq!(got.len(), texts.len());
        for ((slot, v), t) in got.iter().zip(&texts) {
            assert_eq!(v, &vec![t.len() as f32, 116.0], "text {slot}");
        }
    }

    #[test]
    fn a_store_that_fails_is_left_and_the_vectors_still_come() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::new();
        let mut memo = store(&fake, dir.path(), "digest-e");
        // The space disappears under the task (as a full disk or a removed
        // directory would fail it): the segment cannot be written.
        for space in std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
        {
            std::fs::remove_dir_all(space.path()).expect("rm");
        }
        let got = memo.embed(&["still", "here"]).expect("embed");
        assert_eq!(values(&got), vec![vec![5.0, 115.0], vec![4.0, 104.0]]);
        let stats = memo.finish();
        assert!(!stats.with_store, "the store was left");
        assert_eq!(stats.computed, 2);
        assert!(
            stats.note().ends_with("no vector store"),
            "{}",
            stats.note()
        );
    }
}
