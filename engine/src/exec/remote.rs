//! Units computed in another process, such as a cluster executor.
//!
//! A stale unit becomes a [`UnitTask`]: everything [`run_unit`] needs, with
//! its inputs named by cache key instead of by local path, and the pipeline
//! as text. The process that runs it ([`TaskHost`]) compiles the pipeline,
//! pulls the inputs from the shared cache into its own working copy, runs
//! the unit there and publishes the entry; only the key and a few counts
//! travel back ([`TaskDone`]). The run that sent it then finds the entry in
//! the shared cache as it finds any hit. A task run twice (a retry) finds
//! its entry published and computes nothing.
//!
//! How tasks travel is not this module's business: [`RemoteUnits`] is
//! implemented where a transport is (the `cluster` feature's Ballista
//! client).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache::{CacheStore, EntryOutput, PortData, Probe, SharedCache};
use crate::compile::{Plan, PlanNode, compile};
use crate::error::{Error, Result};
use crate::exec::planner::Unit;
use crate::exec::unit::{UnitJob, run_unit};
use crate::operator::{STATE_DIR, SourcePartition};
use crate::ports::OUT;
use crate::registry::Registry;
use crate::spec::PipelineSpec;
use crate::storage::{Location, ObjectUrl};
use crate::table::{CachedPart, RowCounter};

/// The pipeline a task belongs to, as the run that sent it read it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PipelineText {
    /// The pipeline file's path on the sending machine: relative paths in
    /// it resolve against its directory, which executors must see too
    /// (or the pipeline names its files by URL).
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    /// `--source-root`, when given.
    pub source_root: Option<String>,
}

impl PipelineText {
    /// The pipeline of a compiled plan.
    pub fn of(plan: &Plan) -> Self {
        Self {
            path: absolute(&plan.spec.path),
            text: plan.spec.source.text.to_string(),
            source_root: plan.spec.source_root.as_ref().map(|u| u.to_string()),
        }
    }

    /// Digest of everything compiling depends on (the key of compiled plans).
    fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for part in [
            self.path.to_string_lossy().as_bytes(),
            self.text.as_bytes(),
            self.source_root.as_deref().unwrap_or("").as_bytes(),
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().to_hex().to_string()
    }
}

/// A unit's input port, by cache key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum TaskPort {
    /// A table's partitions (their schema is the upstream node's).
    Table {
        /// The partitions.
        parts: Vec<CachedPart>,
    },
    /// An artifact directory inside an entry.
    Artifact {
        /// The entry holding it.
        key: String,
        /// The directory, relative to the entry.
        dir: PathBuf,
        /// Its content digest.
        digest: String,
    },
}

/// One unit of one node, ready to run in another process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitTask {
    /// The pipeline.
    pub pipeline: PipelineText,
    /// The shared cache's URL: where the inputs are and the entry goes.
    pub cache: String,
    /// The node's id.
    pub node: String,
    /// The node's operator version where the task was planned: a process
    /// whose operator differs refuses the task.
    pub op_version: u32,
    /// The unit's partition.
    pub partition: Option<String>,
    /// Digest of the unit's input partition.
    pub partition_digest: Option<String>,
    /// The key of the entry to compute.
    pub key: String,
    /// A source partition's location (a path or URL).
    pub source: Option<(String, String)>,
    /// The input partition of a per-partition or fold unit.
    pub input_part: Option<CachedPart>,
    /// The node's inputs.
    pub inputs: BTreeMap<String, TaskPort>,
    /// Content digest of each input port.
    pub input_digests: BTreeMap<String, String>,
    /// Entries whose state the unit reads (earlier fold units, the previous
    /// state of a global node).
    pub prior_keys: Vec<String>,
    /// Replace an entry of the same key (`--force`).
    pub replace: bool,
    /// Whether the node's operator wants an accelerator
    /// ([`crate::Operator::accelerated`]).
    pub accelerated: bool,
}

