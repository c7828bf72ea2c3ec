//! File digests with a stat cache, as git's index does: a file whose size and
//! modification time are unchanged is not read again. Times never enter a
//! cache key; they only decide what to re-hash.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::store::write_atomic;
use crate::error::{Result, ResultExt};
use crate::storage::{Location, ObjectReader, ObjectUrl};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct StatEntry {
    size: u64,
    /// Local files: the modification time.
    #[serde(default)]
    mtime_ns: u128,
    /// Objects: the store's entity tag, which changes with the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e_tag: Option<String>,
    digest: String,
}

/// A file modified this recently may still change within the same mtime
/// tick; its digest is not remembered (git's "racy clean" rule).
const RACY: Duration = Duration::from_secs(2);

/// Digests of source files, remembered by path, size and mtime.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    entries: Mutex<(BTreeMap<String, StatEntry>, bool)>,
}

impl StatCache {
    /// Loads the stat cache of a cache directory (empty if absent or damaged).
    pub fn load(cache_root: &Path) -> Self {
        let path = cache_root.join("stat-cache.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path,
            entries: Mutex::new((entries, false)),
        }
    }

    /// The BLAKE3 digest of a file's content, wherever it is. An object is
    /// read whole once (streamed, with ranged GETs) and its digest then
    /// remembered by URL, size and entity tag: a digest of content, not of
    /// a tag, so that the same bytes give the same cache keys on local disk
    /// and in any store.
    pub fn digest(&self, location: &Location) -> Result<String> {
        match location {
            Location::Local(path) => self.digest_file(path),
            Location::Object(url) => self.digest_object(url),
        }
    }

    fn remembered(&self, key: &str, fresh: impl Fn(&StatEntry) -> bool) -> Option<String> {
        let guard = self.entries.lock().ok()?;
        guard
            .0
            .get(key)
            .filter(|e| fresh(e))
            .map(|e| e.digest.clone())
    }

    fn remember(&self, key: String, entry: Option<StatEntry>) {
        if let Ok(mut guard) = self.entries.lock() {
            match entry {
                Some(entry) => guard.0.insert(key, entry),
                None => guard.0.remove(&key),
            };
            guard.1 = true;
        }
    }

    fn digest_object(&self, url: &ObjectUrl) -> Result<String> {
        let key = url.to_string();
        // Listed moments ago by this run: size and tag without a HEAD.
        if let Some((size, Some(tag))) = crate::storage::listed_stat(url)
            && let Some(d) =
                self.remembered(&key, |e| e.size == size && e.e_tag.as_ref() == Some(&tag))
        {
            return Ok(d);
        }
        let mut reader = ObjectReader::open(url)?;
        let (size, e_tag) = (reader.size(), reader.e_tag().map(str::to_string));
        if let Some(tag) = &e_tag
            && let Some(d) =
                self.remembered(&key, |e| e.size == size && e.e_tag.as_ref() == Some(tag))
        {
            return Ok(d);
        }
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut reader, &mut hasher).context(|| format!("reading {url}"))?;
        let digest = hasher.finalize().to_hex().to_string();
        let entry = e_tag.map(|tag| StatEntry {
            size,
            mtime_ns: 0,
            e_tag: Some(tag),
            digest: digest.clone(),
        });
        self.remember(key, entry);
        Ok(digest)
    }

    /// The BLAKE3 digest of a local file's content, remembered by path,
    /// size and modification time.
    pub fn digest_file(&self, file: &Path) -> Result<String> {
        let meta = std::fs::metadata(file).context(|| format!("reading {}", file.display()))?;
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let mtime_ns = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = file.to_string_lossy().into_owned();
        if let Some(d) = self.remembered(&key, |e| e.size == meta.len() && e.mtime_ns == mtime_ns) {
            return Ok(d);
        }
        let digest = hash_file(file)?;
        let racy = SystemTime::now()
            .duration_since(mtime)
            .map(|age| age < RACY)
            .unwrap_or(true);
        let entry = (!racy).then(|| StatEntry {
            size: meta.len(),
            mtime_ns,
            e_tag: None,
            digest: digest.clone(),
        });
        self.remember(key, entry);
        Ok(digest)
    }

    /// Writes the cache back if anything changed.
    pub fn save(&self) -> Result<()> {
        let Ok(mut guard) = self.entries.lock() else {
            return Ok(());
        };
        if !guard.1 {
            return Ok(());
        }
        write_atomic(&self.path, &serde_json::to_vec(&guard.0)?)?;
        guard.1 = false;
        Ok(())
    }
}

/// BLAKE3 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).context(|| format!("reading {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut f, &mut hasher).context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}
