//! A run: selects the nodes, hands them to the [`scheduler`], and for each
//! node plans its units ([`planner`]), runs the stale ones
//! ([`unit`]) — a fold's in order, the others in parallel — assembles the
//! node's output, records it in the lock file ([`lockstate`]) and the run
//! log ([`runlog`]), and publishes it.
//!
//! [`scheduler`]: crate::exec::scheduler
//! [`planner`]: crate::exec::planner
//! [`unit`]: crate::exec::unit
//! [`lockstate`]: crate::exec::lockstate
//! [`runlog`]: crate::exec::runlog

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use crate::cache::pipelines;
use crate::cache::store::unix_ms;
use crate::cache::{
    CacheStore, EntryMeta, EntryOutput, NodeOutput, PortData, SharedCache, StatCache,
};
use crate::compile::{Plan, PlanNode};
use crate::error::{Error, Result, ResultExt};
use crate::exec::lockstate::LockState;
use crate::exec::planner::{NodePlan, PlanMode, PlannedUnit, plan_node};
use crate::exec::progress::{Event, Reporter, UnitStatus};
use crate::exec::remote::{RemoteUnits, TaskDone, UnitTask};
use crate::exec::runlog::{Entry, RunLog};
use crate::exec::scheduler::{Cancel, NodeRunner, Schedule, schedule};
use crate::exec::unit::{UnitJob, run_unit};
use crate::operator::{Partitioning, PortType};
use crate::ports::OUT;
use crate::storage::Location;
use crate::table::{CachedPart, RowCounter};

pub use crate::exec::runlog::{RunRecord, load_run_records};

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
    /// Stops the run when set (from another thread).
    pub cancel: Cancel,
    /// Where stale units run when not in this process (a cluster).
    pub remote: Option<Remote>,
}

/// Units run elsewhere ([`RemoteUnits`]), and the name of where.
#[derive(Clone)]
pub struct Remote(pub Arc<dyn RemoteUnits>);

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// The run's id (names its run log).
    pub run_id: String,
    /// Whether every selected node ran.
    pub ok: bool,
    /// Units computed.
    pub computed: usize,
    /// Units found in the cache.
    pub hits: usize,
    /// Failed nodes and their error.
    pub failed: Vec<(String, String)>,
    /// Nodes that did not run (downstream of a failure, or cancelled).
    pub skipped: Vec<String>,
    /// Whether the run was cancelled.
    pub cancelled: bool,
}

/// Where a pipeline keeps its cache and lock file.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The cache.
    pub store: CacheStore,
    /// Where the lock file is.
    pub lock_path: PathBuf,
}

impl Workspace {
    /// The default layout: `.dflow/` and `dflow.lock` beside the pipeline
    /// file, unless `cache_dir` is given. A `cache_dir` that is an object
    /// store URL (`s3://bucket/prefix`) is the cache's shared tier, with
    /// `.dflow/` beside the pipeline as its local working copy.
    pub fn for_plan(plan: &Plan, cache_dir: Option<&Path>) -> Result<Self> {
        let (root, shared) = cache_location(plan, cache_dir)?;
        let mut store = CacheStore::open(&root)?;
        if let Some(shared) = shared {
            store = store.with_shared(shared);
        }
        Ok(Self {
            store,
            lock_path: crate::cache::lockfile::lock_path(&plan.spec.base_dir),
        })
    }
}

/// The local cache directory of `plan`, and its shared tier if `cache_dir`
/// names one in an object store.
pub fn cache_location(
    plan: &Plan,
    cache_dir: Option<&Path>,
) -> Result<(PathBuf, Option<SharedCache>)> {
    let beside = || plan.spec.base_dir.join(".dflow");
    let Some(dir) = cache_dir else {
        return Ok((beside(), None));
    };
    match Location::parse(&dir.to_string_lossy(), &plan.spec.base_dir)? {
        Location::Local(path) => Ok((path, None)),
        Location::Object(url) => Ok((beside(), Some(SharedCache::open(&url)?))),
    }
}

