//! The content-addressed store: `.dflow/cache/<2 hex>/<key>/` entries, each a
//! directory of output files plus `meta.json`, written in `.dflow/tmp/` and
//! renamed into place only when complete.
//!
//! All cache access goes through [`CacheStore`], so that a shared object
//! store can replace the local directory later without touching the engine.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, ResultExt};
use crate::table::{CachedPart, PartRef, WrittenPart};

/// Format of `meta.json`; entries of another format are ignored.
pub const ENTRY_FORMAT: u32 = 1;

/// What `meta.json` says about an entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    /// Format of this file (`ENTRY_FORMAT`).
    pub format: u32,
    /// The entry's cache key.
    pub key: String,
    /// The operator that computed the entry.
    pub op: String,
    /// The operator's version.
    pub version: u32,
    /// The node that first computed this entry (informational: node names
    /// are not part of the key).
    pub node: String,
    /// The node's params as they enter the key.
    pub params: Value,
    /// Content digest of each whole input port (global operators) or of the
    /// side inputs (per-partition operators).
    pub inputs: BTreeMap<String, String>,
    /// Content digest of the input partition (per-partition operators and
    /// sources).
    pub partition_digest: Option<String>,
    /// What each output port holds, by port name.
    pub outputs: BTreeMap<String, EntryOutput>,
    /// When the entry was written, in Unix milliseconds.
    pub created_unix_ms: u64,
    /// Seconds computing the unit took.
    pub seconds: f64,
}

/// What one output port of an entry holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryOutput {
    /// A table.
    Table {
        /// The partitions written.
        parts: Vec<WrittenPart>,
    },
    /// An artifact directory.
    Artifact {
        /// The directory, relative to the entry directory.
        dir: PathBuf,
        /// Content digest of the directory.
        digest: String,
        /// Total size of its files.
        bytes: u64,
    },
}

impl EntryOutput {
    /// Rows over every partition (0 for an artifact).
    pub fn rows(&self) -> u64 {
        match self {
            EntryOutput::Table { parts } => parts.iter().map(|p| p.rows).sum(),
            EntryOutput::Artifact { .. } => 0,
        }
    }
}

