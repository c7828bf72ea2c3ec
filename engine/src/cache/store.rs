//! The content-addressed store: `.dflow/cache/<2 hex>/<key>/` entries, each a
//! directory of output files plus `meta.json`, written in `.dflow/tmp/` and
//! renamed into place only when complete.
//!
//! All cache access goes through [`CacheStore`], so that a shared object
//! store can replace the local directory later without touching the engine.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cache::entry::{Damage, META_FILE, quick_check, read_meta};
use crate::cache::shared::{Published, SharedCache};
use crate::cache::staging::{self, Owner};
use crate::error::{Error, Result, ResultExt};
use crate::table::{CachedPart, PartRef};

pub use crate::cache::entry::{ENTRY_FORMAT, EntryMeta, EntryOutput};
pub use crate::cache::files::{
    TMP_MARK, digest_dir, dir_size, remove_dir_sized, remove_tmp_files, sync_dir, unix_ms,
    walk_files, write_atomic, write_synced,
};
pub use crate::cache::staging::Staging;

/// Held while a run writes to the cache; released on drop.
pub struct WriterLock {
    _file: File,
}

/// The local cache directory (`.dflow/`), and the shared tier in an object
/// store behind it when one is configured ([`SharedCache`]): entries found
/// only there are pulled on first use, entries committed here are published
/// there.
#[derive(Clone, Debug)]
pub struct CacheStore {
    root: PathBuf,
    shared: Option<SharedCache>,
    /// The directory this store stages in, claimed on the first
    /// [`CacheStore::stage`] and held while any clone of the store lives.
    owner: Arc<Mutex<Option<Arc<Owner>>>>,
}

/// What the cache holds under a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// No entry.
    Missing,
    /// A whole entry (by [`quick_check`]).
    Whole(EntryMeta),
    /// An entry that is there but damaged: a miss, to recompute and replace.
    Damaged(Damage),
}

/// In a memo space, the file naming the content digest of the artifact
/// (a model) the space belongs to: `gc` removes the space once no lock
/// file references that artifact.
pub const ARTIFACT_FILE: &str = "artifact.digest";

