//! Units of work and their cache keys. Shared by `run` (which computes the
//! missing ones) and `status` (which only compares).

use std::collections::BTreeMap;
use std::path::PathBuf;

use datafusion::arrow::datatypes::SchemaRef;

use crate::cache::{CacheStore, KeyBuilder, OutputLock, PartLock, StatCache, canonical_json};
use crate::compile::PlanNode;
use crate::error::{Error, Result};
use crate::operator::{PartRef, Partitioning, PortType, SourcePartition};

/// The data on one port of a node's output.
#[derive(Clone, Debug)]
pub enum PortData {
    Table {
        schema: SchemaRef,
        /// Sorted by partition name.
        parts: Vec<PartRef>,
        /// Cache entry key and file (relative to the entry) of each part,
        /// parallel to `parts`.
        entries: Vec<(String, PathBuf)>,
    },
    Artifact {
        dir: PathBuf,
        digest: String,
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

    pub fn rows(&self) -> u64 {
        match self {
            PortData::Table { parts, .. } => parts.iter().map(|p| p.rows).sum(),
            PortData::Artifact { .. } => 0,
        }
    }

    pub fn to_lock(&self) -> OutputLock {
        match self {
            PortData::Table { parts, entries, .. } => OutputLock::Table {
                digest: self.digest(),
                rows: self.rows(),
                parts: parts
                    .iter()
                    .zip(entries)
                    .map(|(p, (key, file))| PartLock {
                        name: p.name.clone(),
                        key: key.clone(),
                        file: file.clone(),
                        digest: p.digest.clone(),
                        rows: p.rows,
                    })
                    .collect(),
            },
            PortData::Artifact { dir, digest, key } => OutputLock::Artifact {
                digest: digest.clone(),
                key: key.clone(),
                dir: dir.file_name().map(PathBuf::from).unwrap_or_default(),
            },
        }
    }

    /// Rebuilds port data from the lock file, if its cache entries exist.
    pub fn from_lock(lock: &OutputLock, ty: &PortType, store: &CacheStore) -> Option<PortData> {
        match (lock, ty) {
            (OutputLock::Table { parts, .. }, PortType::Table(schema)) => {
                let mut refs = Vec::new();
                let mut entries = Vec::new();
                for p in parts {
                    let dir = store.entry_dir(&p.key);
                    if !dir.join("meta.json").is_file() {
                        return None;
                    }
                    refs.push(PartRef {
                        name: p.name.clone(),
                        path: dir.join(&p.file),
                        digest: p.digest.clone(),
                        rows: p.rows,
                    });
                    entries.push((p.key.clone(), p.file.clone()));
                }
                Some(PortData::Table {
                    schema: schema.clone(),
                    parts: refs,
                    entries,
                })
            }
            (OutputLock::Artifact { digest, key, dir }, PortType::Artifact) => {
                let entry = store.entry_dir(key);
                entry
                    .join("meta.json")
                    .is_file()
                    .then(|| PortData::Artifact {
                        dir: entry.join(dir),
                        digest: digest.clone(),
                        key: key.clone(),
                    })
            }
            _ => None,
        }
    }
}

/// All output ports of a node.
#[derive(Clone, Debug, Default)]
pub struct NodeOutput {
    pub ports: BTreeMap<String, PortData>,
}

impl NodeOutput {
    pub fn rows(&self) -> u64 {
        self.ports
            .get("out")
            .map(PortData::rows)
            .unwrap_or_else(|| self.ports.values().map(PortData::rows).sum())
    }
}

/// One unit of work of a node and its cache key.
#[derive(Clone, Debug)]
pub struct Unit {
    /// The partition (per-partition operators and sources).
    pub partition: Option<String>,
    /// Digest of the input partition.
    pub partition_digest: Option<String>,
    pub key: String,
    pub source: Option<SourcePartition>,
    pub input_part: Option<PartRef>,
}

/// What goes into every key of a node.
pub struct KeyBase {
    /// Files named by the params, relative name to digest.
    pub files: BTreeMap<String, String>,
    /// Content digest per input port.
    pub inputs: BTreeMap<String, String>,
}

pub fn key_base(
    node: &PlanNode,
    inputs: &BTreeMap<String, PortData>,
    stat: &StatCache,
) -> Result<KeyBase> {
    let mut files = BTreeMap::new();
    for f in node.op.hashed_files() {
        let name = f
            .strip_prefix(&node.ctx.base_dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        files.insert(name, stat.digest(&f)?);
    }
    let inputs = inputs
        .iter()
        .map(|(port, data)| (port.clone(), data.digest()))
        .collect();
    Ok(KeyBase { files, inputs })
}

fn base_builder(node: &PlanNode, base: &KeyBase) -> KeyBuilder {
    let mut k = KeyBuilder::new();
    k.str("op", &node.op_name)
        .str("version", &node.op.version().to_string())
        .str("params", &canonical_json(&node.key_params));
    // Output types enter the key: a source's schema is inferred from its
    // files, and a file may change the schema the others are read with.
    for (port, ty) in &node.outputs {
        k.str("output", port).str("output_type", &ty.describe());
    }
    for (name, digest) in &base.files {
        k.str("file", name).str("file_digest", digest);
    }
    k
}

/// The one unit of a node computed over all of its input; `fold` marks a
/// fold computed that way (`--full`), so its key differs from a global's.
fn whole_input_unit(node: &PlanNode, base: &KeyBase, fold: Option<&str>) -> Unit {
    let mut k = base_builder(node, base);
    for (p, d) in &base.inputs {
        k.str("input", p).str("input_digest", d);
    }
    if let Some(mode) = fold {
        k.str("fold", mode);
    }
    Unit {
        partition: None,
        partition_digest: None,
        key: k.finish(),
        source: None,
        input_part: None,
    }
}

/// The units of `node` given its inputs, with their keys. `full`
/// (`dflow run --full`) computes a fold as one unit over all its partitions,
/// as a from-scratch global operator would.
pub fn plan_units(
    node: &PlanNode,
    inputs: &BTreeMap<String, PortData>,
    base: &KeyBase,
    stat: &StatCache,
    full: bool,
) -> Result<Vec<Unit>> {
    match &node.partitioning {
        Partitioning::Fold { .. } if full => Ok(vec![whole_input_unit(node, base, Some("full"))]),
        Partitioning::Source => {
            let files = node.op.list_partitions(&node.ctx)?;
            files
                .into_iter()
                .map(|sp| {
                    let digest = stat.digest(&sp.path)?;
                    let mut k = base_builder(node, base);
                    k.str("partition", &digest);
                    Ok(Unit {
                        partition: Some(sp.name.clone()),
                        partition_digest: Some(digest),
                        key: k.finish(),
                        source: Some(sp),
                        input_part: None,
                    })
                })
                .collect()
        }
        Partitioning::PerPartition { port } | Partitioning::Fold { port } => {
            let fold = matches!(node.partitioning, Partitioning::Fold { .. });
            let Some(PortData::Table { parts, .. }) = inputs.get(port) else {
                return Err(Error::internal(format!(
                    "node `{}` is partitioned by `{port}`, which has no table",
                    node.id
                )));
            };
            // A fold's unit also depends on every earlier partition: chain
            // the keys, so that changing one recomputes it and what follows.
            let mut previous: Option<String> = None;
            Ok(parts
                .iter()
                .map(|part| {
                    let mut k = base_builder(node, base);
                    for (p, d) in &base.inputs {
                        if p != port {
                            k.str("input", p).str("input_digest", d);
                        }
                    }
                    k.str("partitioned_by", port).str("partition", &part.digest);
                    if fold {
                        k.str("after", previous.as_deref().unwrap_or(""));
                    }
                    let key = k.finish();
                    if fold {
                        previous = Some(key.clone());
                    }
                    Unit {
                        partition: Some(part.name.clone()),
                        partition_digest: Some(part.digest.clone()),
                        key,
                        source: None,
                        input_part: Some(part.clone()),
                    }
                })
                .collect())
        }
        Partitioning::Global => Ok(vec![whole_input_unit(node, base, None)]),
    }
}
