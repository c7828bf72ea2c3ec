//! The scheduler, the planner and the unit runner, tested with a toy
//! operator set and no operator crate: a source (`toy_numbers`: one integer
//! per line of each file), a per-partition map (`toy_scale`), a fold
//! (`toy_distinct`: the values no earlier partition had) and a global
//! (`toy_sum`). Each test builds a pipeline in a temporary directory, runs
//! it through the engine's API and reads what the run reported.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use dflow_engine::cache::{CacheStore, LockFile};
use dflow_engine::datafusion::arrow::array::{Array, Int64Array};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::exec::planner::{Known, PlanMode, StaleReason, plan_node};
use dflow_engine::exec::{Cancel, Event, Reporter, RunOptions, RunSummary, Workspace, run};
use dflow_engine::registry::BuildError;
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, Plan, PlanContext, PortType, Registry,
    Result, SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

fn numbers() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

fn write_numbers(task: &mut Task<'_>, values: Vec<i64>) -> Result<()> {
    let batch = RecordBatch::try_new(numbers(), vec![Arc::new(Int64Array::from(values))])?;
    task.outputs.write("out", &batch)
}

fn read_numbers(task: &Task<'_>, port: &str) -> Result<Vec<i64>> {
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
fn trace() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static TRACE: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    TRACE.get_or_init(Default::default)
}

fn note(test: &str, what: String) {
    if let Ok(mut t) = trace().lock() {
        t.entry(test.to_string()).or_default().push(what);
    }
}

fn traced(test: &str) -> Vec<String> {
    trace()
        .lock()
        .map(|t| t.get(test).cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// Cancel flags a toy operator sets when it runs, by name.
fn cancels() -> &'static Mutex<HashMap<String, Cancel>> {
    static CANCELS: OnceLock<Mutex<HashMap<String, Cancel>>> = OnceLock::new();
    CANCELS.get_or_init(Default::default)
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NumbersParams {
    /// Files, relative to the pipeline.
    paths: Vec<String>,
    trace: String,
}

struct Numbers(NumbersParams);

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
            .map(|p| SourcePartition {
                name: p.clone(),
                path: ctx.resolve(p),
            })
            .collect())
    }
    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let source = task.source.ok_or_else(|| Error::internal("no source"))?;
        let text = std::fs::read_to_string(&source.path)?;
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
struct ScaleParams {
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

struct Scale(ScaleParams);

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
struct TraceParams {
    trace: String,
}

/// The fold: each unit writes the values no earlier unit had, and leaves
/// every value seen so far in its state.
struct Distinct(TraceParams);

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
struct Sum(TraceParams);

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

fn registry() -> Registry {
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
struct Recorder {
    units: Mutex<Vec<(String, String, String)>>,
    started: Mutex<Vec<String>>,
    failed: Mutex<Vec<(String, String)>>,
    skipped: Mutex<Vec<(String, String)>>,
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
            _ => {}
        }
    }
}