impl CacheStore {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["cache", "tmp", "runs"] {
            fs::create_dir_all(root.join(sub))
                .context(|| format!("creating cache directory {}", root.join(sub).display()))?;
        }
        Ok(Self::at(root))
    }

    /// Opens an existing cache without creating anything (read-only commands).
    pub fn open_existing(root: &Path) -> Option<Self> {
        root.join("cache").is_dir().then(|| Self::at(root))
    }

    fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            shared: None,
            owner: Arc::default(),
        }
    }

    /// This store with `shared` as its shared tier.
    pub fn with_shared(mut self, shared: SharedCache) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared tier, if any.
    pub fn shared(&self) -> Option<&SharedCache> {
        self.shared.as_ref()
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

    /// What the cache holds under `key`: nothing, a whole entry, or a
    /// damaged one. Reads `meta.json` and checks that every file it lists
    /// is there with its recorded size ([`quick_check`]), no digests.
    pub fn probe(&self, key: &str) -> Probe {
        let dir = self.entry_dir(key);
        if !dir.is_dir() {
            return match self.pull(key) {
                Ok(true) => self.probe_local(key),
                Ok(false) => Probe::Missing,
                Err(e) => {
                    warn_shared(&e);
                    Probe::Missing
                }
            };
        }
        self.probe_local(key)
    }

    fn probe_local(&self, key: &str) -> Probe {
        let dir = self.entry_dir(key);
        match read_meta(&dir, key).and_then(|meta| quick_check(&dir, &meta).map(|()| meta)) {
            Ok(meta) => Probe::Whole(meta),
            Err(damage) => Probe::Damaged(damage),
        }
    }

    /// The meta of the entry `key` for a run whose units run elsewhere (a
    /// cluster), which reads it from the shared tier: a whole local entry's
    /// (published first if the tier lacks it, for the executors), else the
    /// published manifest's (one GET), the entry pulled only when it holds
    /// an artifact (which `publish` reads as files). Tables stay in the
    /// shared tier until something here reads them.
    pub fn remote_meta(&self, key: &str) -> Result<Option<EntryMeta>> {
        if self.entry_dir(key).is_dir()
            && let Probe::Whole(meta) = self.probe_local(key)
        {
            self.ensure_published(&meta)?;
            return Ok(Some(meta));
        }
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let Some(manifest) = shared.manifest(key)? else {
            return Ok(None);
        };
        let has_artifact = manifest
            .meta
            .outputs
            .values()
            .any(|o| matches!(o, EntryOutput::Artifact { .. }));
        if !has_artifact {
            return Ok(Some(manifest.meta));
        }
        Ok(match self.probe(key) {
            Probe::Whole(meta) => Some(meta),
            Probe::Missing | Probe::Damaged(_) => None,
        })
    }

    /// The entry for `key`, if a whole one exists.
    pub fn lookup(&self, key: &str) -> Option<EntryMeta> {
        match self.probe(key) {
            Probe::Whole(meta) => Some(meta),
            Probe::Missing | Probe::Damaged(_) => None,
        }
    }

    /// Whether a whole entry exists for `key` ([`CacheStore::probe`]).
    pub fn is_whole(&self, key: &str) -> bool {
        matches!(self.probe(key), Probe::Whole(_))
    }

    /// Where a cached partition's file is in this cache.
    pub fn locate(&self, part: &CachedPart) -> PartRef {
        part.at(&self.entry_dir(&part.key))
    }

    /// Whether an entry for `key` exists (one `stat` of its `meta.json`;
    /// [`CacheStore::probe`] also checks its files). With a shared tier, an
    /// entry only there is pulled into this cache first, so that its files
    /// can be read once this says yes.
    pub fn contains(&self, key: &str) -> bool {
        if self.entry_dir(key).join(META_FILE).is_file() {
            return true;
        }
        match self.pull(key) {
            Ok(pulled) => pulled,
            Err(e) => {
                warn_shared(&e);
                false
            }
        }
    }

    /// With a shared tier, publishes the local entry `meta` describes there
    /// unless it is there already (one HEAD): a run whose publish failed
    /// (the store was down) publishes its entries on the next run, where
    /// they are hits.
    pub fn ensure_published(&self, meta: &EntryMeta) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if shared.has(&meta.key)? {
            return Ok(());
        }
        if shared.publish(&self.entry_dir(&meta.key), meta)? == Published::Disagreed {
            warn_disagreed(meta);
        }
        Ok(())
    }

    /// Pulls the entry `key` from the shared tier into this cache, if the
    /// tier has it; whether it did.
    fn pull(&self, key: &str) -> Result<bool> {
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        let Some(manifest) = shared.manifest(key)? else {
            return Ok(false);
        };
        let staging = self.stage()?;
        shared.pull(&manifest, &staging.dir)?;
        self.commit_local(staging, &manifest.meta, false)?;
        Ok(true)
    }

    /// The work directory of the unit with cache key `key`: what it keeps
    /// across an interrupted run (training checkpoints, a crawl's WARCs),
    /// so that the next run of the same unit resumes. Not created here;
    /// removed once the unit's entry is committed, and by `gc` once that
    /// entry exists or when asked (`gc --unfinished`).
    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    /// Every work directory in the cache, with the key of its unit.
    pub fn work_dirs(&self) -> Vec<(String, PathBuf)> {
        let Ok(rd) = fs::read_dir(self.root.join("work")) else {
            return Vec::new();
        };
        let mut dirs: Vec<(String, PathBuf)> = rd
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        dirs.sort();
        dirs
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

    /// A fresh, empty staging directory, in this store's own directory
    /// under `tmp/` (see [`staging`]).
    pub fn stage(&self) -> Result<Staging> {
        let owner = {
            let mut slot = self
                .owner
                .lock()
                .map_err(|_| Error::internal("staging owner mutex poisoned"))?;
            match &*slot {
                Some(owner) => owner.clone(),
                None => {
                    let owner = Owner::claim(&self.root.join("tmp"))?;
                    *slot = Some(owner.clone());
                    owner
                }
            }
        };
        Staging::new(owner)
    }

    /// Writes `meta.json` into the staging directory and renames it into
    /// place, then fsyncs the directory that holds it. An entry already
    /// there stays when it is whole (same key, same content), unless
    /// `replace` (`--force`); a damaged one is replaced: moved aside, the
    /// new one renamed in, the old one removed.
    ///
    /// With a shared tier, the entry is then published there; an error of
    /// the store fails the commit (the local entry stays).
    pub fn commit(&self, staging: Staging, meta: &EntryMeta, replace: bool) -> Result<()> {
        self.commit_local(staging, meta, replace)?;
        if let Some(shared) = &self.shared
            && shared.publish(&self.entry_dir(&meta.key), meta)? == Published::Disagreed
        {
            warn_disagreed(meta);
        }
        Ok(())
    }

    fn commit_local(&self, mut staging: Staging, meta: &EntryMeta, replace: bool) -> Result<()> {
        write_synced(
            &staging.dir.join(META_FILE),
            &serde_json::to_vec_pretty(meta)?,
        )?;
        let target = self.entry_dir(&meta.key);
        let shard = target
            .parent()
            .ok_or_else(|| Error::internal(format!("entry {} has no shard", target.display())))?;
        if !shard.is_dir() {
            fs::create_dir_all(shard).context(|| format!("creating {}", shard.display()))?;
            sync_dir(&self.root.join("cache"))?;
        }
        let whole = |store: &Self| matches!(store.probe_local(&meta.key), Probe::Whole(_));
        let mut trash = None;
        if target.exists() {
            if !replace && whole(self) {
                return Ok(());
            }
            let aside = self.stage()?;
            fs::remove_dir(&aside.dir)?;
            match fs::rename(&target, &aside.dir) {
                // Gone already: another unit of the same key replaced it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.context(|| format!("moving aside {}", target.display()))?,
            }
            trash = Some(aside);
        }
        if let Err(e) = fs::rename(&staging.dir, &target) {
            // Two units with the same key (equal inputs, e.g. two empty
            // partitions) can finish side by side: the other one's rename
            // won between our check and ours. Its entry is equal to ours.
            if !replace && whole(self) {
                return Ok(());
            }
            return Err(crate::Error::from(e))
                .context(|| format!("committing cache entry {}", target.display()));
        }
        staging.committed = true;
        sync_dir(shard)?;
        drop(trash);
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

    /// Removes what killed runs left: temporary files beside the cache's
    /// own files, and staging directories no live run owns (see
    /// [`staging::clean`]). Call while holding the writer lock.
    pub fn clean_tmp(&self) -> Result<()> {
        remove_tmp_files(&self.root);
        staging::clean(&self.root.join("tmp"))
    }

    /// Every entry directory in the cache, whole or not, by key.
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
        fs::rename(&dir, &trash.dir).context(|| format!("removing {}", dir.display()))?;
        drop(trash);
        Ok(bytes)
    }
}

