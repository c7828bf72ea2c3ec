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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct StatEntry {
    size: u64,
    mtime_ns: u128,
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

    /// The BLAKE3 digest of a file's content.
    pub fn digest(&self, file: &Path) -> Result<String> {
        let meta = std::fs::metadata(file).context(|| format!("reading {}", file.display()))?;
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let mtime_ns = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = file.to_string_lossy().into_owned();
        if let Ok(guard) = self.entries.lock()
            && let Some(e) = guard.0.get(&key)
            && e.size == meta.len()
            && e.mtime_ns == mtime_ns
        {
            return Ok(e.digest.clone());
        }
        let digest = hash_file(file)?;
        let racy = SystemTime::now()
            .duration_since(mtime)
            .map(|age| age < RACY)
            .unwrap_or(true);
        if let Ok(mut guard) = self.entries.lock() {
            if racy {
                guard.0.remove(&key);
            } else {
                guard.0.insert(
                    key,
                    StatEntry {
                        size: meta.len(),
                        mtime_ns,
                        digest: digest.clone(),
                    },
                );
            }
            guard.1 = true;
        }
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
