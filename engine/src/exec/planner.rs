//! The planner: a node's units of work, their cache keys, and which of
//! them are stale and why. `run` computes what is stale; `status` only
//! compares keys, through the same functions, so the two cannot disagree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::cache::canonical_json;
use crate::cache::{
    CacheStore, Damage, EntryMeta, KeyBuilder, NodeOutput, PortData, Probe, StatCache,
};
use crate::compile::PlanNode;
use crate::error::{Error, Result};
use crate::operator::{Partitioning, STATE_DIR, SourcePartition};
use crate::table::CachedPart;

/// One unit of work of a node and its cache key.
#[derive(Clone, Debug)]
pub struct Unit {
    /// The partition (per-partition operators and sources).
    pub partition: Option<String>,
    /// Digest of the input partition.
    pub partition_digest: Option<String>,
    /// The cache key of the unit's entry.
    pub key: String,
    /// The file of a source partition.
    pub source: Option<SourcePartition>,
    /// The input partition a per-partition or fold unit reads.
    pub input_part: Option<CachedPart>,
}

/// What goes into every key of a node.
#[derive(Clone, Debug)]
pub struct KeyBase {
    /// Files named by the params, relative name to digest.
    pub files: BTreeMap<String, String>,
    /// Content digest per input port.
    pub inputs: BTreeMap<String, String>,
}

/// The files and input digests every key of `node` includes.
pub fn key_base(
    node: &PlanNode,
    inputs: &BTreeMap<String, PortData>,
    stat: &StatCache,
) -> Result<KeyBase> {
    let mut files = BTreeMap::new();
    for f in node.op.hashed_files() {
        let name = f.name.unwrap_or_else(|| {
            f.path
                .strip_prefix(&node.ctx.base_dir)
                .unwrap_or(&f.path)
                .to_string_lossy()
                .into_owned()
        });
        files.insert(name, stat.digest_file(&f.path)?);
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
                    let digest = stat.digest(&sp.location)?;
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

/// Why a unit must be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleReason {
    /// No complete cache entry has its key.
    NotInCache,
    /// The entry of its key is damaged ([`PlannedUnit::damage`] says
    /// how): it is recomputed and replaced.
    Damaged,
    /// `--force` names the node.
    Forced,
    /// `--full` names the node: computed from scratch.
    Full,
}

impl StaleReason {
    /// The reason in a few words, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::NotInCache => "not in the cache",
            StaleReason::Damaged => "its cache entry is damaged",
            StaleReason::Forced => "forced",
            StaleReason::Full => "from scratch (--full)",
        }
    }
}

/// A unit and whether the cache already holds it.
#[derive(Clone, Debug)]
pub struct PlannedUnit {
    /// The unit of work.
    pub unit: Unit,
    /// The entry that holds the unit, or why it must be computed.
    pub state: std::result::Result<EntryMeta, StaleReason>,
    /// What is wrong with the unit's entry when it is damaged.
    pub damage: Option<Damage>,
}

impl PlannedUnit {
    /// Whether the unit must be computed.
    pub fn is_stale(&self) -> bool {
        self.state.is_err()
    }
}

/// What a run does for one node.
#[derive(Clone, Debug)]
pub struct NodePlan {
    /// What goes into every key of the node.
    pub base: KeyBase,
    /// In partition order (the order a fold computes them in).
    pub units: Vec<PlannedUnit>,
    /// Whether the units run as a fold: in order, each seeing the earlier
    /// units' state (`--full` computes a fold as one unit instead).
    pub fold: bool,
    /// A global operator's previous state directory, which it may reuse
    /// (`align` keeps results per origin): none with `--full`.
    pub previous_state: Option<PathBuf>,
}

impl NodePlan {
    /// How many units must be computed.
    pub fn stale(&self) -> usize {
        self.units.iter().filter(|u| u.is_stale()).count()
    }

    /// The state directories a stale unit at position `i` sees: for a
    /// fold, those of the units before it; otherwise the previous state.
    pub fn prior_states(&self, store: &CacheStore, i: usize) -> Vec<PathBuf> {
        if self.fold {
            self.units[..i]
                .iter()
                .map(|u| store.entry_dir(&u.unit.key).join(STATE_DIR))
                .collect()
        } else {
            self.previous_state.iter().cloned().collect()
        }
    }
}

/// How a run treats a node.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanMode {
    /// Recompute every unit (`--force`).
    pub force: bool,
    /// Recompute from scratch (`--full`): a fold as one unit over all its
    /// partitions, a global operator without its earlier state.
    pub full: bool,
    /// Units run elsewhere (a cluster): a hit is found by its published
    /// manifest ([`CacheStore::remote_meta`]) and its tables are not pulled
    /// here.
    pub remote: bool,
}

/// What the lock file already says of a node: its previous state.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// State directory of the entry last recorded for a single-unit node, if still cached.
    pub previous_state: Option<PathBuf>,
}

/// Plans `node` given its inputs: its units, their keys, and for each the
/// entry that holds it or why it is stale. A hit is checked
/// ([`CacheStore::probe`]: `meta.json` parses, every file it lists has its
/// recorded size); a damaged entry makes its unit stale.
pub fn plan_node(
    node: &PlanNode,
    inputs: &BTreeMap<String, PortData>,
    stat: &StatCache,
    store: &CacheStore,
    known: Known,
    mode: PlanMode,
) -> Result<NodePlan> {
    let base = key_base(node, inputs, stat)?;
    let units = plan_units(node, inputs, &base, stat, mode.full)?;
    let units = units
        .into_par_iter()
        .map(|unit| {
            let (state, damage) = if mode.full {
                (Err(StaleReason::Full), None)
            } else if mode.force {
                (Err(StaleReason::Forced), None)
            } else if mode.remote {
                match store.remote_meta(&unit.key)? {
                    Some(meta) => (Ok(meta), None),
                    None => (Err(StaleReason::NotInCache), None),
                }
            } else {
                match store.probe(&unit.key) {
                    Probe::Whole(meta) => {
                        store.ensure_published(&meta)?;
                        (Ok(meta), None)
                    }
                    Probe::Missing => (Err(StaleReason::NotInCache), None),
                    Probe::Damaged(d) => (Err(StaleReason::Damaged), Some(d)),
                }
            };
            Ok(PlannedUnit {
                unit,
                state,
                damage,
            })
        })
        .collect::<Result<_>>()?;
    let previous_state = match node.partitioning {
        Partitioning::Global if !mode.full => known.previous_state,
        _ => None,
    };
    Ok(NodePlan {
        base,
        units,
        fold: matches!(node.partitioning, Partitioning::Fold { .. }) && !mode.full,
        previous_state,
    })
}

/// The inputs of `node` from its upstream nodes' outputs (`outputs` is
/// indexed like the plan's nodes; missing upstream outputs are left out).
pub fn node_inputs(
    node: &PlanNode,
    outputs: &[Option<std::sync::Arc<NodeOutput>>],
) -> BTreeMap<String, PortData> {
    let mut inputs = BTreeMap::new();
    for e in &node.inputs {
        if let Some(Some(out)) = outputs.get(e.from)
            && let Some(port) = out.ports.get(&e.from_port)
        {
            inputs.insert(e.port.clone(), port.clone());
        }
    }
    inputs
}
