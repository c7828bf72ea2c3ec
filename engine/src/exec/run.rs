//! The scheduler: runs the selected nodes of a plan in topological order,
//! independent nodes concurrently, each unit either found in the cache or
//! computed in a staging directory and committed atomically.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::store::{digest_dir, unix_ms, write_atomic};
use crate::cache::{CacheStore, EntryMeta, EntryOutput, LockFile, NodeLock, StatCache, UnitLock};
use crate::compile::{Plan, PlanNode};
use crate::error::{Error, Result, ResultExt};
use crate::exec::progress::{Event, Reporter, UnitStatus};
use crate::exec::units::{KeyBase, NodeOutput, PortData, Unit, key_base, plan_units};
use crate::operator::{
    ArtifactInput, Input, Outputs, PartRef, Partitioning, PortType, RowCounter, STATE_DIR,
    TableInput, Task,
};
use crate::table::WrittenPart;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run only these nodes; their inputs come from the cache.
    pub only: Vec<String>,
    /// Run these nodes and everything upstream of them.
    pub until: Vec<String>,
    /// Recompute these nodes even where the cache has them.
    pub force: Vec<String>,
    /// Recompute these nodes from scratch: a fold as one unit over all its
    /// partitions, a global operator without its earlier state.
    pub full: Vec<String>,
    /// Nodes run at once (0: one per core).
    pub jobs: usize,
    /// Wait for another run holding the cache instead of failing.
    pub wait: bool,
}

/// One row of `dflow_runs`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub pipeline: String,
    pub node: String,
    pub op: String,
    pub partition: Option<String>,
    /// `hit`, `computed`, `failed` or `skipped`.
    pub status: String,
    pub rows: u64,
    pub seconds: f64,
    pub started_unix_ms: u64,
    /// What a computed unit's operator said of its work (`embed`: how many
    /// texts it embedded and how many it read from the vector store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub run_id: String,
    pub ok: bool,
    pub computed: usize,
    pub hits: usize,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
}

/// Where a pipeline keeps its cache and lock file.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub store: CacheStore,
    pub lock_path: PathBuf,
}