/// With a shared tier, registers there the keys the lock file references,
/// so that `gc` on any machine keeps them.
fn register_shared(store: &CacheStore, plan: &Plan, lock_path: &Path) -> Result<()> {
    let Some(shared) = store.shared() else {
        return Ok(());
    };
    let lock = crate::cache::LockFile::load(lock_path)?;
    let keys = lock.referenced_keys().map(str::to_string).collect();
    shared.register(lock_path, &plan.spec.name, keys)
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
    // Machines sharing a store have no common lock file: one run of a
    // pipeline at a time holds its lease there.
    let _lease = match store.shared() {
        Some(shared) => Some(shared.lease(&plan.spec.name, opts.wait, &|msg| {
            reporter.report(&Event::Waiting { message: msg })
        })?),
        None => None,
    };
    store.clean_tmp()?;
    if let Some(dir) = ws.lock_path.parent() {
        crate::cache::store::remove_tmp_files(dir);
    }
    let selected = select(plan, opts)?;
    let started_ms = unix_ms();
    let run_id = format!("{started_ms}-{}", std::process::id());
    let lock = LockState::load(&plan.spec.name, &ws.lock_path)?;
    // Registered before any unit runs: what an interrupted run commits is
    // kept by every pipeline's `gc` until a run of this one finishes.
    pipelines::run_started(store, &ws.lock_path, &plan.spec.path, started_ms)?;
    register_shared(store, plan, &ws.lock_path)?;
    let runner = Runner {
        plan,
        store,
        opts,
        reporter,
        stat: StatCache::load(store.root()),
        lock,
        log: RunLog::new(run_id.clone(), plan.spec.name.clone(), started_ms),
        units: Mutex::new((0, 0)),
    };
    let started = Instant::now();
    reporter.report(&Event::RunStarted {
        pipeline: &plan.spec.name,
        run_id: &run_id,
        nodes: selected.iter().filter(|s| **s).count(),
    });
    let (given, unrunnable) = runner.outputs_outside(&selected);
    let outcome = schedule(
        Schedule {
            plan,
            selected: &selected,
            given,
            unrunnable,
            jobs: opts.jobs,
            cancel: opts.cancel.clone(),
        },
        &runner,
    );
    runner.stat.save()?;
    let all_selected = selected.iter().all(|s| *s);
    runner.lock.finish(plan, all_selected)?;
    pipelines::run_finished(
        store,
        &ws.lock_path,
        &plan.spec.path,
        all_selected && outcome.ok(),
    )?;
    register_shared(store, plan, &ws.lock_path)?;
    runner.log.save(store)?;
    let (hits, computed) = runner.units.lock().map(|u| *u).unwrap_or_default();
    let summary = RunSummary {
        run_id,
        ok: outcome.ok(),
        computed,
        hits,
        failed: outcome
            .failed
            .iter()
            .map(|(i, e)| (plan.nodes[*i].id.clone(), e.clone()))
            .collect(),
        skipped: outcome
            .skipped
            .iter()
            .map(|i| plan.nodes[*i].id.clone())
            .collect(),
        cancelled: outcome.cancelled,
    };
    reporter.report(&Event::RunFinished {
        ok: summary.ok,
        computed: summary.computed,
        hits: summary.hits,
        failed: summary.failed.len(),
        skipped: summary.skipped.len(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(summary)
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

/// Runs the nodes the scheduler hands it.
struct Runner<'a> {
    plan: &'a Plan,
    store: &'a CacheStore,
    opts: &'a RunOptions,
    reporter: &'a dyn Reporter,
    stat: StatCache,
    lock: LockState,
    log: RunLog,
    /// Units found in the cache and computed, over every node.
    units: Mutex<(usize, usize)>,
}

impl NodeRunner for Runner<'_> {
    fn run_node(&self, idx: usize, inputs: BTreeMap<String, PortData>) -> Result<NodeOutput> {
        self.execute_node(&self.plan.nodes[idx], &inputs)
    }

    fn node_failed(&self, idx: usize, error: &Error) {
        let node = &self.plan.nodes[idx];
        self.reporter.report(&Event::NodeFailed {
            node: &node.id,
            code: error.code(),
            error: &error.to_string(),
        });
        self.log.record_node(node, "failed");
    }

    fn node_skipped(&self, idx: usize, because: &str) {
        let node = &self.plan.nodes[idx];
        self.reporter.report(&Event::NodeSkipped {
            node: &node.id,
            because,
        });
        self.log.record_node(node, "skipped");
    }
}

impl Runner<'_> {
    /// The outputs of unselected nodes that selected nodes read, from the
    /// lock file; a selected node whose input has none cannot run.
    #[allow(clippy::type_complexity)]
    fn outputs_outside(
        &self,
        selected: &[bool],
    ) -> (Vec<Option<Arc<NodeOutput>>>, Vec<(usize, Error)>) {
        let plan = self.plan;
        let mut given: Vec<Option<Arc<NodeOutput>>> = vec![None; plan.nodes.len()];
        let mut unrunnable = Vec::new();
        for &i in &plan.order {
            if !selected[i] {
                continue;
            }
            for up in plan.upstream(i) {
                if selected[up] || given[up].is_some() {
                    continue;
                }
                match self.lock.output_of(&plan.nodes[up], self.store) {
                    Some(o) => given[up] = Some(Arc::new(o)),
                    None => unrunnable.push((
                        i,
                        Error::config(format!(
                            "its input `{}` has no output in the cache; run `dflow run --until {}` first",
                            plan.nodes[up].id, plan.nodes[up].id
                        )),
                    )),
                }
            }
        }
        (given, unrunnable)
    }

    fn mode(&self, node: &PlanNode) -> PlanMode {
        let full = self.opts.full.iter().any(|f| f == &node.id);
        PlanMode {
            force: full || self.forced(node),
            full,
            remote: self.opts.remote.is_some(),
        }
    }

    /// Whether `--force` names this node.
    fn forced(&self, node: &PlanNode) -> bool {
        self.opts.force.iter().any(|f| f == &node.id)
    }

    fn execute_node(
        &self,
        node: &PlanNode,
        inputs: &BTreeMap<String, PortData>,
    ) -> Result<NodeOutput> {
        let started = Instant::now();
        let known = self.lock.known(node, self.store);
        let plan = plan_node(node, inputs, &self.stat, self.store, known, self.mode(node))?;
        for planned in &plan.units {
            if let Some(damage) = &planned.damage {
                let unit = &planned.unit;
                self.reporter.report(&Event::Warning {
                    message: &format!(
                        "cache entry {} ({}{}) is damaged: {damage}; recomputing it",
                        self.store.entry_dir(&unit.key).display(),
                        node.id,
                        unit.partition
                            .as_deref()
                            .map(|p| format!(", partition {p}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        let rows = Arc::new(RowCounter::default());
        self.reporter.report(&Event::NodeStarted {
            node: &node.id,
            op: &node.op_name,
            units: plan.units.len(),
            to_compute: plan.stale(),
            rows: rows.clone(),
        });
        let results = self.run_units(node, inputs, &plan, &rows);
        let mut metas = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(m) => metas.push(m),
                Err(e) => errors.push(e),
            }
        }
        let n_hit = metas.iter().filter(|m| m.1 == UnitStatus::Hit).count();
        let n_comp = metas.len() - n_hit;
        if let Ok(mut u) = self.units.lock() {
            u.0 += n_hit;
            u.1 += n_comp;
        }
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }
        let units: Vec<&crate::exec::planner::Unit> = plan.units.iter().map(|u| &u.unit).collect();
        let output = assemble(self.store, node, &units, &metas)?;
        self.lock
            .record_node(node, &plan.base.files, &plan.base.inputs, &units, &output)?;
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

    /// Runs every unit of a node: a fold's in order (each sees the earlier
    /// ones' state), stopping at the first failure; the others in parallel,
    /// or on a cluster as one batch.
    fn run_units(
        &self,
        node: &PlanNode,
        inputs: &BTreeMap<String, PortData>,
        plan: &NodePlan,
        rows: &Arc<RowCounter>,
    ) -> Vec<Result<(EntryMeta, UnitStatus)>> {
        if let Some(remote) = &self.opts.remote {
            return self.run_remote_batch(&remote.0, node, inputs, plan);
        }
        let run = |(i, planned): (usize, &PlannedUnit)| {
            let t = Instant::now();
            let found = match &planned.state {
                Ok(meta) => Ok(Found::hit(meta)),
                Err(_) => self.compute(node, inputs, plan, i, rows),
            };
            self.report_unit(node, &planned.unit, found, t)
        };
        if plan.fold {
            let mut results = Vec::with_capacity(plan.units.len());
            for item in plan.units.iter().enumerate() {
                let r = run(item);
                let failed = r.is_err();
                results.push(r);
                if failed {
                    break;
                }
            }
            results
        } else {
            plan.units.par_iter().enumerate().map(run).collect()
        }
    }

    /// The job of the stale unit at position `i`.
    fn job<'p>(
        &self,
        node: &'p PlanNode,
        inputs: &'p BTreeMap<String, PortData>,
        plan: &'p NodePlan,
        i: usize,
        prior: &'p [PathBuf],
    ) -> UnitJob<'p> {
        UnitJob {
            node,
            unit: &plan.units[i].unit,
            inputs,
            input_digests: &plan.base.inputs,
            prior_states: prior,
            replace: self.forced(node),
        }
    }

    /// Computes the stale unit at position `i` here.
    fn compute(
        &self,
        node: &PlanNode,
        inputs: &BTreeMap<String, PortData>,
        plan: &NodePlan,
        i: usize,
        rows: &Arc<RowCounter>,
    ) -> Result<Found> {
        let unit = &plan.units[i].unit;
        if self.opts.cancel.is_cancelled() {
            return Err(Error::Cancelled).context(|| where_(unit));
        }
        let prior = plan.prior_states(self.store, i);
        let job = self.job(node, inputs, plan, i, &prior);
        let done = run_unit(self.store, &job, rows).context(|| where_(unit))?;
        Ok(Found {
            meta: done.meta,
            status: UnitStatus::Computed,
            note: done.note,
            seconds: None,
        })
    }

    /// Computes a node's stale units on the remote as one batch (a fold's
    /// in order, in one place), then reports every unit as a local run
    /// would; a fold's units after a failed one are left out, as locally.
    fn run_remote_batch(
        &self,
        remote: &Arc<dyn RemoteUnits>,
        node: &PlanNode,
        inputs: &BTreeMap<String, PortData>,
        plan: &NodePlan,
    ) -> Vec<Result<(EntryMeta, UnitStatus)>> {
        let t = Instant::now();
        let mut results: Vec<Option<Result<Found>>> = plan
            .units
            .iter()
            .map(|planned| planned.state.as_ref().ok().map(|m| Ok(Found::hit(m))))
            .collect();
        let mut sent = Vec::new();
        let mut tasks = Vec::new();
        for (i, slot) in results.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let unit = &plan.units[i].unit;
            if self.opts.cancel.is_cancelled() {
                *slot = Some(Err(Error::Cancelled).context(|| where_(unit)));
                continue;
            }
            let prior = plan.prior_states(self.store, i);
            let job = self.job(node, inputs, plan, i, &prior);
            match UnitTask::new(self.plan, node, self.store, &job) {
                Ok(task) => {
                    sent.push(i);
                    tasks.push(task);
                }
                Err(e) => *slot = Some(Err(e)),
            }
        }
        if !tasks.is_empty() {
            for (i, r) in sent.into_iter().zip(remote.run_tasks(tasks, plan.fold)) {
                let unit = &plan.units[i].unit;
                results[i] = Some(self.remote_entry(r).context(|| where_(unit)));
            }
        }
        plan.units
            .iter()
            .zip(results)
            .map(|(planned, found)| {
                let found = found.unwrap_or_else(|| {
                    Err(Error::internal(
                        "the cluster returned no result for the unit",
                    ))
                });
                self.report_unit(node, &planned.unit, found, t)
            })
            .collect()
    }

    /// The entry a remote task published. Only its meta is read (tables
    /// stay in the shared cache until something here reads them); an
    /// entry with an artifact is pulled, since publishing reads its files.
    fn remote_entry(&self, result: Result<(TaskDone, String)>) -> Result<Found> {
        let (done, executor) = result?;
        let missing = || {
            Error::Cluster(format!(
                "executor {executor} reported entry {} but the shared cache does not have it whole",
                done.key
            ))
        };
        let meta = self.store.remote_meta(&done.key)?.ok_or_else(missing)?;
        Ok(Found {
            meta,
            status: if done.computed {
                UnitStatus::Computed
            } else {
                UnitStatus::Hit
            },
            note: Some(match done.note {
                Some(note) => format!("on {executor}: {note}"),
                None => format!("on {executor}"),
            }),
            seconds: Some(done.seconds),
        })
    }

    /// Reports and logs a unit's result.
    fn report_unit(
        &self,
        node: &PlanNode,
        unit: &crate::exec::planner::Unit,
        found: Result<Found>,
        started: Instant,
    ) -> Result<(EntryMeta, UnitStatus)> {
        let Found {
            meta,
            status,
            note,
            seconds,
        } = found?;
        let unit_rows = meta.outputs.get(OUT).map(EntryOutput::rows).unwrap_or(0);
        let secs = seconds.unwrap_or_else(|| started.elapsed().as_secs_f64());
        self.reporter.report(&Event::UnitFinished {
            node: &node.id,
            partition: unit.partition.as_deref(),
            status,
            rows: unit_rows,
            seconds: secs,
            note: note.as_deref(),
        });
        self.log.record(
            node,
            Entry {
                partition: unit.partition.as_deref(),
                status: status.as_str(),
                rows: unit_rows,
                seconds: secs,
                note,
            },
        );
        Ok((meta, status))
    }
}

/// A unit's entry and how it was found.
struct Found {
    meta: EntryMeta,
    status: UnitStatus,
    note: Option<String>,
    /// Seconds it took where it ran (none: as timed here).
    seconds: Option<f64>,
}

impl Found {
    fn hit(meta: &EntryMeta) -> Self {
        Self {
            meta: meta.clone(),
            status: UnitStatus::Hit,
            note: None,
            seconds: None,
        }
    }
}

/// Where in its node a unit is, for error context.
fn where_(unit: &crate::exec::planner::Unit) -> String {
    match &unit.partition {
        Some(p) => format!("partition `{p}`"),
        None => "computing".to_string(),
    }
}

/// A node's output from its units' entries.
fn assemble(
    store: &CacheStore,
    node: &PlanNode,
    units: &[&crate::exec::planner::Unit],
    metas: &[(EntryMeta, UnitStatus)],
) -> Result<NodeOutput> {
    let mut out = NodeOutput::default();
    for (port, ty) in &node.outputs {
        let data = match ty {
            PortType::Table(schema) => {
                let mut parts: Vec<CachedPart> = Vec::new();
                for (unit, (meta, _)) in units.iter().zip(metas) {
                    let Some(EntryOutput::Table { parts: written }) = meta.outputs.get(port) else {
                        return Err(Error::internal(format!(
                            "cache entry {} has no table `{port}`",
                            meta.key
                        )));
                    };
                    for w in written {
                        let name = match (&node.partitioning, &unit.partition) {
                            (Partitioning::Global, _) | (_, None) => w.partition.clone(),
                            (_, Some(p)) => p.clone(),
                        };
                        parts.push(CachedPart {
                            name,
                            key: meta.key.clone(),
                            file: w.file.clone(),
                            digest: w.digest.clone(),
                            rows: w.rows,
                        });
                    }
                }
                parts.sort_by(|a, b| a.name.cmp(&b.name));
                PortData::Table {
                    schema: schema.clone(),
                    parts,
                }
            }
            PortType::Artifact => {
                let [(meta, _)] = metas else {
                    return Err(Error::internal(format!(
                        "artifact port `{port}` of `{}` needs exactly one unit",
                        node.id
                    )));
                };
                let Some(EntryOutput::Artifact { dir, digest, .. }) = meta.outputs.get(port) else {
                    return Err(Error::internal(format!(
                        "cache entry {} has no artifact `{port}`",
                        meta.key
                    )));
                };
                PortData::Artifact {
                    dir: store.entry_dir(&meta.key).join(dir),
                    digest: digest.clone(),
                    key: meta.key.clone(),
                }
            }
        };
        out.ports.insert(port.clone(), data);
    }
    Ok(out)
}
