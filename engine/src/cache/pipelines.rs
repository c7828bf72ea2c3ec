//! `locks.json`: the pipelines that use a cache, each by its lock file and
//! pipeline file, and whether a run of it has not finished. A run registers
//! its pipeline when it starts, before any unit runs; `gc` keeps what every
//! registered lock file references and what unfinished runs may have
//! committed. The file is never guessed at: one that cannot be read or
//! parsed stops both (see [`load`]), and is never overwritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::files::write_atomic;
use crate::cache::store::CacheStore;
use crate::error::{Error, Result};

/// The registry's file name in the cache root.
pub const REGISTRY_FILE: &str = "locks.json";

/// One pipeline that uses the cache.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Registration {
    /// Its lock file, absolute.
    pub lock: PathBuf,
    /// Its pipeline file, absolute (none in registrations of dflow
    /// versions that recorded only the lock file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PathBuf>,
    /// When the earliest of its runs that has not finished since started,
    /// in Unix milliseconds: set when a run starts, cleared when a run of
    /// every node succeeds. Entries created since then may be the work of
    /// that run's unfinished nodes, which no lock file records yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished_since_ms: Option<u64>,
}

/// An item of `locks.json`: earlier versions wrote bare lock file paths.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Path(PathBuf),
    Registration(Registration),
}

/// Where the registry of `store` is.
pub fn registry_path(store: &CacheStore) -> PathBuf {
    store.root().join(REGISTRY_FILE)
}

/// The pipelines registered with `store` (none when the file does not
/// exist yet). A file that cannot be read or parsed is an
/// [`Error::Bookkeeping`] that names it and says what to do: `gc` must not
/// take it for "no other pipeline", and a run must not overwrite it.
pub fn load(store: &CacheStore) -> Result<Vec<Registration>> {
    let path = registry_path(store);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Bookkeeping(format!(
                "cannot read {}, the list of pipelines that use this cache: {e}; \
                 fix its permissions (dflow neither runs nor collects garbage without it)",
                path.display()
            )));
        }
    };
    let stored: Vec<Stored> = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Bookkeeping(format!(
            "{} is damaged ({e}): it lists the pipelines that use this cache, so dflow \
             does not overwrite it and `dflow gc` will not guess what they use. Fix it \
             (a JSON list of {{\"lock\": ..., \"pipeline\": ...}}), or delete it and run \
             every pipeline that uses this cache once before the next `dflow gc`",
            path.display()
        ))
    })?;
    Ok(stored
        .into_iter()
        .map(|s| match s {
            Stored::Path(lock) => Registration {
                lock,
                pipeline: None,
                unfinished_since_ms: None,
            },
            Stored::Registration(r) => r,
        })
        .collect())
}

/// Writes the registry (sorted) atomically.
pub fn save(store: &CacheStore, registrations: &[Registration]) -> Result<()> {
    let mut sorted = registrations.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut text = serde_json::to_vec_pretty(&sorted)?;
    text.push(b'\n');
    write_atomic(&registry_path(store), &text)
}

/// Registers a run of `pipeline` (its lock file `lock`) starting at
/// `now_ms`, and marks it unfinished until [`run_finished`] says otherwise.
/// Call under the writer lock, before any unit runs.
pub fn run_started(store: &CacheStore, lock: &Path, pipeline: &Path, now_ms: u64) -> Result<()> {
    let (lock, pipeline) = (std::path::absolute(lock)?, std::path::absolute(pipeline)?);
    let mut all = load(store)?;
    let before = all.clone();
    // A bare lock file path of an earlier version is this registration now.
    all.retain(|r| !(r.lock == lock && r.pipeline.is_none()));
    match all
        .iter_mut()
        .find(|r| r.lock == lock && r.pipeline.as_deref() == Some(pipeline.as_path()))
    {
        Some(r) => {
            r.unfinished_since_ms.get_or_insert(now_ms);
        }
        None => all.push(Registration {
            lock,
            pipeline: Some(pipeline),
            unfinished_since_ms: Some(now_ms),
        }),
    }
    if all != before {
        save(store, &all)?;
    }
    Ok(())
}

/// Records the end of a run of `pipeline`: one that ran every node
/// successfully (`clean`) clears its unfinished mark; any other keeps it.
pub fn run_finished(store: &CacheStore, lock: &Path, pipeline: &Path, clean: bool) -> Result<()> {
    if !clean {
        return Ok(());
    }
    let (lock, pipeline) = (std::path::absolute(lock)?, std::path::absolute(pipeline)?);
    let mut all = load(store)?;
    let mut changed = false;
    for r in all
        .iter_mut()
        .filter(|r| r.lock == lock && r.pipeline.as_deref() == Some(pipeline.as_path()))
    {
        changed |= r.unfinished_since_ms.take().is_some();
    }
    if changed {
        save(store, &all)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_registered_when_it_starts_and_unmarked_when_it_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(&dir.path().join(".dflow")).expect("open");
        let (lock, pipeline) = (dir.path().join("dflow.lock"), dir.path().join("p.yaml"));
        // An earlier version's bare path is taken over.
        std::fs::write(
            registry_path(&store),
            serde_json::to_vec(&[&lock]).expect("json"),
        )
        .expect("old registry");
        run_started(&store, &lock, &pipeline, 10).expect("start");
        let expected = Registration {
            lock: lock.clone(),
            pipeline: Some(pipeline.clone()),
            unfinished_since_ms: Some(10),
        };
        assert_eq!(load(&store).expect("load"), vec![expected.clone()]);
        // A second interrupted run keeps the earliest start.
        run_started(&store, &lock, &pipeline, 20).expect("start");
        run_finished(&store, &lock, &pipeline, false).expect("finish");
        assert_eq!(load(&store).expect("load"), vec![expected.clone()]);
        run_finished(&store, &lock, &pipeline, true).expect("finish");
        assert_eq!(
            load(&store).expect("load"),
            vec![Registration {
                unfinished_since_ms: None,
                ..expected
            }]
        );
    }

    #[test]
    fn a_damaged_registry_is_refused_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        std::fs::write(registry_path(&store), b"[\"/a/dflow.lock\", ").expect("damage");
        let err = run_started(&store, Path::new("dflow.lock"), Path::new("p.yaml"), 1)
            .expect_err("a damaged registry must stop the run");
        assert_eq!(err.code(), "DF3007");
        let text = err.to_string();
        assert!(
            text.contains(REGISTRY_FILE) && text.contains("delete it"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(registry_path(&store)).expect("read"),
            b"[\"/a/dflow.lock\", "
        );
    }
}
