//! The toy operator set the engine's tests run pipelines with, and no
//! operator crate: a source (`toy_numbers`: one integer per line of each
//! file), a per-partition map (`toy_scale`), a fold (`toy_distinct`: the
//! values no earlier partition had) and a global (`toy_sum`); a [`Toy`]
//! pipeline in a temporary directory run through the engine's API, and a
//! [`Recorder`] of what the run reported.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use dflow_engine::cache::{CacheStore, LockFile};
use dflow_engine::datafusion::arrow::array::{Array, Int64Array};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::exec::{Cancel, Event, Reporter, RunOptions, RunSummary, Workspace, run};
use dflow_engine::registry::BuildError;
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, Plan, PlanContext, PortType, Registry,
    Result, SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

pub fn numbers() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

pub fn write_numbers(task: &mut Task<'_>, values: Vec<i64>) -> Result<()> {
    let batch = RecordBatch::try_new(numbers(), vec![Arc::new(Int64Array::from(values))])?;
    task.outputs.write("out", &batch)
}

pub fn read_numbers(task: &Task<'_>, port: &str) -> Result<Vec<i64>> {
    let mut values = Vec::new();
    for batch in task.table(port)?.batches(1024) {
        let batch = batch?;
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::internal("not Int64"))?;
        values.extend((0..col.len()).map(|i| col.value(i)));
    }
    Ok(values)
}

/// What the toy operators did, by test name: the order nodes started in
/// and the partitions each unit computed.
pub fn trace() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static TRACE: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    TRACE.get_or_init(Default::default)
}

pub fn note(test: &str, what: String) {
    if let Ok(mut t) = trace().lock() {
        t.entry(test.to_string()).or_default().push(what);
    }
}

pub fn traced(test: &str) -> Vec<String> {
    trace()
        .lock()
        .map(|t| t.get(test).cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// Cancel flags a toy operator sets when it runs, by name.
pub fn cancels() -> &'static Mutex<HashMap<String, Cancel>> {
    static CANCELS: OnceLock<Mutex<HashMap<String, Cancel>>> = OnceLock::new();
    CANCELS.get_or_init(Default::default)
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NumbersParams {
    /// Files, relative to the pipeline.
    paths: Vec<String>,
    trace: String,
}

pub struct Numbers(NumbersParams);

impl Operator for Numbers {
    fn version(&self) -> u32 {
        1
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Source
    }
    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(Vec::new())
    }
    fn output_ports(
        &self,
        _: &PlanContext,
        _: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        Ok(BTreeMap::from([("out".into(), PortType::Table(numbers()))]))
    }
    fn list_partitions(&self, ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        Ok(self
            .0
            .paths
            .iter()
            .map(|p| SourcePartition::local(p.clone(), ctx.resolve(p)))
            .collect())
    }
    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let source = task.source.ok_or_else(|| Error::internal("no source"))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut source.open()?, &mut text)?;
        let values = text
            .split_whitespace()
            .map(|w| {
                w.parse::<i64>()
                    .map_err(|e| Error::data(format!("{w}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        note(&self.0.trace, format!("{}:{}", task.node, source.name));
        write_numbers(task, values)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleParams {
    factor: i64,
    trace: String,
    /// Fails on a partition holding this value.
    #[serde(default)]
    fail_on: Option<i64>,
    /// Cancels the run (the flag of this name) when it runs.
    #[serde(default)]
    cancel: Option<String>,
    /// Leaves a checkpoint in its work directory and fails on the first
    /// try; the next run of the same unit finds the checkpoint.
    #[serde(default)]
    interrupt_once: bool,
}

pub struct Scale(ScaleParams);

impl Operator for Scale {
    fn version(&self) -> u32 {
        1
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition { port: "in".into() }
    }
    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("in")])
    }
    fn output_ports(
        &self,
        _: &PlanContext,
        _: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        Ok(BTreeMap::from([("out".into(), PortType::Table(numbers()))]))
    }
    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let p = &self.0;
        let values = read_numbers(task, "in")?;
        let part = task.partition.unwrap_or("all").to_string();
        if let Some(name) = &p.cancel
            && let Some(flag) = cancels().lock().ok().and_then(|c| c.get(name).cloned())
        {
            flag.cancel();
        }
        if p.interrupt_once {
            let checkpoint = task.work_dir()?.join("checkpoint");
            if checkpoint.exists() {
                note(&p.trace, format!("{}:{part}:resumed", task.node));
            } else {
                std::fs::write(&checkpoint, b"half done")?;
                return Err(Error::data("interrupted"));
            }
        }
        if let Some(bad) = p.fail_on
            && values.contains(&bad)
        {
            return Err(Error::data(format!("{bad} is not allowed")));
        }
        note(&p.trace, format!("{}:{part}", task.node));
        write_numbers(task, values.iter().map(|v| v * p.factor).collect())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    trace: String,
}

/// The fold: each unit writes the values no earlier unit had, and leaves
/// every value seen so far in its state.
pub struct Distinct(TraceParams);

impl Operator for Distinct {
    fn version(&self) -> u32 {
        1
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Fold { port: "in".into() }
    }
    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("in")])
    }
    fn output_ports(
        &self,
        _: &PlanContext,
        _: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        Ok(BTreeMap::from([("out".into(), PortType::Table(numbers()))]))
    }
    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for dir in task.prior_states {
            let text = std::fs::read_to_string(dir.join("seen"))?;
            seen.extend(
                text.split_whitespace()
                    .filter_map(|w| w.parse::<i64>().ok()),
            );
        }
        let mut new = Vec::new();
        for v in read_numbers(task, "in")? {
            if seen.insert(v) {
                new.push(v);
            }
        }
        let state = task.outputs.state_dir()?;
        let all: Vec<String> = seen.iter().map(i64::to_string).collect();
        std::fs::write(state.join("seen"), all.join(" "))?;
        note(
            &self.0.trace,
            format!(
                "{}:{}:after {}",
                task.node,
                task.partition.unwrap_or("all"),
                task.prior_states.len()
            ),
        );
        write_numbers(task, new)
    }
}

