//! `dflow status` and `dflow explain`: compare what the lock file says
//! produced each node with what would produce it now, without running
//! anything (sources are observed by stat; only changed files are re-hashed).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::cache::lockfile::as_stored;
use crate::cache::{CacheStore, LockFile, NodeLock, StatCache, canonical_json};
use crate::cache::{NodeOutput, PortData};
use crate::compile::{Plan, PlanNode};
use crate::error::Result;
use crate::exec::planner::{KeyBase, Unit, key_base, plan_units};

/// Whether a node's cached outputs match what it would produce now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// The lock file matches the node now and its cache entries are present.
    Fresh,
    /// The node would run again: something it depends on changed (see its causes).
    Stale,
    /// The node has never run, or its cache entries were removed or are
    /// damaged.
    Missing,
}

impl State {
    /// The state as `dflow status` prints it: `FRESH`, `STALE` or `MISSING`.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Fresh => "FRESH",
            State::Stale => "STALE",
            State::Missing => "MISSING",
        }
    }
}

/// Why a node is stale.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "cause", content = "detail", rename_all = "UPPERCASE")]
pub enum Cause {
    /// The operator's version changed.
    Code(String),
    /// Params changed (the fields that did).
    Params(String),
    /// Input data changed.
    Data(String),
    /// An upstream node is not fresh.
    Upstream(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Code(d) => write!(f, "CODE ({d})"),
            Cause::Params(d) => write!(f, "PARAMS ({d})"),
            Cause::Data(d) => write!(f, "DATA ({d})"),
            Cause::Upstream(d) => write!(f, "UPSTREAM ({d})"),
        }
    }
}

/// One node's line in `dflow status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The node's id.
    pub node: String,
    /// The node's operator name.
    pub op: String,
    /// Whether the node is fresh, stale or missing.
    pub state: State,
    /// For STALE: why, one entry per kind of change.
    pub causes: Vec<Cause>,
    /// For MISSING: why.
    pub note: Option<String>,
}

struct Current {
    base: KeyBase,
    units: Vec<Unit>,
}

/// The state of every node, in topological order.
pub fn status(plan: &Plan, store: Option<&CacheStore>, lock: &LockFile) -> Result<Vec<NodeStatus>> {
    let stat = match store {
        Some(s) => StatCache::load(s.root()),
        None => StatCache::load(&plan.spec.base_dir.join(".dflow")),
    };
    let mut fresh_out: Vec<Option<NodeOutput>> = vec![None; plan.nodes.len()];
    let mut out = Vec::new();
    for &i in &plan.order {
        let node = &plan.nodes[i];
        let mut st = NodeStatus {
            node: node.id.clone(),
            op: node.op_name.clone(),
            state: State::Missing,
            causes: Vec::new(),
            note: None,
        };
        let locked = lock.node(&plan.spec.name, &node.id);
        let (Some(locked), Some(store)) = (locked, store) else {
            st.note = Some("never run".into());
            out.push(st);
            continue;
        };
        let stale_up: Vec<&str> = plan
            .upstream(i)
            .into_iter()
            .filter(|u| fresh_out[*u].is_none())
            .map(|u| plan.nodes[u].id.as_str())
            .collect();
        if !stale_up.is_empty() {
            st.state = State::Stale;
            st.causes.push(Cause::Upstream(stale_up.join(", ")));
            out.push(st);
            continue;
        }
        let mut inputs = BTreeMap::new();
        for e in &node.inputs {
            if let Some(o) = &fresh_out[e.from]
                && let Some(p) = o.ports.get(&e.from_port)
            {
                inputs.insert(e.port.clone(), p.clone());
            }
        }
        let base = key_base(node, &inputs, &stat)?;
        let units = plan_units(node, &inputs, &base, &stat, false)?;
        let cur = Current { base, units };
        st.causes = causes(node, &cur, locked);
        if !st.causes.is_empty() {
            st.state = State::Stale;
        } else {
            let mut output = NodeOutput::default();
            let mut missing = false;
            for (port, ty) in &node.outputs {
                match locked
                    .outputs
                    .get(port)
                    .and_then(|o| PortData::from_lock(o, ty.table_schema(), store))
                {
                    Some(d) => {
                        output.ports.insert(port.clone(), d);
                    }
                    None => missing = true,
                }
            }
            if missing {
                st.note = Some(
                    "its cache entries were removed (gc) or are damaged; `dflow run` recomputes them"
                        .into(),
                );
            } else {
                st.state = State::Fresh;
                fresh_out[i] = Some(output);
            }
        }
        out.push(st);
    }
    let _ = stat.save();
    Ok(out)
}