impl Workspace {
    /// The default layout: `.dflow/` and `dflow.lock` beside the pipeline
    /// file, unless `cache_dir` is given.
    pub fn for_plan(plan: &Plan, cache_dir: Option<&Path>) -> Result<Self> {
        let root = cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| plan.spec.base_dir.join(".dflow"));
        let store = CacheStore::open(&root)?;
        Ok(Self {
            store,
            lock_path: crate::cache::lockfile::lock_path(&plan.spec.base_dir),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NodeState {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

struct State {
    deps: Vec<usize>,
    ready: VecDeque<usize>,
    state: Vec<NodeState>,
    outputs: Vec<Option<Arc<NodeOutput>>>,
    remaining: usize,
}

struct Runner<'a> {
    plan: &'a Plan,
    store: &'a CacheStore,
    opts: &'a RunOptions,
    reporter: &'a dyn Reporter,
    stat: StatCache,
    lock: Mutex<LockFile>,
    /// Whether any node's lock entry changed in this run.
    lock_dirty: std::sync::atomic::AtomicBool,
    lock_path: PathBuf,
    records: Mutex<Vec<RunRecord>>,
    run_id: String,
    started_ms: u64,
}

/// Runs a compiled pipeline.
pub fn run(
    plan: &Plan,
    ws: &Workspace,
    opts: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<RunSummary> {
    let store = &ws.store;
    let _writer = store.writer_lock(opts.wait, |msg| {
        reporter.report(&Event::Waiting { message: msg })
    })?;
    store.clean_tmp()?;
    if let Some(dir) = ws.lock_path.parent() {
        crate::cache::store::remove_tmp_files(dir);
    }
    let selected = select(plan, opts)?;
    let run_id = format!("{}-{}", unix_ms(), std::process::id());
    let runner = Runner {
        plan,
        store,
        opts,
        reporter,
        stat: StatCache::load(store.root()),
        lock: Mutex::new(LockFile::load(&ws.lock_path)?),
        lock_dirty: std::sync::atomic::AtomicBool::new(false),
        lock_path: ws.lock_path.clone(),
        records: Mutex::new(Vec::new()),
        run_id: run_id.clone(),
        started_ms: unix_ms(),
    };
    let started = Instant::now();
    reporter.report(&Event::RunStarted {
        pipeline: &plan.spec.name,
        run_id: &run_id,
        nodes: selected.iter().filter(|s| **s).count(),
    });
    let summary = runner.schedule(&selected);
    let all_selected = selected.iter().all(|s| *s);
    runner.finish(all_selected)?;
    reporter.report(&Event::RunFinished {
        ok: summary.ok,
        computed: summary.computed,
        hits: summary.hits,
        failed: summary.failed.len(),
        skipped: summary.skipped.len(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(RunSummary { run_id, ..summary })
}

/// Which nodes a run touches.
fn select(plan: &Plan, opts: &RunOptions) -> Result<Vec<bool>> {
    let lookup = |name: &str| {
        plan.index_of(name).ok_or_else(|| {
            Error::config(format!(
                "no node `{name}` in pipeline `{}`; its nodes are: {}",
                plan.spec.name,
                plan.nodes
                    .iter()
                    .map(|n| n.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    for f in &opts.force {
        lookup(f)?;
    }
    if opts.only.is_empty() && opts.until.is_empty() {
        return Ok(vec![true; plan.nodes.len()]);
    }
    let mut selected = vec![false; plan.nodes.len()];
    for name in &opts.until {
        for i in plan.ancestors(lookup(name)?) {
            selected[i] = true;
        }
    }
    for name in &opts.only {
        selected[lookup(name)?] = true;
    }
    Ok(selected)
}

impl Runner<'_> {
    fn schedule(&self, selected: &[bool]) -> RunSummary {
        let plan = self.plan;
        let n = plan.nodes.len();
        let mut st = State {
            deps: vec![0; n],
            ready: VecDeque::new(),
            state: vec![NodeState::Done; n],
            outputs: vec![None; n],
            remaining: 0,
        };
        let mut early_failures = Vec::new();
        for &i in &plan.order {
            if !selected[i] {
                continue;
            }
            st.state[i] = NodeState::Waiting;
            st.remaining += 1;
            for up in plan.upstream(i) {
                if selected[up] {
                    st.deps[i] += 1;
                } else if st.outputs[up].is_none() {
                    match self.output_from_lock(up) {
                        Some(o) => st.outputs[up] = Some(Arc::new(o)),
                        None => early_failures.push((
                            i,
                            Error::config(format!(
                                "its input `{}` has no output in the cache; run `dflow run --until {}` first",
                                plan.nodes[up].id, plan.nodes[up].id
                            )),
                        )),
                    }
                }
            }
        }
        let summary = Mutex::new(RunSummary {
            ok: true,
            ..Default::default()
        });
        for (i, e) in early_failures {
            if st.state[i] == NodeState::Waiting {
                self.fail(&mut st, i, &e, &summary);
            }
        }
        for &i in &plan.order {
            if st.state[i] == NodeState::Waiting && st.deps[i] == 0 {
                st.ready.push_back(i);
            }
        }
        let shared = (Mutex::new(st), Condvar::new());
        let jobs = if self.opts.jobs == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.opts.jobs
        };
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| self.worker(&shared, &summary));
            }
        });
        summary.into_inner().unwrap_or_default()
    }

    fn worker(&self, shared: &(Mutex<State>, Condvar), summary: &Mutex<RunSummary>) {
        let (lock, cv) = shared;
        loop {
            let (idx, inputs) = {
                let Ok(mut st) = lock.lock() else { return };
                let idx = loop {
                    if let Some(i) = st.ready.pop_front() {
                        break i;
                    }
                    if st.remaining == 0 {
                        return;
                    }
                    st = match cv.wait(st) {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                };
                st.state[idx] = NodeState::Running;
                let node = &self.plan.nodes[idx];
                let mut inputs = BTreeMap::new();
                for e in &node.inputs {
                    if let Some(out) = &st.outputs[e.from]
                        && let Some(port) = out.ports.get(&e.from_port)
                    {
                        inputs.insert(e.port.clone(), port.clone());
                    }
                }
                (idx, inputs)
            };
            let result = self.execute_node(idx, &inputs, summary);
            let Ok(mut st) = lock.lock() else { return };
            match result {
                Ok(out) => {
                    st.state[idx] = NodeState::Done;
                    st.outputs[idx] = Some(Arc::new(out));
                    st.remaining -= 1;
                    for d in self.plan.downstream(idx) {
                        if st.state[d] == NodeState::Waiting {
                            st.deps[d] = st.deps[d].saturating_sub(1);
                            if st.deps[d] == 0 {
                                st.ready.push_back(d);
                            }
                        }
                    }
                }
                Err(e) => {
                    st.state[idx] = NodeState::Running;
                    self.fail(&mut st, idx, &e, summary);
                }
            }
            cv.notify_all();
        }
    }

    /// Marks a node failed and everything downstream of it skipped.
    fn fail(&self, st: &mut State, idx: usize, e: &Error, summary: &Mutex<RunSummary>) {
        let node = &self.plan.nodes[idx];
        let msg = error_chain(e);
        self.reporter.report(&Event::NodeFailed {
            node: &node.id,
            code: e.code(),
            error: &msg,
        });
        self.record(node, None, "failed", 0, 0.0, None);
        st.state[idx] = NodeState::Failed;
        st.remaining -= 1;
        if let Ok(mut s) = summary.lock() {
            s.ok = false;
            s.failed.push((node.id.clone(), msg));
        }
        let mut stack = self.plan.downstream(idx);
        while let Some(d) = stack.pop() {
            if st.state[d] != NodeState::Waiting {
                continue;
            }
            st.state[d] = NodeState::Skipped;
            st.remaining -= 1;
            let because = format!("upstream `{}` failed", node.id);
            self.reporter.report(&Event::NodeSkipped {
                node: &self.plan.nodes[d].id,
                because: &because,
            });
            self.record(&self.plan.nodes[d], None, "skipped", 0, 0.0, None);
            if let Ok(mut s) = summary.lock() {
                s.ok = false;
                s.skipped.push(self.plan.nodes[d].id.clone());
            }
            stack.extend(self.plan.downstream(d));
        }
    }

    fn output_from_lock(&self, idx: usize) -> Option<NodeOutput> {
        let node = &self.plan.nodes[idx];
        let lock = self.lock.lock().ok()?;
        let nl = lock.node(&self.plan.spec.name, &node.id)?;
        let mut out = NodeOutput::default();
        for (port, ty) in &node.outputs {
            let data = PortData::from_lock(nl.outputs.get(port)?, ty, self.store)?;
            out.ports.insert(port.clone(), data);
        }
        Some(out)
    }

    fn record(
        &self,
        node: &PlanNode,
        partition: Option<&str>,
        status: &str,
        rows: u64,
        secs: f64,
        note: Option<String>,
    ) {
        if let Ok(mut r) = self.records.lock() {
            r.push(RunRecord {
                run_id: self.run_id.clone(),
                pipeline: self.plan.spec.name.clone(),
                node: node.id.clone(),
                op: node.op_name.clone(),
                partition: partition.map(str::to_string),
                status: status.to_string(),
                rows,
                seconds: secs,
                started_unix_ms: self.started_ms,
                note,
            });
        }
    }

    fn execute_node(
        &self,
        idx: usize,
        inputs: &BTreeMap<String, PortData>,
        summary: &Mutex<RunSummary>,
    ) -> Result<NodeOutput> {
        let node = &self.plan.nodes[idx];
        let started = Instant::now();
        let base = key_base(node, inputs, &self.stat)?;
        let full = self.opts.full.iter().any(|f| f == &node.id);
        let units = plan_units(node, inputs, &base, &self.stat, full)?;
        let force = full || self.forced(node);
        let known = self.known_entries(node);
        let hits: Vec<Option<EntryMeta>> = units
            .iter()
            .map(|u| {
                if force {
                    None
                } else if let Some(meta) = known.get(&u.key)
                    && self.store.contains(&u.key)
                {
                    // The lock file already says what this entry holds.
                    Some(meta.clone())
                } else {
                    self.store.lookup(&u.key)
                }
            })
            .collect();
        let rows = Arc::new(RowCounter::default());
        self.reporter.report(&Event::NodeStarted {
            node: &node.id,
            op: &node.op_name,
            units: units.len(),
            to_compute: hits.iter().filter(|h| h.is_none()).count(),
            rows: rows.clone(),
        });
        let fold = matches!(node.partitioning, Partitioning::Fold { .. }) && !full;
        // A global operator may reuse what its previous computation left
        // (`align` keeps results per origin); `--full` goes without.
        let previous_state: Vec<PathBuf> = match node.partitioning {
            Partitioning::Global if !full => self.previous_state(node).into_iter().collect(),
            _ => Vec::new(),
        };
        let run_unit = |(i, (unit, hit)): (usize, (&Unit, Option<EntryMeta>))| {
            let t = Instant::now();
            let (meta, status, note) = match hit {
                Some(meta) => (meta, UnitStatus::Hit, None),
                None => {
                    let prior: Vec<PathBuf> = if fold {
                        units[..i]
                            .iter()
                            .map(|u| self.store.entry_dir(&u.key).join(STATE_DIR))
                            .collect()
                    } else {
                        previous_state.clone()
                    };
                    let (meta, note) = self
                        .compute_unit(node, unit, inputs, &base, &rows, &prior)
                        .context(|| match &unit.partition {
                            Some(p) => format!("partition `{p}`"),
                            None => "computing".to_string(),
                        })?;
                    (meta, UnitStatus::Computed, note)
                }
            };
            let unit_rows = meta.outputs.get("out").map(EntryOutput::rows).unwrap_or(0);
            let secs = t.elapsed().as_secs_f64();
            self.reporter.report(&Event::UnitFinished {
                node: &node.id,
                partition: unit.partition.as_deref(),
                status,
                rows: unit_rows,
                seconds: secs,
                note: note.as_deref(),
            });
            self.record(
                node,
                unit.partition.as_deref(),
                status.as_str(),
                unit_rows,
                secs,
                note,
            );
            Ok((meta, status))
        };
        // A fold's units see each other's state: run them in order, and stop
        // at the first failure.
        let results: Vec<Result<(EntryMeta, UnitStatus)>> = if fold {
            let mut results = Vec::with_capacity(units.len());
            for item in units.iter().zip(hits).enumerate() {
                let r = run_unit(item);
                let failed = r.is_err();
                results.push(r);
                if failed {
                    break;
                }
            }
            results
        } else {
            units
                .par_iter()
                .zip(hits)
                .enumerate()
                .map(run_unit)
                .collect()
        };
        let mut metas = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(m) => metas.push(m),
                Err(e) => errors.push(e),
            }
        }
        let (n_hit, n_comp) = (
            metas.iter().filter(|m| m.1 == UnitStatus::Hit).count(),
            metas.iter().filter(|m| m.1 == UnitStatus::Computed).count(),
        );
        if let Ok(mut s) = summary.lock() {
            s.hits += n_hit;
            s.computed += n_comp;
        }
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }
        let output = self.assemble(node, &units, &metas)?;
        self.update_lock(node, &base, &units, &output)?;
        node.op
            .publish(&node.ctx, &output)
            .context(|| format!("publishing the output of `{}`", node.id))?;
        self.reporter.report(&Event::NodeFinished {
            node: &node.id,
            hits: n_hit,
            computed: n_comp,
            rows: output.rows(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(output)
    }

    /// What the lock file records about this node's entries, by key, so a
    /// cache hit needs only a `stat`, not a `meta.json` read (a no-op run
    /// over 10,000 partitions stays fast).
    fn known_entries(&self, node: &PlanNode) -> std::collections::HashMap<String, EntryMeta> {
        let mut known = std::collections::HashMap::new();
        let Ok(lock) = self.lock.lock() else {
            return known;
        };
        let Some(nl) = lock.node(&self.plan.spec.name, &node.id) else {
            return known;
        };
        if nl.version != node.op.version() {
            return known;
        }
        // Parts by the entry that holds them.
        let mut by_key: std::collections::HashMap<&str, BTreeMap<String, EntryOutput>> =
            std::collections::HashMap::new();
        for (port, out) in &nl.outputs {
            match out {
                crate::cache::OutputLock::Table { parts, .. } => {
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
                crate::cache::OutputLock::Artifact { digest, key, dir } => {
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
                    format: crate::cache::store::ENTRY_FORMAT,
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
    fn previous_state(&self, node: &PlanNode) -> Option<PathBuf> {
        let lock = self.lock.lock().ok()?;
        let nl = lock.node(&self.plan.spec.name, &node.id)?;
        if nl.version != node.op.version() {
            return None;
        }
        let unit = nl.units.first()?;
        let dir = self.store.entry_dir(&unit.key).join(STATE_DIR);
        (self.store.contains(&unit.key) && dir.is_dir()).then_some(dir)
    }

    /// Whether `--force` names this node.
    fn forced(&self, node: &PlanNode) -> bool {
        self.opts.force.iter().any(|f| f == &node.id)
    }

    fn compute_unit(
        &self,
        node: &PlanNode,
        unit: &Unit,
        inputs: &BTreeMap<String, PortData>,
        base: &KeyBase,
        rows: &Arc<RowCounter>,
        prior_states: &[PathBuf],
    ) -> Result<(EntryMeta, Option<String>)> {
        let started = Instant::now();
        let staging = self.store.stage()?;
        let mut outputs = Outputs {
            dir: staging.dir.clone(),
            schemas: node.outputs.clone(),
            default_partition: unit.partition.clone().unwrap_or_else(|| "all".into()),
            tables: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            rows: rows.clone(),
            note: None,
        };
        let partitioned_port = node.partitioning.port();
        let task_inputs: BTreeMap<String, Input> = inputs
            .iter()
            .map(|(port, data)| {
                let input = match data {
                    PortData::Table { schema, parts, .. } => Input::Table(TableInput {
                        schema: schema.clone(),
                        // A `--full` fold unit has no input part: it reads all.
                        parts: if Some(port.as_str()) == partitioned_port
                            && unit.input_part.is_some()
                        {
                            unit.input_part.iter().cloned().collect()
                        } else {
                            parts.clone()
                        },
                    }),
                    PortData::Artifact { dir, digest, .. } => Input::Artifact(ArtifactInput {
                        dir: dir.clone(),
                        digest: digest.clone(),
                    }),
                };
                (port.clone(), input)
            })
            .collect();
        let work = self.store.work_dir(&unit.key);
        let memo = self.store.memo_dir();
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
            prior_states,
            work: &work,
            memo: &memo,
        };
        match catch_unwind(AssertUnwindSafe(|| node.op.execute(&mut task))) {
            Ok(r) => r?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(Error::internal(format!(
                    "operator `{}` panicked: {what}",
                    node.op_name
                )));
            }
        }
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
        let meta = EntryMeta {
            format: crate::cache::store::ENTRY_FORMAT,
            key: unit.key.clone(),
            op: node.op_name.clone(),
            version: node.op.version(),
            node: node.id.clone(),
            params: node.key_params.clone(),
            inputs: base.inputs.clone(),
            partition_digest: unit.partition_digest.clone(),
            outputs: entry_outputs,
            created_unix_ms: unix_ms(),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.store.commit(staging, &meta, self.forced(node))?;
        if work.exists() {
            let _ = std::fs::remove_dir_all(&work);
        }
        Ok((meta, outputs.note.take()))
    }

    /// A node's output from its units' entries.
    fn assemble(
        &self,
        node: &PlanNode,
        units: &[Unit],
        metas: &[(EntryMeta, UnitStatus)],
    ) -> Result<NodeOutput> {
        let mut out = NodeOutput::default();
        for (port, ty) in &node.outputs {
            match ty {
                PortType::Table(schema) => {
                    let mut parts: Vec<(PartRef, (String, PathBuf))> = Vec::new();
                    for (unit, (meta, _)) in units.iter().zip(metas) {
                        let Some(EntryOutput::Table { parts: written }) = meta.outputs.get(port)
                        else {
                            return Err(Error::internal(format!(
                                "cache entry {} has no table `{port}`",
                                meta.key
                            )));
                        };
                        let dir = self.store.entry_dir(&meta.key);
                        for w in written {
                            let name = match (&node.partitioning, &unit.partition) {
                                (Partitioning::Global, _) | (_, None) => w.partition.clone(),
                                (_, Some(p)) => p.clone(),
                            };
                            parts.push((
                                PartRef {
                                    name,
                                    path: dir.join(&w.file),
                                    digest: w.digest.clone(),
                                    rows: w.rows,
                                },
                                (meta.key.clone(), w.file.clone()),
                            ));
                        }
                    }
                    parts.sort_by(|a, b| a.0.name.cmp(&b.0.name));
                    let (parts, entries) = parts.into_iter().unzip();
                    out.ports.insert(
                        port.clone(),
                        PortData::Table {
                            schema: schema.clone(),
                            parts,
                            entries,
                        },
                    );
                }
                PortType::Artifact => {
                    let [(meta, _)] = metas else {
                        return Err(Error::internal(format!(
                            "artifact port `{port}` of `{}` needs exactly one unit",
                            node.id
                        )));
                    };
                    let Some(EntryOutput::Artifact { dir, digest, .. }) = meta.outputs.get(port)
                    else {
                        return Err(Error::internal(format!(
                            "cache entry {} has no artifact `{port}`",
                            meta.key
                        )));
                    };
                    out.ports.insert(
                        port.clone(),
                        PortData::Artifact {
                            dir: self.store.entry_dir(&meta.key).join(dir),
                            digest: digest.clone(),
                            key: meta.key.clone(),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    fn update_lock(
        &self,
        node: &PlanNode,
        base: &KeyBase,
        units: &[Unit],
        output: &NodeOutput,
    ) -> Result<()> {
        let entry = NodeLock {
            op: node.op_name.clone(),
            version: node.op.version(),
            params: node.params.clone(),
            files: base.files.clone(),
            inputs: base.inputs.clone(),
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
            .lock
            .lock()
            .map_err(|_| Error::internal("lock file mutex poisoned"))?;
        lock.format = crate::cache::lockfile::LOCK_FORMAT;
        let nodes = &mut lock
            .pipelines
            .entry(self.plan.spec.name.clone())
            .or_default()
            .nodes;
        if nodes.get(&node.id) == Some(&entry) {
            return Ok(());
        }
        nodes.insert(node.id.clone(), entry);
        self.lock_dirty
            .store(true, std::sync::atomic::Ordering::Relaxed);
        lock.save(&self.lock_path)
    }

    fn finish(&self, all_selected: bool) -> Result<()> {
        self.stat.save()?;
        if let Ok(mut lock) = self.lock.lock() {
            let mut dirty = self.lock_dirty.load(std::sync::atomic::Ordering::Relaxed);
            if all_selected && let Some(p) = lock.pipelines.get_mut(&self.plan.spec.name) {
                let before = p.nodes.len();
                p.nodes
                    .retain(|id, _| self.plan.nodes.iter().any(|n| &n.id == id));
                dirty |= p.nodes.len() != before;
            }
            if dirty || !self.lock_path.exists() {
                lock.save(&self.lock_path)?;
            }
        }
        register_lock_file(self.store, &self.lock_path)?;
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(
            &self
                .store
                .root()
                .join("runs")
                .join(format!("{}.jsonl", self.run_id)),
            text.as_bytes(),
        )
    }
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

/// An error and its causes on one line.
pub fn error_chain(e: &Error) -> String {
    e.to_string()
}

/// Reads every run record of a cache.
pub fn load_run_records(store: &CacheStore) -> Vec<RunRecord> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.root().join("runs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<RunRecord>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}