/// The global: one row, the sum of every input row.
pub struct Sum(TraceParams);

impl Operator for Sum {
    fn version(&self) -> u32 {
        1
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }
    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("in")])
    }
    fn output_ports(
        &self,
        _: &PlanContext,
        _: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        Ok(BTreeMap::from([("out".into(), PortType::Table(numbers()))]))
    }
    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let sum = read_numbers(task, "in")?.iter().sum();
        note(&self.0.trace, format!("{}:all", task.node));
        write_numbers(task, vec![sum])
    }
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_with_selection::<NumbersParams, _>(
        "toy_numbers",
        "integers, one file a partition",
        &["paths", "trace"],
        |p, _| Ok(Arc::new(Numbers(p)) as Arc<dyn Operator>),
    );
    r.register_with_selection::<ScaleParams, _>(
        "toy_scale",
        "multiplies each partition",
        &["trace", "cancel", "interrupt_once"],
        |p, _| {
            if p.factor < 0 {
                return Err(BuildError::invalid("/factor", "must not be negative"));
            }
            Ok(Arc::new(Scale(p)) as Arc<dyn Operator>)
        },
    );
    r.register_with_selection::<TraceParams, _>("toy_distinct", "a fold", &["trace"], |p, _| {
        Ok(Arc::new(Distinct(p)) as Arc<dyn Operator>)
    });
    r.register_with_selection::<TraceParams, _>("toy_sum", "a global", &["trace"], |p, _| {
        Ok(Arc::new(Sum(p)) as Arc<dyn Operator>)
    });
    r
}

/// Collects unit events: (node, partition, status).
#[derive(Default)]
pub struct Recorder {
    pub units: Mutex<Vec<(String, String, String)>>,
    pub started: Mutex<Vec<String>>,
    pub failed: Mutex<Vec<(String, String)>>,
    pub skipped: Mutex<Vec<(String, String)>>,
    pub warnings: Mutex<Vec<String>>,
}

impl Reporter for Recorder {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::UnitFinished {
                node,
                partition,
                status,
                ..
            } => {
                if let Ok(mut u) = self.units.lock() {
                    u.push((
                        node.to_string(),
                        partition.unwrap_or("-").to_string(),
                        status.as_str().to_string(),
                    ));
                }
            }
            Event::NodeStarted { node, .. } => {
                if let Ok(mut s) = self.started.lock() {
                    s.push(node.to_string());
                }
            }
            Event::NodeFailed { node, error, .. } => {
                if let Ok(mut f) = self.failed.lock() {
                    f.push((node.to_string(), error.to_string()));
                }
            }
            Event::NodeSkipped { node, because } => {
                if let Ok(mut s) = self.skipped.lock() {
                    s.push((node.to_string(), because.to_string()));
                }
            }
            Event::Warning { message } => {
                if let Ok(mut w) = self.warnings.lock() {
                    w.push(message.to_string());
                }
            }
            _ => {}
        }
    }
}