/// Why a node is stale. Only the params the cache key uses are compared
/// (a source's file selection, how often `train` checkpoints cannot make a
/// node stale).
fn causes(node: &PlanNode, cur: &Current, locked: &NodeLock) -> Vec<Cause> {
    let version = node.op.version();
    let mut causes = Vec::new();
    if version != locked.version {
        causes.push(Cause::Code(format!(
            "op version {} -> {version}",
            locked.version
        )));
    }
    let mut diffs = Vec::new();
    diff_values(
        "params",
        &node.selection.key_params(&locked.params),
        &as_stored(&node.key_params),
        &mut diffs,
    );
    if !diffs.is_empty() {
        causes.push(Cause::Params(
            diffs
                .iter()
                .map(|d| d.0.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let mut data = Vec::new();
    for (f, d) in &cur.base.files {
        if locked.files.get(f) != Some(d) {
            data.push(format!("file {f} changed"));
        }
    }
    for (p, d) in &cur.base.inputs {
        if locked.inputs.get(p) != Some(d) {
            data.push(format!("input `{p}` changed"));
        }
    }
    let (added, changed, removed) = unit_changes(cur, locked);
    if !added.is_empty() {
        data.push(format!(
            "{} new partition(s): {}",
            added.len(),
            list(&added)
        ));
    }
    if !changed.is_empty() {
        data.push(format!(
            "{} changed partition(s): {}",
            changed.len(),
            list(&changed)
        ));
    }
    if !removed.is_empty() {
        data.push(format!(
            "{} removed partition(s): {}",
            removed.len(),
            list(&removed)
        ));
    }
    if !data.is_empty() {
        causes.push(Cause::Data(data.join("; ")));
    } else if causes.is_empty() {
        let keys_now: Vec<&str> = cur.units.iter().map(|u| u.key.as_str()).collect();
        let keys_then: Vec<&str> = locked.units.iter().map(|u| u.key.as_str()).collect();
        if keys_now != keys_then {
            causes.push(Cause::Code("cache key format changed".into()));
        }
    }
    causes
}

type Changes = (Vec<String>, Vec<String>, Vec<String>);

fn unit_changes(cur: &Current, locked: &NodeLock) -> Changes {
    let then: BTreeMap<&str, &Option<String>> = locked
        .units
        .iter()
        .filter_map(|u| u.partition.as_deref().map(|p| (p, &u.digest)))
        .collect();
    let now: BTreeMap<&str, &Option<String>> = cur
        .units
        .iter()
        .filter_map(|u| u.partition.as_deref().map(|p| (p, &u.partition_digest)))
        .collect();
    let added = now
        .keys()
        .filter(|p| !then.contains_key(*p))
        .map(|p| p.to_string())
        .collect();
    let changed = now
        .iter()
        .filter(|(p, d)| then.get(*p).is_some_and(|t| t != *d))
        .map(|(p, _)| p.to_string())
        .collect();
    let removed = then
        .keys()
        .filter(|p| !now.contains_key(*p))
        .map(|p| p.to_string())
        .collect();
    (added, changed, removed)
}

fn list(items: &[String]) -> String {
    const MAX: usize = 5;
    let mut s = items
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX {
        s.push_str(&format!(", and {} more", items.len() - MAX));
    }
    s
}

/// Field-level differences between two JSON values: (path, old, new).
pub fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<(String, String, String)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (Some(x), None) => out.push((p, canonical_json(x), "(absent)".into())),
                    (None, Some(y)) => out.push((p, "(absent)".into(), canonical_json(y))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if canonical_json(a) != canonical_json(b) => {
            out.push((path.to_string(), canonical_json(a), canonical_json(b)))
        }
        _ => {}
    }
}

/// `dflow explain NODE`: the field-level difference between the lock file
/// and the key the node would have now.
pub fn explain(
    plan: &Plan,
    store: Option<&CacheStore>,
    lock: &LockFile,
    node_id: &str,
) -> Result<String> {
    let statuses = status(plan, store, lock)?;
    let Some(idx) = plan.index_of(node_id) else {
        return Err(crate::Error::config(format!(
            "no node `{node_id}`; the nodes are: {}",
            plan.nodes
                .iter()
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let node = &plan.nodes[idx];
    let Some(st) = statuses.iter().find(|s| s.node == node_id) else {
        return Err(crate::Error::internal("status lost a node"));
    };
    let mut s = format!("{} ({}): {}\n", node.id, node.op_name, st.state.as_str());
    let Some(locked) = lock.node(&plan.spec.name, node_id) else {
        s.push_str("  not in the lock file: it has never run\n");
        return Ok(s);
    };
    for c in &st.causes {
        s.push_str(&format!("  cause: {c}\n"));
    }
    if let Some(n) = &st.note {
        s.push_str(&format!("  note: {n}\n"));
    }
    if locked.version != node.op.version() {
        s.push_str(&format!(
            "  op version: {} -> {}\n",
            locked.version,
            node.op.version()
        ));
    }
    let mut diffs = Vec::new();
    diff_values(
        "params",
        &locked.params,
        &as_stored(&node.params),
        &mut diffs,
    );
    for (p, a, b) in diffs {
        s.push_str(&format!("  {p}: {a} -> {b}\n"));
    }
    if st.causes.iter().any(|c| matches!(c, Cause::Upstream(_))) {
        s.push_str("  inputs: not comparable until upstream nodes run\n");
        return Ok(s);
    }
    // Recompute the current inputs from the status of upstream nodes.
    let stat = match store {
        Some(st) => StatCache::load(st.root()),
        None => StatCache::load(&plan.spec.base_dir.join(".dflow")),
    };
    let mut inputs = BTreeMap::new();
    if let Some(store) = store {
        for e in &node.inputs {
            let up = &plan.nodes[e.from];
            if let Some(nl) = lock.node(&plan.spec.name, &up.id)
                && let (Some(o), Some(ty)) =
                    (nl.outputs.get(&e.from_port), up.outputs.get(&e.from_port))
                && let Some(d) = PortData::from_lock(o, ty.table_schema(), store)
            {
                inputs.insert(e.port.clone(), d);
            }
        }
    }
    let base = key_base(node, &inputs, &stat)?;
    for (f, d) in &base.files {
        let old = locked
            .files
            .get(f)
            .map(String::as_str)
            .unwrap_or("(absent)");
        if old != d {
            s.push_str(&format!("  file {f}: {} -> {}\n", short(old), short(d)));
        }
    }
    for (p, d) in &base.inputs {
        let old = locked
            .inputs
            .get(p)
            .map(String::as_str)
            .unwrap_or("(absent)");
        if old != d {
            s.push_str(&format!("  input {p}: {} -> {}\n", short(old), short(d)));
        }
    }
    let units = plan_units(node, &inputs, &base, &stat, false)?;
    let cur = Current { base, units };
    let (added, changed, removed) = unit_changes(&cur, locked);
    for p in added {
        s.push_str(&format!("  partition {p}: new\n"));
    }
    for p in changed {
        s.push_str(&format!("  partition {p}: content changed\n"));
    }
    for p in removed {
        s.push_str(&format!("  partition {p}: removed\n"));
    }
    if cur.units.len() == 1 && locked.units.len() == 1 && cur.units[0].key != locked.units[0].key {
        s.push_str(&format!(
            "  key: {} -> {}\n",
            short(&locked.units[0].key),
            short(&cur.units[0].key)
        ));
    }
    Ok(s)
}

fn short(d: &str) -> &str {
    d.get(..12).unwrap_or(d)
}
