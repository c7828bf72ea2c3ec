//! The unit runner: one unit of one node, from its inputs in the cache to
//! its committed cache entry. It sees no scheduler and no lock file: what it
//! needs is the node, the unit, the inputs and a cache, which is what a
//! unit needs wherever it runs.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::store::{ENTRY_FORMAT, digest_dir, unix_ms};
use crate::cache::{CacheStore, EntryMeta, EntryOutput, PortData};
use crate::compile::PlanNode;
use crate::error::{Error, Result};
use crate::exec::planner::Unit;
use crate::operator::{ArtifactInput, Input, Outputs, PortType, TableInput, Task};
use crate::table::{RowCounter, WrittenPart};

/// Everything one unit needs.
pub struct UnitJob<'a> {
    /// The node the unit belongs to.
    pub node: &'a PlanNode,
    /// The unit to compute.
    pub unit: &'a Unit,
    /// The node's inputs, by port.
    pub inputs: &'a BTreeMap<String, PortData>,
    /// Content digest of each input port (what the entry records).
    pub input_digests: &'a BTreeMap<String, String>,
    /// State directories of earlier computations the unit may read.
    pub prior_states: &'a [PathBuf],
    /// Replace an existing entry of the same key (`--force`).
    pub replace: bool,
}

/// A computed and committed unit.
#[derive(Debug)]
pub struct UnitDone {
    /// What the committed entry's `meta.json` says.
    pub meta: EntryMeta,
    /// What the operator said of its work ([`Outputs::note`]).
    pub note: Option<String>,
}

/// Computes one unit in a staging directory and commits it to `store`.
/// Operator panics become errors.
pub fn run_unit(store: &CacheStore, job: &UnitJob<'_>, rows: &Arc<RowCounter>) -> Result<UnitDone> {
    let (node, unit) = (job.node, job.unit);
    let started = Instant::now();
    let staging = store.stage()?;
    let mut outputs = Outputs {
        dir: staging.dir.clone(),
        schemas: node.outputs.clone(),
        default_partition: unit.partition.clone().unwrap_or_else(|| "all".into()),
        tables: BTreeMap::new(),
        artifacts: BTreeMap::new(),
        rows: rows.clone(),
        note: None,
    };
    let task_inputs = task_inputs(store, job);
    let work = store.work_dir(&unit.key);
    let memo = store.memo_dir();
    let mut task = Task {
        node: &node.id,
        base_dir: &node.ctx.base_dir,
        partition: unit.partition.as_deref(),
        source: unit.source.as_ref(),
        inputs: &task_inputs,
        outputs: &mut outputs,
        resources: &node.resources,
        runtime: &node.ctx.runtime,
        udfs: &node.ctx.udfs,
        prior_states: job.prior_states,
        work: &work,
        memo: &memo,
    };
    execute_caught(node, &mut task)?;
    let entry_outputs = finish_outputs(node, &mut outputs)?;
    let meta = EntryMeta {
        format: ENTRY_FORMAT,
        key: unit.key.clone(),
        op: node.op_name.clone(),
        version: node.op.version(),
        node: node.id.clone(),
        params: node.key_params.clone(),
        inputs: job.input_digests.clone(),
        partition_digest: unit.partition_digest.clone(),
        outputs: entry_outputs,
        created_unix_ms: unix_ms(),
        seconds: started.elapsed().as_secs_f64(),
    };
    store.commit(staging, &meta, job.replace)?;
    if work.exists() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(UnitDone {
        meta,
        note: outputs.note.take(),
    })
}

/// The unit's inputs as the operator sees them: the partitioned port
/// narrowed to the unit's partition (a `--full` fold unit has none: it
/// reads all), every other port whole.
fn task_inputs(store: &CacheStore, job: &UnitJob<'_>) -> BTreeMap<String, Input> {
    let partitioned_port = job.node.partitioning.port();
    job.inputs
        .iter()
        .map(|(port, data)| {
            let input = match data {
                PortData::Table { schema, .. } => Input::Table(TableInput {
                    schema: schema.clone(),
                    parts: match &job.unit.input_part {
                        Some(part) if Some(port.as_str()) == partitioned_port => {
                            vec![store.locate(part)]
                        }
                        _ => data.part_refs(store),
                    },
                }),
                PortData::Artifact { dir, digest, .. } => Input::Artifact(ArtifactInput {
                    dir: dir.clone(),
                    digest: digest.clone(),
                }),
            };
            (port.clone(), input)
        })
        .collect()
}

/// Runs the operator, turning a panic into an error.
fn execute_caught(node: &PlanNode, task: &mut Task<'_>) -> Result<()> {
    match catch_unwind(AssertUnwindSafe(|| node.op.execute(task))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Error::internal(format!(
                "operator `{}` panicked: {what}",
                node.op_name
            )))
        }
    }
}

/// Closes the unit's writers and describes every output port: a table
/// port the operator never wrote gets an empty partition, an artifact port
/// it never filled is an error.
fn finish_outputs(node: &PlanNode, outputs: &mut Outputs) -> Result<BTreeMap<String, EntryOutput>> {
    let mut entry_outputs = BTreeMap::new();
    for (port, ty) in &node.outputs {
        match ty {
            PortType::Table(_) => {
                if !outputs.tables.keys().any(|(p, _)| p == port) {
                    outputs.table(port)?;
                }
            }
            PortType::Artifact => {
                let Some(dir) = outputs.artifacts.get(port) else {
                    return Err(Error::internal(format!(
                        "operator `{}` produced nothing on artifact port `{port}`",
                        node.op_name
                    )));
                };
                let (digest, bytes) = digest_dir(dir)?;
                entry_outputs.insert(
                    port.clone(),
                    EntryOutput::Artifact {
                        dir: PathBuf::from(port),
                        digest,
                        bytes,
                    },
                );
            }
        }
    }
    let mut by_port: BTreeMap<String, Vec<WrittenPart>> = BTreeMap::new();
    for ((port, _), writer) in std::mem::take(&mut outputs.tables) {
        by_port.entry(port).or_default().push(writer.finish()?);
    }
    for (port, mut parts) in by_port {
        parts.sort_by(|a, b| a.partition.cmp(&b.partition));
        entry_outputs.insert(port, EntryOutput::Table { parts });
    }
    Ok(entry_outputs)
}