impl UnitTask {
    /// The task of `unit` of `node`: inputs and earlier states become keys
    /// of entries in `store`, which must have a shared tier.
    pub fn new(
        plan: &Plan,
        node: &PlanNode,
        store: &CacheStore,
        job: &UnitJob<'_>,
    ) -> Result<Self> {
        let shared = store.shared().ok_or_else(|| {
            Error::config(
                "a cluster run needs its cache in an object store that every executor reads: \
                 give --cache-dir s3://bucket/prefix",
            )
        })?;
        let inputs = job
            .inputs
            .iter()
            .map(|(port, data)| {
                let task_port = match data {
                    PortData::Table { parts, .. } => TaskPort::Table {
                        parts: parts.clone(),
                    },
                    PortData::Artifact { dir, digest, key } => TaskPort::Artifact {
                        key: key.clone(),
                        dir: dir
                            .strip_prefix(store.entry_dir(key))
                            .map(Path::to_path_buf)
                            .map_err(|_| {
                                Error::internal(format!(
                                    "artifact {} is outside its entry {key}",
                                    dir.display()
                                ))
                            })?,
                        digest: digest.clone(),
                    },
                };
                Ok((port.clone(), task_port))
            })
            .collect::<Result<_>>()?;
        let prior_keys = job
            .prior_states
            .iter()
            .map(|dir| {
                dir.parent()
                    .and_then(Path::file_name)
                    .map(|k| k.to_string_lossy().into_owned())
                    .filter(|k| store.entry_dir(k).join(STATE_DIR) == *dir)
                    .ok_or_else(|| {
                        Error::internal(format!("state {} is not in an entry", dir.display()))
                    })
            })
            .collect::<Result<_>>()?;
        let unit = job.unit;
        Ok(Self {
            pipeline: PipelineText::of(plan),
            cache: shared.root().to_string(),
            node: node.id.clone(),
            op_version: node.op.version(),
            partition: unit.partition.clone(),
            partition_digest: unit.partition_digest.clone(),
            key: unit.key.clone(),
            source: unit.source.as_ref().map(|s| {
                let location = match &s.location {
                    Location::Local(path) => absolute(path).to_string_lossy().into_owned(),
                    Location::Object(url) => url.to_string(),
                };
                (s.name.clone(), location)
            }),
            input_part: unit.input_part.clone(),
            inputs,
            input_digests: job.input_digests.clone(),
            prior_keys,
            replace: job.replace,
            accelerated: node.op.accelerated(),
        })
    }

    /// Where the task is in its pipeline, for messages.
    pub fn label(&self) -> String {
        match &self.partition {
            Some(p) => format!("`{}` partition `{p}`", self.node),
            None => format!("`{}`", self.node),
        }
    }
}

/// What became of a task.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskDone {
    /// The entry's key (now published).
    pub key: String,
    /// Whether the unit was computed (false: its entry was already there).
    pub computed: bool,
    /// Rows on the unit's `out` port.
    pub rows: u64,
    /// Seconds the task took where it ran.
    pub seconds: f64,
    /// What the operator said of its work.
    pub note: Option<String>,
}

/// Runs units elsewhere for a run ([`crate::exec::RunOptions::remote`]).
pub trait RemoteUnits: Send + Sync {
    /// Runs `tasks` (units of one node) and returns, in the same order,
    /// what became of each and where it ran. `in_order`: the units are a
    /// fold's, each reading the state of those before it, so they run one
    /// after the other in one place, and none runs after one fails.
    fn run_tasks(&self, tasks: Vec<UnitTask>, in_order: bool) -> Vec<Result<(TaskDone, String)>>;
}

/// What a process that runs tasks keeps between them: compiled pipelines
/// and a working copy of each shared cache.
pub struct TaskHost {
    registry: Registry,
    runtime: tokio::runtime::Handle,
    work_dir: PathBuf,
    plans: Mutex<HashMap<String, Arc<Plan>>>,
    stores: Mutex<HashMap<String, CacheStore>>,
}

