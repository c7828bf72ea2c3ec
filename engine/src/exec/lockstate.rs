//! The lock file during a run: what it already says of a node (so a hit
//! needs no `meta.json` read, and a node outside the selection finds its
//! output), each finished node's new entry (saved at once, so a killed run
//! keeps what finished), and the registration of the lock file with the
//! cache (so `gc` keeps what it references).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::lockfile::LOCK_FORMAT;
use crate::cache::store::{ENTRY_FORMAT, write_atomic};
use crate::cache::{
    CacheStore, EntryMeta, EntryOutput, LockFile, NodeLock, NodeOutput, OutputLock, PortData,
    UnitLock,
};
use crate::compile::{Plan, PlanNode};
use crate::error::{Error, Result};
use crate::exec::planner::{Known, Unit};
use crate::operator::{PortType, STATE_DIR};
use crate::table::WrittenPart;

/// The lock file of a pipeline while it runs.
pub struct LockState {
    pipeline: String,
    path: PathBuf,
    file: Mutex<LockFile>,
    /// Whether any node's entry changed in this run.
    dirty: AtomicBool,
}

impl LockState {
    /// Loads the lock file at `path` (an empty one if there is none).
    pub fn load(pipeline: &str, path: &Path) -> Result<Self> {
        Ok(Self {
            pipeline: pipeline.to_string(),
            path: path.to_path_buf(),
            file: Mutex::new(LockFile::load(path)?),
            dirty: AtomicBool::new(false),
        })
    }

    /// `node`'s last output, if the lock file has it and its entries are
    /// still in the cache.
    pub fn output_of(&self, node: &PlanNode, store: &CacheStore) -> Option<NodeOutput> {
        let lock = self.file.lock().ok()?;
        let nl = lock.node(&self.pipeline, &node.id)?;
        let mut out = NodeOutput::default();
        for (port, ty) in &node.outputs {
            let data = PortData::from_lock(nl.outputs.get(port)?, ty.table_schema(), store)?;
            out.ports.insert(port.clone(), data);
        }
        Some(out)
    }

    /// What the lock file says of `node`'s entries and previous state,
    /// when it was computed by the same operator version.
    pub fn known(&self, node: &PlanNode, store: &CacheStore) -> Known {
        let Ok(lock) = self.file.lock() else {
            return Known::default();
        };
        match lock.node(&self.pipeline, &node.id) {
            Some(nl) if nl.version == node.op.version() => Known {
                entries: known_entries(node, nl),
                previous_state: previous_state(nl, store),
            },
            _ => Known::default(),
        }
    }

    /// Records `node`'s new output and saves the lock file if it changed.
    pub fn record_node(
        &self,
        node: &PlanNode,
        files: &BTreeMap<String, String>,
        inputs: &BTreeMap<String, String>,
        units: &[&Unit],
        output: &NodeOutput,
    ) -> Result<()> {
        let entry = NodeLock {
            op: node.op_name.clone(),
            version: node.op.version(),
            params: node.params.clone(),
            files: files.clone(),
            inputs: inputs.clone(),
            units: units
                .iter()
                .map(|u| UnitLock {
                    partition: u.partition.clone(),
                    digest: u.partition_digest.clone(),
                    key: u.key.clone(),
                })
                .collect(),
            outputs: output
                .ports
                .iter()
                .map(|(p, d)| (p.clone(), d.to_lock()))
                .collect(),
        };
        let mut lock = self
            .file
            .lock()
            .map_err(|_| Error::internal("lock file mutex poisoned"))?;
        lock.format = LOCK_FORMAT;
        let nodes = &mut lock
            .pipelines
            .entry(self.pipeline.clone())
            .or_default()
            .nodes;
        if nodes.get(&node.id) == Some(&entry) {
            return Ok(());
        }
        nodes.insert(node.id.clone(), entry);
        self.dirty.store(true, Ordering::Relaxed);
        lock.save(&self.path)
    }