impl Recorder {
    /// The statuses of `node`'s units, by partition.
    fn statuses(&self, node: &str) -> BTreeMap<String, String> {
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
struct Toy {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    name: String,
}

impl Toy {
    /// `files` are (name, content) written beside the pipeline; `nodes` is
    /// the YAML of the `nodes:` mapping, where `TRACE` becomes this test's
    /// trace name.
    fn new(name: &str, files: &[(&str, &str)], nodes: &str) -> Self {
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

    fn set_nodes(&self, nodes: &str) {
        let text = format!(
            "version: 1\nname: {}\nnodes:\n{}",
            self.name,
            nodes.replace("TRACE", &self.name)
        );
        std::fs::write(self.pipeline(), text).expect("write pipeline");
    }

    fn pipeline(&self) -> PathBuf {
        self.dir.path().join("pipeline.yaml")
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).expect("write input");
    }

    fn plan(&self) -> Plan {
        let spec = dflow_engine::PipelineSpec::load(&self.pipeline()).expect("spec");
        match dflow_engine::compile(spec, &registry(), self.runtime.handle().clone()) {
            Ok(plan) => plan,
            Err(d) => panic!("does not compile: {d:?}"),
        }
    }

    fn run_with(&self, opts: RunOptions) -> (RunSummary, Recorder) {
        let plan = self.plan();
        let ws = Workspace::for_plan(&plan, None).expect("workspace");
        let recorder = Recorder::default();
        let summary = run(&plan, &ws, &opts, &recorder).expect("run");
        (summary, recorder)
    }

    fn run(&self) -> (RunSummary, Recorder) {
        self.run_with(RunOptions::default())
    }

    fn store(&self) -> CacheStore {
        CacheStore::open(&self.dir.path().join(".dflow")).expect("store")
    }

    fn lock(&self) -> LockFile {
        LockFile::load(&self.dir.path().join("dflow.lock")).expect("lock")
    }

    fn lock_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dflow.lock")).expect("lock text")
    }

    /// The rows of `node`'s `out` port, partition by partition in name
    /// order.
    fn rows(&self, node: &str) -> Vec<i64> {
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

fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

const CHAIN: &str = r#"
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

const FILES: &[(&str, &str)] = &[("a.txt", "1 2 3"), ("b.txt", "3 4"), ("c.txt", "4 5 1")];

#[test]
fn a_cold_run_computes_everything_and_a_second_run_nothing() {
    let toy = Toy::new("cold_then_warm", FILES, CHAIN);
    let (first, rec) = toy.run();
    assert!(first.ok, "{first:?}");
    // 3 source units, 3 map units, 3 fold units, 1 global unit.
    assert_eq!((first.computed, first.hits), (10, 0));
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[
            ("a.txt", "computed"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(toy.rows("scaled"), vec![10, 20, 30, 30, 40, 40, 50, 10]);
    assert_eq!(toy.rows("total"), vec![230]);
    // The fold kept the first occurrence of each value, in partition order.
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 5]);
    let lock = toy.lock_text();

    let (second, rec) = toy.run();
    assert!(second.ok);
    assert_eq!((second.computed, second.hits), (0, 10));
    assert!(rec.statuses("total").values().all(|s| s == "hit"));
    assert_eq!(toy.lock_text(), lock, "a warm run changed the lock file");
}

#[test]
fn a_changed_file_recomputes_its_partition_and_what_depends_on_it() {
    let toy = Toy::new("staleness", FILES, CHAIN);
    toy.run();
    let before = traced("staleness").len();
    toy.write("b.txt", "3 4 6");
    let (summary, rec) = toy.run();
    assert!(summary.ok);
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[("a.txt", "hit"), ("b.txt", "computed"), ("c.txt", "hit")])
    );
    // A fold recomputes the changed partition and every later one.
    assert_eq!(
        rec.statuses("distinct"),
        statuses(&[
            ("a.txt", "hit"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(rec.statuses("total"), statuses(&[("-", "computed")]));
    assert_eq!(toy.rows("total"), vec![290]);
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 6, 5]);
    // The later fold units saw the states of every unit before them.
    let new: Vec<String> = traced("staleness")[before..].to_vec();
    assert!(
        new.contains(&"distinct:b.txt:after 1".to_string()),
        "{new:?}"
    );
    assert!(
        new.contains(&"distinct:c.txt:after 2".to_string()),
        "{new:?}"
    );
}

#[test]
fn the_planner_says_why_a_unit_is_stale() {
    let toy = Toy::new("reasons", FILES, CHAIN);
    let plan = toy.plan();
    let store = toy.store();
    let stat = dflow_engine::cache::StatCache::load(store.root());
    let nums = &plan.nodes[plan.index_of("nums").expect("nums")];
    let none = BTreeMap::new();
    let reasons = |mode: PlanMode| -> Vec<std::result::Result<(), StaleReason>> {
        plan_node(nums, &none, &stat, &store, Known::default(), mode)
            .expect("plan")
            .units
            .iter()
            .map(|u| u.state.as_ref().map(|_| ()).map_err(|r| *r))
            .collect()
    };
    assert_eq!(
        reasons(PlanMode::default()),
        vec![Err(StaleReason::NotInCache); 3]
    );
    toy.run();
    assert_eq!(reasons(PlanMode::default()), vec![Ok(()); 3]);
    let forced = PlanMode {
        force: true,
        full: false,
    };
    assert_eq!(reasons(forced), vec![Err(StaleReason::Forced); 3]);
    toy.write("c.txt", "7");
    assert_eq!(
        reasons(PlanMode::default()),
        vec![Ok(()), Ok(()), Err(StaleReason::NotInCache)]
    );
    // `status` agrees: the source is stale because its data changed.
    let st = dflow_engine::status::status(&plan, Some(&store), &toy.lock()).expect("status");
    let nums_status = st.iter().find(|s| s.node == "nums").expect("nums status");
    assert_eq!(nums_status.state.as_str(), "STALE");
}

#[test]
fn an_unchanged_output_cuts_off_what_is_downstream() {
    // A factor of 0 maps any input to zeros: a changed file recomputes the
    // map's partition, whose bytes do not change, so the global is a hit.
    let nodes = CHAIN.replace("factor: 10", "factor: 0");
    let toy = Toy::new("cutoff", FILES, &nodes);
    toy.run();
    toy.write("a.txt", "7 8 9");
    let (summary, rec) = toy.run();
    assert!(summary.ok);
    assert_eq!(rec.statuses("scaled")["a.txt"], "computed");
    assert_eq!(rec.statuses("total"), statuses(&[("-", "hit")]));
}

#[test]
fn a_failing_unit_fails_its_node_and_skips_only_what_depends_on_it() {
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, fail_on: 4,");
    let toy = Toy::new("failure", FILES, &nodes);
    let (summary, rec) = toy.run();
    assert!(!summary.ok);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, "scaled");
    assert!(
        summary.failed[0].1.contains("4 is not allowed"),
        "{summary:?}"
    );
    assert!(
        summary.failed[0].1.contains("partition `b.txt`")
            || summary.failed[0].1.contains("partition `c.txt`"),
        "{summary:?}"
    );
    assert_eq!(summary.skipped, vec!["total".to_string()]);
    let skipped = rec.skipped.lock().expect("skipped").clone();
    assert_eq!(
        skipped,
        vec![("total".to_string(), "upstream `scaled` failed".to_string())]
    );
    // The independent branch ran, and the map's good partition is cached.
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 5]);
    assert_eq!(rec.statuses("scaled")["a.txt"], "computed");