impl TaskHost {
    /// A host with these operators, keeping its working copies under
    /// `work_dir`.
    pub fn new(registry: Registry, runtime: tokio::runtime::Handle, work_dir: &Path) -> Self {
        Self {
            registry,
            runtime,
            work_dir: work_dir.to_path_buf(),
            plans: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one task: its entry is published to the shared cache when this
    /// returns.
    pub fn run(&self, task: &UnitTask) -> Result<TaskDone> {
        let started = Instant::now();
        let store = self.store(&task.cache)?;
        if !task.replace
            && let Probe::Whole(meta) = store.probe(&task.key)
        {
            store.ensure_published(&meta)?;
            return Ok(TaskDone {
                key: task.key.clone(),
                computed: false,
                rows: meta.outputs.get(OUT).map(EntryOutput::rows).unwrap_or(0),
                seconds: started.elapsed().as_secs_f64(),
                note: None,
            });
        }
        let plan = self.plan(&task.pipeline)?;
        let node = plan
            .index_of(&task.node)
            .map(|i| &plan.nodes[i])
            .ok_or_else(|| {
                Error::config(format!(
                    "pipeline `{}` has no node `{}` here: the executor read another pipeline file",
                    plan.spec.name, task.node
                ))
            })?;
        if node.op.version() != task.op_version {
            return Err(Error::config(format!(
                "operator `{}` is version {} here and version {} where the run was planned: \
                 run the same dflow build on the client and every executor",
                node.op_name,
                node.op.version(),
                task.op_version
            )));
        }
        let inputs = self.inputs(&plan, node, task, &store)?;
        for key in &task.prior_keys {
            pull(&store, key)?;
        }
        let prior_states: Vec<PathBuf> = task
            .prior_keys
            .iter()
            .map(|k| store.entry_dir(k).join(STATE_DIR))
            .collect();
        let source = match &task.source {
            Some((name, location)) => Some(SourcePartition {
                name: name.clone(),
                location: Location::parse(location, &plan.spec.base_dir)?,
            }),
            None => None,
        };
        let unit = Unit {
            partition: task.partition.clone(),
            partition_digest: task.partition_digest.clone(),
            key: task.key.clone(),
            source,
            input_part: task.input_part.clone(),
        };
        let job = UnitJob {
            node,
            unit: &unit,
            inputs: &inputs,
            input_digests: &task.input_digests,
            prior_states: &prior_states,
            replace: task.replace,
        };
        let done = run_unit(&store, &job, &Arc::new(RowCounter::default()))?;
        Ok(TaskDone {
            key: task.key.clone(),
            computed: true,
            rows: done
                .meta
                .outputs
                .get(OUT)
                .map(EntryOutput::rows)
                .unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
            note: done.note,
        })
    }

    /// The node's inputs as ports of this host's working copy, their
    /// entries pulled from the shared cache.
    fn inputs(
        &self,
        plan: &Plan,
        node: &PlanNode,
        task: &UnitTask,
        store: &CacheStore,
    ) -> Result<BTreeMap<String, PortData>> {
        let mut inputs = BTreeMap::new();
        for (port, task_port) in &task.inputs {
            let data = match task_port {
                TaskPort::Table { parts } => {
                    let edge = node.inputs.iter().find(|e| &e.port == port);
                    let schema = edge
                        .and_then(|e| plan.nodes[e.from].outputs.get(&e.from_port))
                        .and_then(|t| t.table_schema())
                        .ok_or_else(|| {
                            Error::config(format!(
                                "node `{}` has no table input `{port}` here: \
                                 the executor read another pipeline file",
                                node.id
                            ))
                        })?;
                    let mut keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
                    keys.dedup();
                    for key in keys {
                        pull(store, key)?;
                    }
                    PortData::Table {
                        schema: schema.clone(),
                        parts: parts.clone(),
                    }
                }
                TaskPort::Artifact { key, dir, digest } => {
                    pull(store, key)?;
                    PortData::Artifact {
                        dir: store.entry_dir(key).join(dir),
                        digest: digest.clone(),
                        key: key.clone(),
                    }
                }
            };
            inputs.insert(port.clone(), data);
        }
        Ok(inputs)
    }

    /// The compiled pipeline, compiled once per text.
    fn plan(&self, pipeline: &PipelineText) -> Result<Arc<Plan>> {
        let digest = pipeline.digest();
        if let Some(plan) = lock(&self.plans)?.get(&digest) {
            return Ok(plan.clone());
        }
        let mut spec = PipelineSpec::parse(&pipeline.path, &pipeline.text)
            .map_err(|d| Error::config(format!("the task's pipeline does not parse: {d}")))?;
        if let Some(root) = &pipeline.source_root {
            spec.source_root = Some(ObjectUrl::parse(root)?);
        }
        let plan = compile(spec, &self.registry, self.runtime.clone())
            .map_err(|d| Error::config(format!("the task's pipeline does not compile: {d}")))?;
        let plan = Arc::new(plan);
        lock(&self.plans)?.insert(digest, plan.clone());
        Ok(plan)
    }

    /// This host's working copy of the shared cache at `url`.
    fn store(&self, url: &str) -> Result<CacheStore> {
        if let Some(store) = lock(&self.stores)?.get(url) {
            return Ok(store.clone());
        }
        let shared = SharedCache::open(&ObjectUrl::parse(url)?)?;
        let dir = self
            .work_dir
            .join("caches")
            .join(&blake3::hash(url.as_bytes()).to_hex()[..16]);
        let store = CacheStore::open(&dir)?.with_shared(shared);
        lock(&self.stores)?.insert(url.to_string(), store.clone());
        Ok(store)
    }
}

/// `path` made absolute against this process's working directory, which a
/// process elsewhere does not share.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Pulls the entry `key` from the shared tier, or says it cannot.
fn pull(store: &CacheStore, key: &str) -> Result<()> {
    if store.contains(key) {
        return Ok(());
    }
    Err(Error::config(format!(
        "cache entry {key} is in neither this executor's working copy nor the shared cache{}",
        store
            .shared()
            .map(|s| format!(" {}", s.root()))
            .unwrap_or_default()
    )))
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::internal("a task panicked while holding the host's state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_digest_separates_its_parts() {
        let a = PipelineText {
            path: "a/b.yaml".into(),
            text: "x".into(),
            source_root: None,
        };
        let b = PipelineText {
            path: "a/b.yamlx".into(),
            text: "".into(),
            source_root: None,
        };
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), a.clone().digest());
    }

    #[test]
    fn tasks_round_trip_through_json() {
        let task = UnitTask {
            pipeline: PipelineText {
                path: "/p/x.yaml".into(),
                text: "name: x".into(),
                source_root: Some("s3://b/src".into()),
            },
            cache: "s3://b/cache".into(),
            node: "pages".into(),
            op_version: 3,
            partition: Some("a.warc.gz".into()),
            partition_digest: Some("d".into()),
            key: "k".into(),
            source: Some(("a.warc.gz".into(), "s3://b/src/a.warc.gz".into())),
            input_part: None,
            inputs: BTreeMap::from([(
                "model".to_string(),
                TaskPort::Artifact {
                    key: "m".into(),
                    dir: "model".into(),
                    digest: "md".into(),
                },
            )]),
            input_digests: BTreeMap::from([("model".to_string(), "md".to_string())]),
            prior_keys: vec!["p".into()],
            replace: false,
            accelerated: true,
        };
        let bytes = serde_json::to_vec(&task).expect("serializes");
        let back: UnitTask = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(back, task);
    }
}
