//! `dflow verify`: the full check of cache entries (every file's size and
//! content digest against its `meta.json`), and the removal of the
//! damaged ones, so that the next run recomputes them.

use rayon::prelude::*;

use crate::cache::entry::{Damage, full_check, read_meta};
use crate::cache::store::{CacheStore, WriterLock};
use crate::error::Result;

/// What is wrong with an entry.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    /// A lock file references it, but the cache has no such entry.
    #[error("missing from the cache")]
    Missing,
    /// It is there but damaged.
    #[error(transparent)]
    Damaged(#[from] Damage),
}

/// Checks the entries `keys` fully (in parallel); returns those with a
/// problem, in the order of `keys`.
pub fn verify(store: &CacheStore, keys: &[String]) -> Vec<(String, Problem)> {
    keys.par_iter()
        .filter_map(|key| {
            let dir = store.entry_dir(key);
            if !dir.is_dir() {
                return Some((key.clone(), Problem::Missing));
            }
            read_meta(&dir, key)
                .and_then(|meta| full_check(&dir, &meta))
                .err()
                .map(|damage| (key.clone(), Problem::Damaged(damage)))
        })
        .collect()
}

/// Removes the damaged entries among `problems` (under the writer lock
/// `_held`), so that the next run recomputes them; returns how many.
pub fn remove_damaged(
    store: &CacheStore,
    _held: &WriterLock,
    problems: &[(String, Problem)],
) -> Result<usize> {
    let mut removed = 0;
    for (key, problem) in problems {
        if let Problem::Damaged(_) = problem
            && store.entry_dir(key).is_dir()
        {
            store.remove(key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::{ENTRY_FORMAT, EntryMeta, EntryOutput, META_FILE};
    use crate::table::WrittenPart;
    use std::collections::BTreeMap;

    fn commit(store: &CacheStore, key: &str, content: &[u8]) {
        let staging = store.stage().expect("stage");
        std::fs::write(staging.dir.join("0.parquet"), content).expect("part");
        let meta = EntryMeta {
            format: ENTRY_FORMAT,
            key: key.into(),
            op: "op".into(),
            version: 1,
            node: "n".into(),
            params: serde_json::Value::Null,
            inputs: BTreeMap::new(),
            partition_digest: None,
            outputs: BTreeMap::from([(
                "out".into(),
                EntryOutput::Table {
                    parts: vec![WrittenPart {
                        partition: "all".into(),
                        file: "0.parquet".into(),
                        digest: blake3::hash(content).to_hex().to_string(),
                        rows: 1,
                        bytes: content.len() as u64,
                    }],
                },
            )]),
            created_unix_ms: 0,
            seconds: 0.0,
        };
        store.commit(staging, &meta, false).expect("commit");
    }

    #[test]
    fn verify_finds_damage_a_hit_cannot_see_and_removal_makes_it_a_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CacheStore::open(dir.path()).expect("open");
        let keys: Vec<String> = ["aa", "bb", "cc", "dd"].map(|k| k.repeat(32)).into();
        for key in &keys[..3] {
            commit(&store, key, b"some bytes");
        }
        // Same size, other content: a hit's quick check passes.
        std::fs::write(store.entry_dir(&keys[1]).join("0.parquet"), b"SOME BYTES").expect("flip");
        std::fs::write(store.entry_dir(&keys[2]).join(META_FILE), b"garbage").expect("meta");
        assert!(store.lookup(&keys[1]).is_some());
        let problems = verify(&store, &keys);
        assert_eq!(
            problems,
            vec![
                (
                    keys[1].clone(),
                    Problem::Damaged(Damage::Digest("0.parquet".into()))
                ),
                (
                    keys[2].clone(),
                    Problem::Damaged(Damage::Meta(
                        "does not parse: expected value at line 1 column 1".into()
                    ))
                ),
                (keys[3].clone(), Problem::Missing),
            ]
        );
        let held = store.writer_lock(false, |_| {}).expect("lock");
        assert_eq!(remove_damaged(&store, &held, &problems).expect("remove"), 2);
        assert!(store.lookup(&keys[0]).is_some());
        assert!(!store.entry_dir(&keys[1]).exists() && !store.entry_dir(&keys[2]).exists());
    }
}