    /// Ends the run: when every node ran, drops nodes no longer in the
    /// plan; saves the file if anything changed (or it does not exist yet)
    /// and registers it with the cache.
    pub fn finish(&self, plan: &Plan, all_selected: bool, store: &CacheStore) -> Result<()> {
        if let Ok(mut lock) = self.file.lock() {
            let mut dirty = self.dirty.load(Ordering::Relaxed);
            if all_selected && let Some(p) = lock.pipelines.get_mut(&self.pipeline) {
                let before = p.nodes.len();
                p.nodes
                    .retain(|id, _| plan.nodes.iter().any(|n| &n.id == id));
                dirty |= p.nodes.len() != before;
            }
            if dirty || !self.path.exists() {
                lock.save(&self.path)?;
            }
        }
        register_lock_file(store, &self.path)
    }
}

/// The entries a node's lock record describes, by key, rebuilt as their
/// `meta.json` would read (without the fields a hit does not use).
fn known_entries(node: &PlanNode, nl: &NodeLock) -> HashMap<String, EntryMeta> {
    // Parts by the entry that holds them.
    let mut by_key: HashMap<&str, BTreeMap<String, EntryOutput>> = HashMap::new();
    for (port, out) in &nl.outputs {
        match out {
            OutputLock::Table { parts, .. } => {
                for p in parts {
                    let entry = by_key
                        .entry(p.key.as_str())
                        .or_default()
                        .entry(port.clone())
                        .or_insert_with(|| EntryOutput::Table { parts: Vec::new() });
                    // Partitions with identical content share an entry:
                    // list each of its files once.
                    if let EntryOutput::Table { parts } = entry
                        && !parts.iter().any(|w| w.file == p.file)
                    {
                        parts.push(WrittenPart {
                            partition: p.name.clone(),
                            file: p.file.clone(),
                            digest: p.digest.clone(),
                            rows: p.rows,
                            bytes: 0,
                        });
                    }
                }
            }
            OutputLock::Artifact { digest, key, dir } => {
                by_key.entry(key.as_str()).or_default().insert(
                    port.clone(),
                    EntryOutput::Artifact {
                        dir: dir.clone(),
                        digest: digest.clone(),
                        bytes: 0,
                    },
                );
            }
        }
    }
    let mut known = HashMap::new();
    for unit in &nl.units {
        let mut outputs = by_key.get(unit.key.as_str()).cloned().unwrap_or_default();
        // A port that was empty for this unit has no parts in the lock.
        for (port, ty) in &node.outputs {
            if matches!(ty, PortType::Table(_)) && !outputs.contains_key(port) {
                outputs.insert(port.clone(), EntryOutput::Table { parts: Vec::new() });
            }
        }
        if outputs.len() != node.outputs.len() {
            continue;
        }
        known.insert(
            unit.key.clone(),
            EntryMeta {
                format: ENTRY_FORMAT,
                key: unit.key.clone(),
                op: node.op_name.clone(),
                version: nl.version,
                node: node.id.clone(),
                params: serde_json::Value::Null,
                inputs: BTreeMap::new(),
                partition_digest: unit.digest.clone(),
                outputs,
                created_unix_ms: 0,
                seconds: 0.0,
            },
        );
    }
    known
}

/// The state directory of the entry the lock file last recorded for a
/// single-unit node, if it is still in the cache.
fn previous_state(nl: &NodeLock, store: &CacheStore) -> Option<PathBuf> {
    let unit = nl.units.first()?;
    let dir = store.entry_dir(&unit.key).join(STATE_DIR);
    (store.contains(&unit.key) && dir.is_dir()).then_some(dir)
}

/// Remembers which lock files use this cache, so `gc` keeps what any of them
/// references.
fn register_lock_file(store: &CacheStore, lock_path: &Path) -> Result<()> {
    let path = store.root().join("locks.json");
    let mut locks: Vec<PathBuf> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let abs = std::path::absolute(lock_path)?;
    if !locks.contains(&abs) {
        locks.push(abs);
        locks.sort();
        write_atomic(&path, &serde_json::to_vec_pretty(&locks)?)?;
    }
    Ok(())
}

/// The lock files registered with a cache.
pub fn registered_lock_files(store: &CacheStore) -> Vec<PathBuf> {
    std::fs::read(store.root().join("locks.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