fn warn_disagreed(meta: &EntryMeta) {
    eprintln!(
        "warning: {} was already published with other content by another writer (node `{}` is not deterministic); the published entry stands",
        meta.key, meta.node
    );
}

/// A shared tier that cannot be read is not fatal to a lookup: the unit is
/// computed here instead, and its publish reports the store's error.
fn warn_shared(e: &Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!("warning: the shared cache cannot be read ({e}); computing what it would hold");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeMap;

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
    fn committing_over_a_damaged_entry_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        let key = "cd".repeat(32);
        let target = store.entry_dir(&key);
        fs::create_dir_all(&target).expect("mkdir");
        fs::write(target.join(META_FILE), b"{ garbage").expect("damage");
        assert!(matches!(store.probe(&key), Probe::Damaged(Damage::Meta(_))));
        let staging = store.stage().expect("stage");
        fs::write(staging.dir.join("x"), b"new").expect("write");
        store.commit(staging, &meta(&key), false).expect("commit");
        assert_eq!(store.probe(&key), Probe::Whole(meta(&key)));
        assert_eq!(fs::read(target.join("x")).expect("read"), b"new");
        // A whole entry stays: a second unit of the same key changes nothing.
        let staging = store.stage().expect("stage");
        fs::write(staging.dir.join("x"), b"other").expect("write");
        store.commit(staging, &meta(&key), false).expect("commit");
        assert_eq!(fs::read(target.join("x")).expect("read"), b"new");
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
