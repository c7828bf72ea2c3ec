//! A node's output as the cache holds it: for each port, the table
//! partitions (each a [`CachedPart`]) or the artifact directory. This is
//! what downstream units read, what the lock file records, and what
//! [`crate::Operator::publish`] receives; it knows nothing of the scheduler.

use std::collections::BTreeMap;
use std::path::PathBuf;

use datafusion::arrow::datatypes::SchemaRef;

use crate::cache::{CacheStore, KeyBuilder, OutputLock};
use crate::table::{CachedPart, PartRef};

/// The data on one port of a node's output.
#[derive(Clone, Debug)]
pub enum PortData {
    /// A table: its schema and its partitions, sorted by name.
    Table {
        /// The table's schema.
        schema: SchemaRef,
        /// Its partitions.
        parts: Vec<CachedPart>,
    },
    /// An artifact directory.
    Artifact {
        /// The directory, inside its cache entry.
        dir: PathBuf,
        /// Content digest of the directory.
        digest: String,
        /// The cache entry holding it.
        key: String,
    },
}

impl PortData {
    /// Content digest of the whole port: what downstream keys see.
    pub fn digest(&self) -> String {
        match self {
            PortData::Table { parts, .. } => {
                let mut k = KeyBuilder::new();
                k.str("kind", "table");
                for p in parts {
                    k.str("part", &p.name).str("digest", &p.digest);
                }
                k.finish()
            }
            PortData::Artifact { digest, .. } => digest.clone(),
        }
    }

    /// Rows over every partition (0 for an artifact).
    pub fn rows(&self) -> u64 {
        match self {
            PortData::Table { parts, .. } => parts.iter().map(|p| p.rows).sum(),
            PortData::Artifact { .. } => 0,
        }
    }

    /// The table's partitions as an operator reads them, resolved in
    /// `store` (none for an artifact).
    pub fn part_refs(&self, store: &CacheStore) -> Vec<PartRef> {
        match self {
            PortData::Table { parts, .. } => parts.iter().map(|p| store.locate(p)).collect(),
            PortData::Artifact { .. } => Vec::new(),
        }
    }

    /// What the lock file records of this port.
    pub fn to_lock(&self) -> OutputLock {
        match self {
            PortData::Table { parts, .. } => OutputLock::Table {
                digest: self.digest(),
                rows: self.rows(),
                parts: parts.clone(),
            },
            PortData::Artifact { dir, digest, key } => OutputLock::Artifact {
                digest: digest.clone(),
                key: key.clone(),
                dir: dir.file_name().map(PathBuf::from).unwrap_or_default(),
            },
        }
    }

    /// Rebuilds port data from the lock file, if its cache entries are
    /// whole ([`CacheStore::probe`]: every file there with its recorded
    /// size), so that `status`, `sql` and `--only` never use a damaged
    /// entry.
    /// `table_schema` is the port's schema for a table port and `None` for
    /// an artifact port; a lock entry of the other kind gives `None`.
    pub fn from_lock(
        lock: &OutputLock,
        table_schema: Option<&SchemaRef>,
        store: &CacheStore,
    ) -> Option<PortData> {
        match (lock, table_schema) {
            (OutputLock::Table { parts, .. }, Some(schema)) => parts
                .iter()
                .all(|p| store.is_whole(&p.key))
                .then(|| PortData::Table {
                    schema: schema.clone(),
                    parts: parts.clone(),
                }),
            (OutputLock::Artifact { digest, key, dir }, None) => {
                store.is_whole(key).then(|| PortData::Artifact {
                    dir: store.entry_dir(key).join(dir),
                    digest: digest.clone(),
                    key: key.clone(),
                })
            }
            _ => None,
        }
    }
}

/// All output ports of a node, by port name.
#[derive(Clone, Debug, Default)]
pub struct NodeOutput {
    /// Each port's data, by port name.
    pub ports: BTreeMap<String, PortData>,
}

impl NodeOutput {
    /// Rows of the `out` port, or of every port when there is none.
    pub fn rows(&self) -> u64 {
        self.ports
            .get(crate::ports::OUT)
            .map(PortData::rows)
            .unwrap_or_else(|| self.ports.values().map(PortData::rows).sum())
    }
}