/// A staging directory; removed on drop unless committed.
pub struct Staging {
    /// The directory outputs are written into.
    pub dir: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Held while a run writes to the cache; released on drop.
pub struct WriterLock {
    _file: File,
}

/// The local cache directory (`.dflow/`).
#[derive(Clone, Debug)]
pub struct CacheStore {
    root: PathBuf,
}

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// Removes `dir` and everything in it; returns the bytes freed (0 when it
/// was not there).
pub fn remove_dir_sized(dir: &Path) -> Result<u64> {
    let bytes = dir_size(dir);
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// In a memo space, the file naming the content digest of the artifact
/// (a model) the space belongs to: `gc` removes the space once no lock
/// file references that artifact.
pub const ARTIFACT_FILE: &str = "artifact.digest";

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl CacheStore {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["cache", "tmp", "runs"] {
            fs::create_dir_all(root.join(sub))
                .context(|| format!("creating cache directory {}", root.join(sub).display()))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing cache without creating anything (read-only commands).
    pub fn open_existing(root: &Path) -> Option<Self> {
        root.join("cache").is_dir().then(|| Self {
            root: root.to_path_buf(),
        })
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the entry for `key` (present or not), sharded by its first two characters.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        let shard = key.get(..2).unwrap_or("00");
        self.root.join("cache").join(shard).join(key)
    }

    /// The entry for `key`, if a complete one exists.
    pub fn lookup(&self, key: &str) -> Option<EntryMeta> {
        let path = self.entry_dir(key).join("meta.json");
        let text = fs::read(&path).ok()?;
        let meta: EntryMeta = serde_json::from_slice(&text).ok()?;
        (meta.format == ENTRY_FORMAT && meta.key == key).then_some(meta)
    }

    /// Where a cached partition's file is in this cache.
    pub fn locate(&self, part: &CachedPart) -> PartRef {
        part.at(&self.entry_dir(&part.key))
    }

    /// Whether a complete entry for `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entry_dir(key).join("meta.json").is_file()
    }

    /// The work directory of the unit with cache key `key`: what it keeps
    /// across an interrupted run (training checkpoints), so that the next
    /// run of the same unit resumes. Not created here; removed once the
    /// unit's entry is committed, and by `gc`.
    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    /// Removes the work directories of units that finished or were
    /// abandoned (`gc`); returns the bytes freed.
    pub fn clean_work(&self) -> Result<u64> {
        remove_dir_sized(&self.root.join("work"))
    }

    /// Where operators keep memos shared by every node and run of this
    /// workspace (`memo/`: the vector store): results keyed by their own
    /// content, never part of a cache key, so deleting them costs only
    /// recomputation. Not created here.
    pub fn memo_dir(&self) -> PathBuf {
        self.root.join("memo")
    }

    /// The memo spaces that belong to an artifact (`memo/<name>/<space>/`
    /// holding an [`ARTIFACT_FILE`] with the artifact's content digest),
    /// with that digest.
    pub fn memo_spaces(&self) -> Vec<(PathBuf, String)> {
        let mut spaces = Vec::new();
        let Ok(memos) = fs::read_dir(self.memo_dir()) else {
            return spaces;
        };
        for memo in memos.flatten() {
            let Ok(inner) = fs::read_dir(memo.path()) else {
                continue;
            };
            for space in inner.flatten() {
                if let Ok(digest) = fs::read_to_string(space.path().join(ARTIFACT_FILE)) {
                    spaces.push((space.path(), digest.trim().to_string()));
                }
            }
        }
        spaces.sort();
        spaces
    }

    /// Removes the memos (`gc --memo`); returns the bytes freed.
    pub fn clean_memo(&self) -> Result<u64> {
        remove_dir_sized(&self.memo_dir())
    }

    /// A fresh, empty staging directory.
    pub fn stage(&self) -> Result<Staging> {
        let seq = STAGING_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            self.root
                .join("tmp")
                .join(format!("{}-{}-{}", std::process::id(), unix_ms(), seq));
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    /// Writes `meta.json` into the staging directory and renames it into
    /// place. With `replace`, an existing entry is swapped out (`--force`).
    pub fn commit(&self, mut staging: Staging, meta: &EntryMeta, replace: bool) -> Result<()> {
        let meta_path = staging.dir.join("meta.json");
        write_synced(&meta_path, &serde_json::to_vec_pretty(meta)?)?;
        let target = self.entry_dir(&meta.key);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if target.exists() {
            if !replace {
                // An equal entry is already there (same key, same content).
                return Ok(());
            }
            let trash = self.stage()?;
            fs::remove_dir(&trash.dir)?;
            fs::rename(&target, &trash.dir)
                .context(|| format!("moving aside {}", target.display()))?;
        }
        if let Err(e) = fs::rename(&staging.dir, &target) {
            // Two units with the same key (equal inputs, e.g. two empty
            // partitions) can finish side by side: the other one's rename
            // won between our check and ours. Its entry is equal to ours.
            if !replace && target.join("meta.json").is_file() {
                return Ok(());
            }
            return Err(crate::Error::from(e))
                .context(|| format!("committing cache entry {}", target.display()));
        }
        staging.committed = true;
        Ok(())
    }

    /// Takes the writer lock. When another run holds it: with `wait`, calls
    /// `on_wait` once and blocks; otherwise fails with [`Error::Busy`].
    pub fn writer_lock(&self, wait: bool, on_wait: impl FnOnce(&str)) -> Result<WriterLock> {
        let path = self.root.join("writer.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(self.root.join("writer.pid")).unwrap_or_default();
                let holder = holder.trim();
                let msg = format!(
                    "another dflow run (pid {}) is writing to the cache {}",
                    if holder.is_empty() { "?" } else { holder },
                    self.root.display()
                );
                if !wait {
                    return Err(Error::Busy(msg));
                }
                on_wait(&msg);
                file.lock()?;
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        let _ = fs::write(self.root.join("writer.pid"), std::process::id().to_string());
        Ok(WriterLock { _file: file })
    }

    /// Removes leftovers of killed runs (call while holding the writer lock).
    pub fn clean_tmp(&self) -> Result<()> {
        remove_tmp_files(&self.root);
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            let _ = fs::remove_dir_all(entry.path());
        }
        Ok(())
    }

    /// Every complete entry key in the cache.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for shard in fs::read_dir(self.root.join("cache"))? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                keys.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Deletes an entry; returns the bytes freed.
    pub fn remove(&self, key: &str) -> Result<u64> {
        let dir = self.entry_dir(key);
        let bytes = dir_size(&dir);
        // Rename first so a half-deleted entry never looks complete.
        let trash = self.stage()?;
        fs::remove_dir(&trash.dir)?;
        fs::rename(&dir, &trash.dir)?;
        drop(trash);
        Ok(bytes)
    }
}

/// Writes a file and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// Marks temporary files written by [`write_atomic`].
pub const TMP_MARK: &str = ".dflow-tmp-";

/// Replaces `path` atomically: a hidden temporary file beside it
/// (`.NAME.dflow-tmp-PID-N`), fsynced, then renamed over it. A run killed in
/// between leaves only the temporary file, which [`remove_tmp_files`] cleans.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}{TMP_MARK}{}-{}",
        std::process::id(),
        STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Removes temporary files that killed runs left in `dir` (not recursive).
/// This process's own are left alone: another node of the same run may be
/// writing beside them (two exports into one directory).
pub fn remove_tmp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let ours = format!("{TMP_MARK}{}-", std::process::id());
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TMP_MARK) && !name.contains(&ours) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Total size of the files under `dir`, recursively (0 when it is missing).
pub fn dir_size(dir: &Path) -> u64 {
    walk_files(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Files under `dir`, sorted, recursively.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// Content digest of a directory: relative paths and file contents, sorted.
pub fn digest_dir(dir: &Path) -> Result<(String, u64)> {
    let mut k = crate::cache::KeyBuilder::new();
    let mut bytes = 0;
    for file in walk_files(dir) {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        let mut hasher = blake3::Hasher::new();
        let mut f = File::open(&file).context(|| format!("reading {}", file.display()))?;
        bytes += std::io::copy(&mut f, &mut hasher)?;
        k.str("path", &rel.to_string_lossy());
        k.str("content", hasher.finalize().to_hex().as_str());
    }
    Ok((k.finish(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> EntryMeta {
        EntryMeta {
            format: ENTRY_FORMAT,
            key: key.into(),
            op: "sql".into(),
            version: 1,
            node: "n".into(),
            params: Value::Null,
            inputs: BTreeMap::new(),
            partition_digest: None,
            outputs: BTreeMap::new(),
            created_unix_ms: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn staged_entries_appear_only_on_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        let key = "ab".repeat(32);
        let staging = store.stage().expect("stage");
        fs::write(staging.dir.join("x"), b"data").expect("write");
        assert!(store.lookup(&key).is_none());
        store.commit(staging, &meta(&key), false).expect("commit");
        assert_eq!(store.lookup(&key), Some(meta(&key)));
        assert_eq!(store.keys().expect("keys"), vec![key.clone()]);
        store.remove(&key).expect("remove");
        assert!(store.lookup(&key).is_none());
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        let staging = store.stage().expect("stage");
        let path = staging.dir.clone();
        drop(staging);
        assert!(!path.exists());
    }

    #[test]
    fn second_writer_is_refused_without_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        let _held = store.writer_lock(false, |_| {}).expect("first lock");
        let second = store.writer_lock(false, |_| {});
        assert!(matches!(second, Err(Error::Busy(_))));
    }

    #[test]
    fn equal_units_committing_side_by_side_both_succeed() {
        // Two units with the same key (equal inputs) finishing at once: the
        // one whose rename loses must not fail the run.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(CacheStore::open(dir.path()).expect("open"));
        for round in 0..40 {
            let key = format!("{round:064x}");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                    std::thread::spawn(move || {
                        let staging = store.stage().expect("stage");
                        fs::write(staging.dir.join("x"), b"same").expect("write");
                        barrier.wait();
                        store.commit(staging, &meta(&key), false)
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread").expect("commit");
            }
            assert_eq!(store.lookup(&key), Some(meta(&key)));
        }
    }
}
