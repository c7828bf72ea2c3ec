//! `dflow.lock`: beside the pipeline file, sorted and diffable, what produced
//! each node's latest output (as `dvc.lock` does). `dflow status`, `explain`
//! and `sql` read it; `gc` keeps what any lock file references.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::store::write_atomic;
use crate::error::{Result, ResultExt};
use crate::table::CachedPart;

/// Format of the lock files this version writes.
pub const LOCK_FORMAT: u32 = 1;
/// Name of the lock file, beside the pipeline file.
pub const LOCK_FILE_NAME: &str = "dflow.lock";

/// The contents of a lock file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LockFile {
    /// Format of the file (`LOCK_FORMAT`).
    pub format: u32,
    /// By pipeline name: several pipeline files may share a directory.
    pub pipelines: BTreeMap<String, PipelineLock>,
}

/// What a lock file records of one pipeline.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PipelineLock {
    /// How each node's latest output was produced, by node id.
    pub nodes: BTreeMap<String, NodeLock>,
}

/// How a node's latest output was produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeLock {
    /// The operator's name.
    pub op: String,
    /// The operator's version.
    pub version: u32,
    /// Canonical params (defaults filled).
    pub params: Value,
    /// Digests of files the params name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Content digest of each input port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// One per unit of work (partition, or the whole node).
    pub units: Vec<UnitLock>,
    /// What each output port holds, by port name.
    pub outputs: BTreeMap<String, OutputLock>,
}

/// One unit of work of a node and the entry that holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitLock {
    /// The partition (none for a unit over the whole node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Digest of the input partition (or source file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The unit's cache key.
    pub key: String,
}

/// What the lock file records of one output port.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputLock {
    /// A table.
    Table {
        /// Content digest of the whole port.
        digest: String,
        /// Rows over every partition.
        rows: u64,
        /// The partitions, sorted by name.
        parts: Vec<CachedPart>,
    },
    /// An artifact directory.
    Artifact {
        /// Content digest of the directory.
        digest: String,
        /// The cache entry holding it.
        key: String,
        /// The directory's name inside that entry.
        dir: PathBuf,
    },
}

impl OutputLock {
    /// Content digest of the port.
    pub fn digest(&self) -> &str {
        match self {
            OutputLock::Table { digest, .. } | OutputLock::Artifact { digest, .. } => digest,
        }
    }
}

/// `params` as they read back from a lock file. JSON numbers are parsed
/// faster than exactly (serde_json without `float_roundtrip`), so an f32
/// param such as 0.12 (stored as 0.11999999731779099) reads back one ulp
/// away; comparing the current params in this form makes an unchanged
/// param compare equal.
pub fn as_stored(params: &serde_json::Value) -> serde_json::Value {
    serde_json::to_string(params)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| params.clone())
}

/// The lock file of the pipelines in `pipeline_dir`.
pub fn lock_path(pipeline_dir: &Path) -> PathBuf {
    pipeline_dir.join(LOCK_FILE_NAME)
}

impl LockFile {
    /// Reads a lock file; a missing one is empty.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .context(|| format!("{} is damaged; delete it to start over", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile {
                format: LOCK_FORMAT,
                ..Default::default()
            }),
            Err(e) => Err(e).context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the lock file atomically, unless it already holds the same text.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        if std::fs::read(path).ok().as_deref() == Some(text.as_bytes()) {
            return Ok(());
        }
        write_atomic(path, text.as_bytes())
    }

    /// What the lock file says of `node` in `pipeline`.
    pub fn node(&self, pipeline: &str, node: &str) -> Option<&NodeLock> {
        self.pipelines.get(pipeline)?.nodes.get(node)
    }

    /// The content digest of every artifact output this lock file
    /// references (the models a pipeline uses now).
    pub fn artifact_digests(&self) -> impl Iterator<Item = &str> {
        self.pipelines.values().flat_map(|p| {
            p.nodes.values().flat_map(|n| {
                n.outputs.values().filter_map(|o| match o {
                    OutputLock::Artifact { digest, .. } => Some(digest.as_str()),
                    OutputLock::Table { .. } => None,
                })
            })
        })
    }

    /// Every cache key this lock file references.
    pub fn referenced_keys(&self) -> impl Iterator<Item = &str> {
        self.pipelines.values().flat_map(|p| {
            p.nodes.values().flat_map(|n| {
                n.units
                    .iter()
                    .map(|u| u.key.as_str())
                    .chain(
                        n.outputs
                            .values()
                            .flat_map(|o| -> Box<dyn Iterator<Item = &str>> {
                                match o {
                                    OutputLock::Table { parts, .. } => {
                                        Box::new(parts.iter().map(|p| p.key.as_str()))
                                    }
                                    OutputLock::Artifact { key, .. } => {
                                        Box::new(std::iter::once(key.as_str()))
                                    }
                                }
                            }),
                    )
            })
        })
    }
}
