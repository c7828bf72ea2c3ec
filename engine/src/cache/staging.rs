//! Staging directories: where a unit is computed before its entry is
//! renamed into place. Each open [`CacheStore`](crate::cache::CacheStore)
//! stages under a directory of its own, `tmp/run-<pid>-<ms>-<n>/`, whose
//! `owner.lock` it holds locked (`flock`) while it is open. A starting run
//! removes what killed runs left ([`clean`]): every directory whose owner
//! lock it can take, never one a live run holds.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::files::unix_ms;
use crate::error::{Result, ResultExt};

/// The lock file in an owner's directory.
pub const OWNER_LOCK: &str = "owner.lock";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A unique number in this process (names staging and temporary files).
pub(crate) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A directory under `tmp/` that this process owns while the lock is held;
/// removed when the last user lets go of it.
#[derive(Debug)]
pub struct Owner {
    dir: PathBuf,
    _lock: File,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Owner {
    /// Creates a fresh owner directory under `tmp` and locks it. A cleaner
    /// that takes the lock first removes the directory: then this tries
    /// again under another name.
    pub fn claim(tmp: &Path) -> Result<Arc<Owner>> {
        let mut last = None;
        for _ in 0..8 {
            let dir = tmp.join(format!(
                "run-{}-{}-{}",
                std::process::id(),
                unix_ms(),
                next_seq()
            ));
            match try_claim(&dir) {
                Ok(Some(owner)) => return Ok(Arc::new(owner)),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("another process kept cleaning it")))
            .context(|| format!("claiming a staging directory in {}", tmp.display()))
    }
}

fn try_claim(dir: &Path) -> std::io::Result<Option<Owner>> {
    fs::create_dir_all(dir)?;
    let path = dir.join(OWNER_LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // A cleaner that locked and removed it before us leaves us holding a
    // lock on a file no longer there.
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(Owner {
        dir: dir.to_path_buf(),
        _lock: file,
    }))
}

/// A staging directory; removed on drop unless committed.
pub struct Staging {
    /// The directory outputs are written into.
    pub dir: PathBuf,
    pub(crate) committed: bool,
    /// Keeps the owner directory (and its lock) while this one is in use.
    _owner: Arc<Owner>,
}

impl Staging {
    /// A fresh, empty staging directory of `owner`.
    pub(crate) fn new(owner: Arc<Owner>) -> Result<Self> {
        let dir = owner.dir.join(next_seq().to_string());
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir,
            committed: false,
            _owner: owner,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes what killed runs left in `tmp`: owner directories whose lock
/// nobody holds, and anything else (staging of older versions, stray
/// files). A live owner's directory is kept, and so is one whose lock
/// cannot be read.
pub fn clean(tmp: &Path) -> Result<()> {
    for entry in fs::read_dir(tmp).context(|| format!("reading {}", tmp.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            let _ = fs::remove_file(&path);
            continue;
        }
        match File::open(path.join(OWNER_LOCK)) {
            Ok(lock) => {
                // Removed while we hold the lock, so no one claims it meanwhile.
                if lock.try_lock().is_ok() {
                    let _ = fs::remove_dir_all(&path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&path);
            }
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_keeps_a_live_owners_staging_and_removes_a_dead_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let live = Owner::claim(tmp.path()).expect("claim");
        let staging = Staging::new(live.clone()).expect("stage");
        std::fs::write(staging.dir.join("0.parquet"), b"being written").expect("write");
        // A staging directory of an older version, and one of a run killed
        // (its owner lock is free).
        let old = tmp.path().join("123-456-7");
        std::fs::create_dir_all(&old).expect("old");
        let dead = tmp.path().join("run-1-2-3");
        std::fs::create_dir_all(dead.join("0")).expect("dead");
        std::fs::write(dead.join(OWNER_LOCK), b"").expect("dead lock");

        clean(tmp.path()).expect("clean");
        assert!(
            staging.dir.join("0.parquet").is_file(),
            "a live run's staging was removed"
        );
        assert!(!old.exists() && !dead.exists());

        // An owner removes its directory when the store lets go of it.
        let owner_dir = staging.dir.parent().expect("owner").to_path_buf();
        drop(staging);
        drop(live);
        assert!(!owner_dir.exists());
    }
}