    // With the bad rows gone, the next run computes only what failed or
    // was skipped.
    toy.write("b.txt", "3 6");
    toy.write("c.txt", "5 1");
    let (summary, rec) = toy.run();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[
            ("a.txt", "hit"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(toy.rows("total"), vec![210]);
}

#[test]
fn an_interrupted_unit_resumes_from_its_work_directory() {
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, interrupt_once: true,");
    let toy = Toy::new("resume", FILES, &nodes);
    let (first, _) = toy.run();
    assert!(!first.ok);
    // The next run of the same units finds what the first one left.
    let (second, _) = toy.run();
    assert!(second.ok, "{second:?}");
    let resumed: Vec<String> = traced("resume")
        .into_iter()
        .filter(|t| t.ends_with(":resumed"))
        .collect();
    assert_eq!(resumed.len(), 3, "{resumed:?}");
    // A staging directory left by a killed run is removed by the next one.
    let junk = toy.dir.path().join(".dflow/tmp/killed-run");
    std::fs::create_dir_all(&junk).expect("junk");
    std::fs::write(junk.join("0.parquet"), b"half a file").expect("junk file");
    let (third, _) = toy.run();
    assert!(third.ok && third.computed == 0);
    assert!(
        !junk.exists(),
        "the staging directory of a killed run remains"
    );
}

#[test]
fn a_cancelled_run_starts_no_further_node_and_resumes_where_it_stopped() {
    // One worker, so the order is the topological one: `nums`, then the
    // map, which cancels the run while it computes its units.
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, cancel: cancelled,");
    let toy = Toy::new("cancelled", FILES, &nodes);
    let cancel = Cancel::default();
    cancels()
        .lock()
        .expect("cancels")
        .insert("cancelled".into(), cancel.clone());
    let (summary, rec) = toy.run_with(RunOptions {
        jobs: 1,
        cancel,
        ..Default::default()
    });
    assert!(summary.cancelled && !summary.ok, "{summary:?}");
    let started = rec.started.lock().expect("started").clone();
    assert!(
        !started.contains(&"total".to_string()),
        "a node started after the cancellation: {started:?}"
    );
    let skipped: Vec<String> = rec
        .skipped
        .lock()
        .expect("skipped")
        .iter()
        .map(|(n, because)| {
            assert!(
                because == "the run was cancelled" || because.starts_with("upstream"),
                "{because}"
            );
            n.clone()
        })
        .collect();
    assert!(skipped.contains(&"total".to_string()), "{skipped:?}");

    // Nothing committed is lost: the next run only completes the rest.
    let plain = RunOptions::default();
    let (resumed, _) = toy.run_with(plain);
    assert!(resumed.ok, "{resumed:?}");
    assert!(resumed.hits >= 3, "{resumed:?}");
    assert_eq!(toy.rows("total"), vec![230]);
}

#[test]
fn independent_nodes_run_at_once_and_dependent_ones_in_order() {
    // Two chains that share nothing but the pipeline.
    let nodes = r#"
  left:
    op: toy_numbers
    params: { paths: [a.txt], trace: TRACE }
  right:
    op: toy_numbers
    params: { paths: [b.txt], trace: TRACE }
  left_sum:
    op: toy_sum
    inputs: { in: left }
    params: { trace: TRACE }
  right_sum:
    op: toy_sum
    inputs: { in: right }
    params: { trace: TRACE }
"#;
    let toy = Toy::new("ordering", FILES, nodes);
    let (summary, rec) = toy.run_with(RunOptions {
        jobs: 2,
        ..Default::default()
    });
    assert!(summary.ok);
    let order = traced("ordering");
    let at = |what: &str| {
        order
            .iter()
            .position(|t| t == what)
            .unwrap_or_else(|| panic!("{what} never ran: {order:?}"))
    };
    assert!(at("left:a.txt") < at("left_sum:all"), "{order:?}");
    assert!(at("right:b.txt") < at("right_sum:all"), "{order:?}");
    assert_eq!(rec.started.lock().expect("started").len(), 4);
    assert_eq!(toy.rows("left_sum"), vec![6]);
    assert_eq!(toy.rows("right_sum"), vec![7]);

    // `--only` runs one node, its inputs read from the cache.
    let (only, rec) = toy.run_with(RunOptions {
        only: vec!["right_sum".into()],
        force: vec!["right_sum".into()],
        ..Default::default()
    });
    assert!(only.ok);
    assert_eq!(*rec.started.lock().expect("started"), vec!["right_sum"]);
    assert_eq!(rec.statuses("right_sum"), statuses(&[("-", "computed")]));
}

#[test]
fn a_node_whose_input_was_never_computed_cannot_run_alone() {
    let toy = Toy::new("missing_input", FILES, CHAIN);
    let (summary, _) = toy.run_with(RunOptions {
        only: vec!["total".into()],
        ..Default::default()
    });
    assert!(!summary.ok);
    assert_eq!(summary.failed[0].0, "total");
    assert!(
        summary.failed[0]
            .1
            .contains("run `dflow run --until scaled` first"),
        "{summary:?}"
    );
}

#[test]
fn bad_params_are_a_compile_error_not_a_run_error() {
    let nodes = CHAIN.replace("factor: 10", "factor: -1");
    let toy = Toy::new("bad_params", FILES, &nodes);
    let spec = dflow_engine::PipelineSpec::load(&toy.pipeline()).expect("spec");
    let Err(diags) = dflow_engine::compile(spec, &registry(), toy.runtime.handle().clone()) else {
        panic!("a negative factor compiled");
    };
    assert!(format!("{diags:?}").contains("must not be negative"));
}
