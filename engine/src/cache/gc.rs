//! Garbage collection (`dflow gc`): deletes what no pipeline can still use,
//! and nothing it cannot prove unused. It keeps every entry a registered
//! lock file (or the collecting pipeline's own) references, every entry an
//! unfinished run may have committed, and the work directories that
//! interrupted units left to resume from (unless asked); and it refuses to
//! collect at all when the registry or a registered lock file cannot be
//! read, or a registered pipeline's lock file is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cache::entry::read_meta;
use crate::cache::files::{dir_size, remove_dir_sized};
use crate::cache::lockfile::LockFile;
use crate::cache::pipelines::{self, Registration, registry_path};
use crate::cache::store::{CacheStore, Probe, WriterLock};
use crate::error::{Error, Result};

/// What to collect.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Only say what would be removed.
    pub dry_run: bool,
    /// Also remove the vector store (`memo/`).
    pub memo: bool,
    /// Also remove what unfinished runs left to resume from: their work
    /// directories and the entries they committed that no lock file
    /// references yet.
    pub unfinished: bool,
}

/// What a collection removed (or would remove) and kept.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Entries removed, by key.
    pub removed: Vec<String>,
    /// Vector store spaces of models no lock file uses, with the model's
    /// digest.
    pub spaces: Vec<(PathBuf, String)>,
    /// Bytes freed.
    pub bytes: u64,
    /// Entries kept because a lock file references them.
    pub referenced: usize,
    /// Unreferenced entries kept because an unfinished run may have
    /// committed them.
    pub unfinished_entries: usize,
    /// Work directories kept for units that have not finished.
    pub work_kept: usize,
    /// Their size.
    pub work_bytes: u64,
    /// Size of the vector store (removed with `memo`).
    pub memo_bytes: u64,
    /// Pipelines no longer registered: their pipeline and lock files are
    /// both gone.
    pub dropped: Vec<PathBuf>,
}

/// Collects the cache's garbage for a pipeline whose lock file is `lock`
/// (what it references is kept even when it is not registered), under
/// the writer lock `_held`.
pub fn collect(
    store: &CacheStore,
    _held: &WriterLock,
    lock: &Path,
    opts: GcOptions,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let registered = pipelines::load(store)?;
    let Used {
        keys,
        models,
        unfinished_since,
        gone,
    } = used(store, &registered, lock)?;
    let since = unfinished_since.filter(|_| !opts.unfinished);

    // Work directories, judged before any entry goes: one whose entry is
    // whole belongs to a finished unit.
    let mut work_garbage = Vec::new();
    for (key, dir) in store.work_dirs() {
        if opts.unfinished || matches!(store.probe(&key), Probe::Whole(_)) {
            work_garbage.push(dir);
        } else {
            report.work_kept += 1;
            report.work_bytes += dir_size(&dir);
        }
    }

    for key in store.keys()? {
        if keys.contains(&key) {
            report.referenced += 1;
            continue;
        }
        if let Some(since) = since
            && read_meta(&store.entry_dir(&key), &key).is_ok_and(|m| m.created_unix_ms >= since)
        {
            report.unfinished_entries += 1;
            continue;
        }
        report.bytes += if opts.dry_run {
            dir_size(&store.entry_dir(&key))
        } else {
            store.remove(&key)?
        };
        report.removed.push(key);
    }

    // Vector store spaces of models no lock file uses any more (the
    // models an earlier release trained).
    for (dir, digest) in store.memo_spaces() {
        if models.contains(&digest) {
            continue;
        }
        report.bytes += if opts.dry_run {
            dir_size(&dir)
        } else {
            remove_dir_sized(&dir)?
        };
        report.spaces.push((dir, digest));
    }
    report.memo_bytes = dir_size(&store.memo_dir());

    for dir in work_garbage {
        report.bytes += if opts.dry_run {
            dir_size(&dir)
        } else {
            remove_dir_sized(&dir)?
        };
    }
    report.dropped = gone.iter().map(|r| r.lock.clone()).collect();
    if !opts.dry_run {
        store.clean_tmp()?;
        if opts.memo {
            report.bytes += store.clean_memo()?;
        }
        let mut kept = registered.clone();
        kept.retain(|r| !gone.contains(r));
        if opts.unfinished {
            for r in &mut kept {
                r.unfinished_since_ms = None;
            }
        }
        if kept != registered {
            pipelines::save(store, &kept)?;
        }
    }
    Ok(report)
}

/// What the registered pipelines still use.
struct Used {
    /// Entries their lock files reference.
    keys: BTreeSet<String>,
    /// Content digests of the artifacts (models) they reference.
    models: BTreeSet<String>,
    /// The start of the earliest unfinished run, if any.
    unfinished_since: Option<u64>,
    /// Registrations of pipelines that are gone.
    gone: Vec<Registration>,
}

fn used(store: &CacheStore, registered: &[Registration], lock: &Path) -> Result<Used> {
    let mut used = Used {
        keys: BTreeSet::new(),
        models: BTreeSet::new(),
        unfinished_since: None,
        gone: Vec::new(),
    };
    let mut locks: Vec<PathBuf> = Vec::new();
    for r in registered {
        let lock_there = exists(&r.lock)?;
        // Pipeline files sit beside their lock file: with the directory
        // gone, so is the pipeline.
        let pipeline_there = match (&r.pipeline, r.lock.parent()) {
            (Some(p), _) => exists(p)?,
            (None, Some(dir)) => exists(dir)?,
            (None, None) => false,
        };
        if !lock_there && !pipeline_there {
            used.gone.push(r.clone());
            continue;
        }
        if let Some(t) = r.unfinished_since_ms {
            used.unfinished_since = Some(used.unfinished_since.map_or(t, |u| u.min(t)));
        }
        if lock_there {
            locks.push(r.lock.clone());
        } else if r.unfinished_since_ms.is_none() {
            let what = r
                .pipeline
                .as_deref()
                .map_or_else(|| "a pipeline".to_string(), |p| p.display().to_string());
            return Err(Error::Bookkeeping(format!(
                "{what} is registered with this cache but its lock file {} is missing, so \
                 `dflow gc` cannot tell what it still uses and removes nothing. Run it once \
                 (`dflow run`) to write its lock file, or, if it no longer uses this cache, \
                 remove its record from {}",
                r.lock.display(),
                registry_path(store).display()
            )));
        }
    }
    let current = std::path::absolute(lock)?;
    if !locks.contains(&current) && exists(&current)? {
        locks.push(current);
    }
    for path in locks {
        let lock = LockFile::load(&path).map_err(|e| {
            Error::Bookkeeping(format!(
                "cannot tell what {} references ({e}), so `dflow gc` removes nothing. Fix \
                 that lock file, or delete it and run its pipeline again before `dflow gc`",
                path.display()
            ))
        })?;
        used.keys.extend(lock.referenced_keys().map(str::to_string));
        used.models
            .extend(lock.artifact_digests().map(str::to_string));
    }
    Ok(used)
}

/// Whether `path` exists; an error when that cannot be told (a directory
/// that cannot be read), which `gc` must not take for "gone".
fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|e| {
        Error::Bookkeeping(format!(
            "cannot tell whether {} exists ({e}), so `dflow gc` removes nothing; \
             fix the permissions of its directory",
            path.display()
        ))
    })
}
