//! A cache entry's `meta.json` ([`EntryMeta`]) and whether the entry is
//! whole: [`quick_check`] on every cache hit (its `meta.json` parses and
//! names the entry, every file it lists is there with its recorded size),
//! [`full_check`] for `dflow verify` (also every file's content digest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::files::{digest_dir, digest_file, dir_size};
use crate::table::WrittenPart;

/// Format of `meta.json`; entries of another format are ignored.
pub const ENTRY_FORMAT: u32 = 1;

/// The file that describes an entry, written last.
pub const META_FILE: &str = "meta.json";

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

/// What is wrong with an entry that is there but not whole.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Damage {
    /// `meta.json` is missing, unreadable, unparsable, of another format or
    /// names another key.
    #[error("its meta.json {0}")]
    Meta(String),
    /// A file or directory `meta.json` lists is not there.
    #[error("{} is missing", .0.display())]
    Missing(PathBuf),
    /// A file (or an artifact directory, in total) has another size than
    /// `meta.json` records.
    #[error("{} is {found} bytes where meta.json records {expected}", .path.display())]
    Size {
        /// The file or directory, relative to the entry.
        path: PathBuf,
        /// The size recorded.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// A file (or an artifact directory) does not have the content digest
    /// `meta.json` records.
    #[error("{} does not have the content digest meta.json records", .0.display())]
    Digest(PathBuf),
    /// A file could not be read to compute its digest.
    #[error("{} cannot be read: {error}", .path.display())]
    Unreadable {
        /// The file or directory, relative to the entry.
        path: PathBuf,
        /// The reading error.
        error: String,
    },
}

/// Reads the `meta.json` of the entry `key` in `dir`.
pub fn read_meta(dir: &Path, key: &str) -> Result<EntryMeta, Damage> {
    let bytes = std::fs::read(dir.join(META_FILE)).map_err(|e| {
        Damage::Meta(match e.kind() {
            std::io::ErrorKind::NotFound => "is missing".to_string(),
            _ => format!("cannot be read: {e}"),
        })
    })?;
    let meta: EntryMeta =
        serde_json::from_slice(&bytes).map_err(|e| Damage::Meta(format!("does not parse: {e}")))?;
    if meta.format != ENTRY_FORMAT {
        return Err(Damage::Meta(format!(
            "is of format {}, not {ENTRY_FORMAT}",
            meta.format
        )));
    }
    if meta.key != key {
        return Err(Damage::Meta(format!("names another entry, {}", meta.key)));
    }
    Ok(meta)
}

/// The cheap check of a hit: every file `meta` lists is in `dir` with its
/// recorded size (an artifact directory: its total size).
pub fn quick_check(dir: &Path, meta: &EntryMeta) -> Result<(), Damage> {
    for out in meta.outputs.values() {
        match out {
            EntryOutput::Table { parts } => {
                for part in parts {
                    let found = std::fs::metadata(dir.join(&part.file))
                        .map_err(|_| Damage::Missing(part.file.clone()))?
                        .len();
                    if found != part.bytes {
                        return Err(Damage::Size {
                            path: part.file.clone(),
                            expected: part.bytes,
                            found,
                        });
                    }
                }
            }
            EntryOutput::Artifact {
                dir: rel, bytes, ..
            } => {
                if !dir.join(rel).is_dir() {
                    return Err(Damage::Missing(rel.clone()));
                }
                let found = dir_size(&dir.join(rel));
                if found != *bytes {
                    return Err(Damage::Size {
                        path: rel.clone(),
                        expected: *bytes,
                        found,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The full check (`dflow verify`): [`quick_check`], then the content
/// digest of every file against the one `meta` records.
pub fn full_check(dir: &Path, meta: &EntryMeta) -> Result<(), Damage> {
    quick_check(dir, meta)?;
    let unreadable = |path: &Path, e: crate::error::Error| Damage::Unreadable {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    for out in meta.outputs.values() {
        match out {
            EntryOutput::Table { parts } => {
                for part in parts {
                    let (digest, _) = digest_file(&dir.join(&part.file))
                        .map_err(|e| unreadable(&part.file, e))?;
                    if digest != part.digest {
                        return Err(Damage::Digest(part.file.clone()));
                    }
                }
            }
            EntryOutput::Artifact {
                dir: rel, digest, ..
            } => {
                let (found, _) = digest_dir(&dir.join(rel)).map_err(|e| unreadable(rel, e))?;
                if &found != digest {
                    return Err(Damage::Digest(rel.clone()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path) -> EntryMeta {
        std::fs::create_dir_all(dir.join("out")).expect("mkdir");
        std::fs::write(dir.join("out/0.parquet"), b"twelve bytes").expect("part");
        std::fs::create_dir_all(dir.join("model")).expect("mkdir");
        std::fs::write(dir.join("model/w.bin"), b"weights").expect("artifact");
        let (digest, bytes) = digest_dir(&dir.join("model")).expect("digest");
        EntryMeta {
            format: ENTRY_FORMAT,
            key: "k".into(),
            op: "op".into(),
            version: 1,
            node: "n".into(),
            params: Value::Null,
            inputs: BTreeMap::new(),
            partition_digest: None,
            outputs: BTreeMap::from([
                (
                    "out".into(),
                    EntryOutput::Table {
                        parts: vec![WrittenPart {
                            partition: "all".into(),
                            file: "out/0.parquet".into(),
                            digest: blake3::hash(b"twelve bytes").to_hex().to_string(),
                            rows: 1,
                            bytes: 12,
                        }],
                    },
                ),
                (
                    "model".into(),
                    EntryOutput::Artifact {
                        dir: "model".into(),
                        digest,
                        bytes,
                    },
                ),
            ]),
            created_unix_ms: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn checks_find_each_kind_of_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = entry(dir.path());
        std::fs::write(
            dir.path().join(META_FILE),
            serde_json::to_vec(&meta).expect("json"),
        )
        .expect("meta");
        assert_eq!(read_meta(dir.path(), "k"), Ok(meta.clone()));
        assert!(matches!(
            read_meta(dir.path(), "other"),
            Err(Damage::Meta(_))
        ));
        assert_eq!(full_check(dir.path(), &meta), Ok(()));

        // Same size, other bytes: only the full check sees it.
        std::fs::write(dir.path().join("out/0.parquet"), b"TWELVE BYTES").expect("flip");
        assert_eq!(quick_check(dir.path(), &meta), Ok(()));
        assert_eq!(
            full_check(dir.path(), &meta),
            Err(Damage::Digest("out/0.parquet".into()))
        );
        std::fs::write(dir.path().join("out/0.parquet"), b"twelve").expect("truncate");
        assert_eq!(
            quick_check(dir.path(), &meta),
            Err(Damage::Size {
                path: "out/0.parquet".into(),
                expected: 12,
                found: 6
            })
        );
        std::fs::remove_file(dir.path().join("out/0.parquet")).expect("rm");
        assert_eq!(
            quick_check(dir.path(), &meta),
            Err(Damage::Missing("out/0.parquet".into()))
        );
        std::fs::write(dir.path().join("out/0.parquet"), b"twelve bytes").expect("restore");
        std::fs::write(dir.path().join("model/w.bin"), b"WEIGHTS").expect("flip");
        assert_eq!(
            full_check(dir.path(), &meta),
            Err(Damage::Digest("model".into()))
        );

        std::fs::write(dir.path().join(META_FILE), b"{ not json").expect("garbage");
        assert!(
            matches!(read_meta(dir.path(), "k"), Err(Damage::Meta(m)) if m.starts_with("does not parse"))
        );
    }
}