impl Recorder {
    /// The statuses of `node`'s units, by partition.
    pub fn statuses(&self, node: &str) -> BTreeMap<String, String> {
        self.units
            .lock()
            .map(|u| {
                u.iter()
                    .filter(|(n, _, _)| n == node)
                    .map(|(_, p, s)| (p.clone(), s.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A pipeline in a temporary directory.
pub struct Toy {
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    pub name: String,
}

impl Toy {
    /// `files` are (name, content) written beside the pipeline; `nodes` is
    /// the YAML of the `nodes:` mapping, where `TRACE` becomes this test's
    /// trace name.
    pub fn new(name: &str, files: &[(&str, &str)], nodes: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (f, text) in files {
            std::fs::write(dir.path().join(f), text).expect("write input");
        }
        let toy = Self {
            dir,
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
            name: name.to_string(),
        };
        toy.set_nodes(nodes);
        toy
    }

    pub fn set_nodes(&self, nodes: &str) {
        let text = format!(
            "version: 1\nname: {}\nnodes:\n{}",
            self.name,
            nodes.replace("TRACE", &self.name)
        );
        std::fs::write(self.pipeline(), text).expect("write pipeline");
    }

    pub fn pipeline(&self) -> PathBuf {
        self.dir.path().join("pipeline.yaml")
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).expect("write input");
    }

    pub fn plan(&self) -> Plan {
        let spec = dflow_engine::PipelineSpec::load(&self.pipeline()).expect("spec");
        match dflow_engine::compile(spec, &registry(), self.runtime.handle().clone()) {
            Ok(plan) => plan,
            Err(d) => panic!("does not compile: {d:?}"),
        }
    }

    /// Runs the pipeline with `opts` on the cache at `cache` (the default
    /// `.dflow/` beside it with `None`), through the engine's `run`.
    pub fn try_run(
        &self,
        cache: Option<&std::path::Path>,
        opts: RunOptions,
    ) -> (Result<RunSummary>, Recorder) {
        let plan = self.plan();
        let ws = Workspace::for_plan(&plan, cache).expect("workspace");
        let recorder = Recorder::default();
        let summary = run(&plan, &ws, &opts, &recorder);
        (summary, recorder)
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.path().join("dflow.lock")
    }

    pub fn run_with(&self, opts: RunOptions) -> (RunSummary, Recorder) {
        let plan = self.plan();
        let ws = Workspace::for_plan(&plan, None).expect("workspace");
        let recorder = Recorder::default();
        let summary = run(&plan, &ws, &opts, &recorder).expect("run");
        (summary, recorder)
    }

    pub fn run(&self) -> (RunSummary, Recorder) {
        self.run_with(RunOptions::default())
    }

    pub fn store(&self) -> CacheStore {
        CacheStore::open(&self.dir.path().join(".dflow")).expect("store")
    }

    pub fn lock(&self) -> LockFile {
        LockFile::load(&self.dir.path().join("dflow.lock")).expect("lock")
    }

    pub fn lock_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dflow.lock")).expect("lock text")
    }

    /// The rows of `node`'s `out` port, partition by partition in name
    /// order.
    pub fn rows(&self, node: &str) -> Vec<i64> {
        let plan = self.plan();
        let store = self.store();
        let lock = self.lock();
        let nl = lock.node(&plan.spec.name, node).expect("node in lock");
        let data = dflow_engine::PortData::from_lock(&nl.outputs["out"], Some(&numbers()), &store)
            .expect("in cache");
        let batches =
            dflow_engine::table::read_all(&data.part_refs(&store), numbers()).expect("read");
        batches
            .iter()
            .flat_map(|b| {
                let col = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("Int64")
                    .clone();
                (0..col.len()).map(move |i| col.value(i))
            })
            .collect()
    }
}

pub fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

pub const CHAIN: &str = r#"
  nums:
    op: toy_numbers
    params: { paths: [a.txt, b.txt, c.txt], trace: TRACE }
  scaled:
    op: toy_scale
    inputs: { in: nums }
    params: { factor: 10, trace: TRACE }
  distinct:
    op: toy_distinct
    inputs: { in: nums }
    params: { trace: TRACE }
  total:
    op: toy_sum
    inputs: { in: scaled }
    params: { trace: TRACE }
"#;

pub const FILES: &[(&str, &str)] = &[("a.txt", "1 2 3"), ("b.txt", "3 4"), ("c.txt", "4 5 1")];
