//! The lock file during a run: what it already says of a node (its
//! previous state, and for a node outside the selection its output), and
//! each finished node's new entry (saved at once, so a killed run keeps
//! what finished).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::lockfile::LOCK_FORMAT;
use crate::cache::{CacheStore, LockFile, NodeLock, NodeOutput, PortData, UnitLock};
use crate::compile::{Plan, PlanNode};
use crate::error::{Error, Result};
use crate::exec::planner::{Known, Unit};
use crate::operator::STATE_DIR;

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

    /// What the lock file says of `node`'s previous state, when it was
    /// computed by the same operator version.
    pub fn known(&self, node: &PlanNode, store: &CacheStore) -> Known {
        let Ok(lock) = self.file.lock() else {
            return Known::default();
        };
        match lock.node(&self.pipeline, &node.id) {
            Some(nl) if nl.version == node.op.version() => Known {
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
    /// plan; saves the file if anything changed (or it does not exist yet).
    pub fn finish(&self, plan: &Plan, all_selected: bool) -> Result<()> {
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
        Ok(())
    }
}

/// The state directory of the entry the lock file last recorded for a
/// single-unit node, if it is still in the cache.
fn previous_state(nl: &NodeLock, store: &CacheStore) -> Option<PathBuf> {
    let unit = nl.units.first()?;
    let dir = store.entry_dir(&unit.key).join(STATE_DIR);
    (store.contains(&unit.key) && dir.is_dir()).then_some(dir)
}
