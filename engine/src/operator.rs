//! The contract between the engine and the operators.
//!
//! An operator is built from its params at compile time (by a factory in the
//! [`crate::Registry`]), declares its ports and how it is partitioned, tells
//! the compiler the Arrow schema of each output given the schemas of its
//! inputs, and at run time computes one *unit*: one partition of a
//! per-partition operator or source, or the whole input of a global one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::ScalarUDF;

use crate::error::Result;
use crate::spec::Resources;
use crate::storage::{Location, ObjectUrl, SourceFile};
use crate::table::{PartReader, TableWriter};
pub use crate::table::{PartRef, RowCounter};

/// What flows along an edge.
#[derive(Clone, Debug, PartialEq)]
pub enum PortType {
    /// Arrow record batches with this schema.
    Table(SchemaRef),
    /// A directory (a model, an index, exported files).
    Artifact,
}

impl PortType {
    /// A table port with this schema.
    pub fn table(schema: Schema) -> Self {
        PortType::Table(Arc::new(schema))
    }

    /// The schema of a table port; `None` for an artifact.
    pub fn table_schema(&self) -> Option<&SchemaRef> {
        match self {
            PortType::Table(s) => Some(s),
            PortType::Artifact => None,
        }
    }

    /// A readable form of the type: `artifact` or `table(name: type, ...)`.
    pub fn describe(&self) -> String {
        match self {
            PortType::Table(s) => format!(
                "table({})",
                s.fields()
                    .iter()
                    .map(|f| format!("{}: {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PortType::Artifact => "artifact".into(),
        }
    }
}

/// What an input port accepts.
#[derive(Clone, Debug)]
pub enum InputKind {
    /// A table holding at least these columns, of these types (more columns
    /// are fine).
    Table(SchemaRef),
    /// Any table.
    AnyTable,
    /// An artifact directory.
    Artifact,
}

/// An input port of an operator.
#[derive(Clone, Debug)]
pub struct InputPort {
    /// The port's name.
    pub name: String,
    /// What the port accepts.
    pub kind: InputKind,
    /// Whether a node must connect the port.
    pub required: bool,
}

impl InputPort {
    /// A required port taking a table with at least `columns`.
    pub fn table(name: &str, columns: Schema) -> Self {
        Self {
            name: name.into(),
            kind: InputKind::Table(Arc::new(columns)),
            required: true,
        }
    }

    /// A required port taking any table.
    pub fn any_table(name: &str) -> Self {
        Self {
            name: name.into(),
            kind: InputKind::AnyTable,
            required: true,
        }
    }

    /// A required port taking an artifact.
    pub fn artifact(name: &str) -> Self {
        Self {
            name: name.into(),
            kind: InputKind::Artifact,
            required: true,
        }
    }

    /// Makes the port optional.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }
}

/// The input ports of an operator.
#[derive(Clone, Debug)]
pub enum InputPorts {
    /// These ports, by name.
    Fixed(Vec<InputPort>),
    /// Any number of table ports with names the user picks (`sql`).
    AnyTables,
}

/// How an operator's output relates to its input partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// Reads files named by its params; each file is a partition.
    Source,
    /// Output partition *i* depends only on partition *i* of `port` (and on
    /// the whole of any other input, typically an artifact).
    PerPartition {
        /// The input port whose partitions drive the units.
        port: String,
    },
    /// An incremental global operator (a fold): output partition *i*
    /// depends on partitions `0..=i` of `port`, in name order. Units run in
    /// that order; each sees the *state* directories the earlier units left
    /// (see [`Task::prior_states`], [`Outputs::state_dir`]) instead of their
    /// inputs, so a partition added at the end is folded in without reading
    /// the old ones again. A partition changed or inserted in the middle
    /// recomputes it and every later one.
    Fold {
        /// The input port whose partitions are folded in.
        port: String,
    },
    /// The output depends on the whole input.
    Global,
}

impl Partitioning {
    /// The input port whose partitions drive the units, if any.
    pub fn port(&self) -> Option<&str> {
        match self {
            Partitioning::PerPartition { port } | Partitioning::Fold { port } => Some(port),
            Partitioning::Source | Partitioning::Global => None,
        }
    }
}

/// Compile-time context handed to factories and to [`Operator::output_ports`].
#[derive(Clone)]
pub struct PlanContext {
    /// The directory relative paths in params are resolved against (the
    /// pipeline file's directory).
    pub base_dir: PathBuf,
    /// Where relative source paths resolve instead, when set: a prefix in
    /// an object store (see [`crate::ops::files::expand_sources`]).
    pub source_root: Option<ObjectUrl>,
    /// The node's id.
    pub node: String,
    /// The Tokio runtime for async work.
    pub runtime: tokio::runtime::Handle,
    /// Scalar SQL functions registered with the registry.
    pub udfs: Arc<Vec<ScalarUDF>>,
}

impl PlanContext {
    /// Resolves `path` against `base_dir` unless it is absolute.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// A file that belongs to a source: one partition.
#[derive(Clone, Debug)]
pub struct SourcePartition {
    /// Stable name: the path relative to the pipeline directory, or the
    /// object's URL.
    pub name: String,
    /// Where the file is: on local disk or in an object store.
    pub location: Location,
}

impl SourcePartition {
    /// A partition of a local file.
    pub fn local(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            location: Location::Local(path.into()),
        }
    }

    /// Opens the file for reading, wherever it is (ranged GETs for an
    /// object, one block and one read-ahead block in memory).
    pub fn open(&self) -> Result<SourceFile> {
        SourceFile::open(&self.location)
    }

    /// The local path, if the file is on local disk.
    pub fn local_path(&self) -> Option<&Path> {
        self.location.local()
    }
}

/// One input of a unit.
#[derive(Clone, Debug)]
pub enum Input {
    /// A table.
    Table(TableInput),
    /// An artifact directory.
    Artifact(ArtifactInput),
}

/// A table input: some partitions, each a Parquet file in the cache.
#[derive(Clone, Debug)]
pub struct TableInput {
    /// The table's schema.
    pub schema: SchemaRef,
    /// Its partitions, in order.
    pub parts: Vec<PartRef>,
}

impl TableInput {
    /// Rows over every partition.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// Streams the batches of every partition in order; memory stays bounded
    /// by the batch size whatever the table size.
    pub fn batches(&self, batch_size: usize) -> PartReader {
        PartReader::new(self.parts.clone(), self.schema.clone(), batch_size)
    }
}

/// An artifact input: a directory in the cache.
#[derive(Clone, Debug)]
pub struct ArtifactInput {
    /// The artifact directory.
    pub dir: PathBuf,
    /// Content digest of the directory.
    pub digest: String,
}

/// Everything one unit of work sees.
pub struct Task<'a> {
    /// The node's id.
    pub node: &'a str,
    /// The directory relative paths in params are resolved against.
    pub base_dir: &'a Path,
    /// The partition being computed (per-partition operators and sources).
    pub partition: Option<&'a str>,
    /// The file of a source partition.
    pub source: Option<&'a SourcePartition>,
    /// The unit's inputs, by port name.
    pub inputs: &'a BTreeMap<String, Input>,
    /// Where the unit writes its outputs.
    pub outputs: &'a mut Outputs,
    /// The node's resource settings.
    pub resources: &'a Resources,
    /// The Tokio runtime for async work.
    pub runtime: &'a tokio::runtime::Handle,
    /// Scalar SQL functions registered with the registry.
    pub udfs: &'a [ScalarUDF],
    /// Fold operators: the state directories of the earlier units, oldest
    /// first (empty for the first partition and for other operators).
    pub prior_states: &'a [PathBuf],
    /// Survives an interrupted run of this unit (same cache key) and is
    /// removed once the unit completes: where long operators keep
    /// checkpoints to resume from. Use [`Task::work_dir`].
    pub work: &'a Path,
    /// Memos shared by every node and run of the workspace (see
    /// [`Task::memo_dir`]).
    pub memo: &'a Path,
}

impl Task<'_> {
    /// The unit's work directory (created): checkpoints written here are
    /// found by the next run of the same unit after an interruption.
    pub fn work_dir(&self) -> Result<PathBuf> {
        std::fs::create_dir_all(self.work)?;
        Ok(self.work.to_path_buf())
    }

    /// A memo directory named `name` (created), shared by every node and
    /// run of the workspace: where an operator keeps results keyed by their
    /// own content (the neural operators' vector store) so that other nodes
    /// and later runs find them. What is kept there must be exactly what
    /// would be recomputed: it never enters a cache key, and deleting it
    /// (`dflow gc --memo`) costs only time.
    pub fn memo_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.memo.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The table on input port `port`; an error if there is none.
    pub fn table(&self, port: &str) -> Result<&TableInput> {
        match self.inputs.get(port) {
            Some(Input::Table(t)) => Ok(t),
            _ => Err(crate::Error::internal(format!(
                "node `{}`: no table on input port `{port}`",
                self.node
            ))),
        }
    }

    /// The artifact on input port `port`; an error if there is none.
    pub fn artifact(&self, port: &str) -> Result<&ArtifactInput> {
        match self.inputs.get(port) {
            Some(Input::Artifact(a)) => Ok(a),
            _ => Err(crate::Error::internal(format!(
                "node `{}`: no artifact on input port `{port}`",
                self.node
            ))),
        }
    }

    /// Rows per batch: the node's `batch_size` resource, 8192 by default.
    pub fn batch_size(&self) -> usize {
        self.resources.batch_size.unwrap_or(8192).max(1)
    }
}

/// The name of a fold unit's state directory inside its cache entry.
pub const STATE_DIR: &str = "state";

/// Where a unit writes its outputs (a staging directory of the cache).
pub struct Outputs {
    pub(crate) dir: PathBuf,
    pub(crate) schemas: BTreeMap<String, PortType>,
    pub(crate) default_partition: String,
    pub(crate) tables: BTreeMap<(String, String), TableWriter>,
    pub(crate) artifacts: BTreeMap<String, PathBuf>,
    pub(crate) rows: Arc<RowCounter>,
    pub(crate) note: Option<String>,
}

impl Outputs {
    /// The writer of table port `port` for this unit's partition.
    pub fn table(&mut self, port: &str) -> Result<&mut TableWriter> {
        let part = self.default_partition.clone();
        self.table_partition(port, &part)
    }

    /// The writer of a named partition of table port `port` (global
    /// operators that keep their output partitioned).
    pub fn table_partition(&mut self, port: &str, partition: &str) -> Result<&mut TableWriter> {
        let schema = match self.schemas.get(port) {
            Some(PortType::Table(s)) => s.clone(),
            _ => {
                return Err(crate::Error::internal(format!(
                    "operator wrote to `{port}`, which is not one of its table ports"
                )));
            }
        };
        let key = (port.to_string(), partition.to_string());
        if !self.tables.contains_key(&key) {
            let idx = self.tables.keys().filter(|(p, _)| p == port).count();
            let rel = PathBuf::from(port).join(format!("{idx}.parquet"));
            let writer = TableWriter::create(
                &self.dir,
                rel,
                partition.to_string(),
                schema,
                self.rows.clone(),
            )?;
            self.tables.insert(key.clone(), writer);
        }
        self.tables
            .get_mut(&key)
            .ok_or_else(|| crate::Error::internal("table writer vanished"))
    }

    /// Writes one batch to the default partition of `port`.
    pub fn write(&mut self, port: &str, batch: &RecordBatch) -> Result<()> {
        self.table(port)?.write(batch)
    }

    /// A line on what this unit did that its rows do not show (`embed`:
    /// texts embedded and texts read from the vector store): in the
    /// `note` column of `dflow_runs` and the JSON log's unit event. The
    /// last call wins.
    pub fn note(&mut self, text: impl Into<String>) {
        self.note = Some(text.into());
    }

    /// Fold operators: the directory to leave this unit's state in (what the
    /// later units read through [`Task::prior_states`]).
    pub fn state_dir(&mut self) -> Result<PathBuf> {
        let dir = self.dir.join(STATE_DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A directory to fill with the artifact of port `port`.
    pub fn artifact_dir(&mut self, port: &str) -> Result<PathBuf> {
        if !matches!(self.schemas.get(port), Some(PortType::Artifact)) {
            return Err(crate::Error::internal(format!(
                "operator wrote an artifact to `{port}`, which is not an artifact port"
            )));
        }
        let dir = self.dir.join(port);
        std::fs::create_dir_all(&dir)?;
        self.artifacts.insert(port.to_string(), dir.clone());
        Ok(dir)
    }
}

/// A file whose content enters a node's cache key.
#[derive(Clone, Debug, PartialEq)]
pub struct HashedFile {
    /// Where the file is read.
    pub path: PathBuf,
    /// The name the key and the lock file record it under; by default its
    /// path relative to the pipeline's directory. A name independent of
    /// where the file lies (`hf:ORG/NAME@COMMIT/config.json`) gives the same
    /// keys on every machine.
    pub name: Option<String>,
}

impl HashedFile {
    /// `path`, recorded under `name`.
    pub fn named(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        HashedFile {
            path: path.into(),
            name: Some(name.into()),
        }
    }
}

impl From<PathBuf> for HashedFile {
    fn from(path: PathBuf) -> Self {
        HashedFile { path, name: None }
    }
}

/// An operator instance, built from validated params.
///
/// A minimal operator: `op: double` reads a table of integers `n` on its
/// `in` port and writes each doubled, partition by partition, so a new
/// input partition computes one unit and the others stay cached.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
///
/// use dflow_engine::datafusion::arrow::array::{Array, Int64Array};
/// use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
/// use dflow_engine::ports::OUT;
/// use dflow_engine::{
///     Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Registry,
///     Result, Task,
/// };
///
/// /// Params of `op: double` (none: an empty mapping or no `params:`).
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct DoubleParams {}
///
/// struct Double;
///
/// fn numbers() -> Schema {
///     Schema::new(vec![Field::new("n", DataType::Int64, false)])
/// }
///
/// impl Operator for Double {
///     fn version(&self) -> u32 {
///         1
///     }
///     fn partitioning(&self) -> Partitioning {
///         Partitioning::PerPartition { port: "in".into() }
///     }
///     fn input_ports(&self) -> InputPorts {
///         InputPorts::Fixed(vec![InputPort::table("in", numbers())])
///     }
///     fn output_ports(
///         &self,
///         _ctx: &PlanContext,
///         _inputs: &BTreeMap<String, PortType>,
///     ) -> Result<BTreeMap<String, PortType>> {
///         Ok(BTreeMap::from([(OUT.to_string(), PortType::table(numbers()))]))
///     }
///     fn execute(&self, task: &mut Task<'_>) -> Result<()> {
///         let schema = Arc::new(numbers());
///         for batch in task.table("in")?.batches(task.batch_size()) {
///             let batch = batch?;
///             let n = batch
///                 .column(0)
///                 .as_any()
///                 .downcast_ref::<Int64Array>()
///                 .ok_or_else(|| Error::data("column `n` is not Int64"))?;
///             let doubled: Int64Array = n.iter().map(|v| v.map(|v| v * 2)).collect();
///             let out = RecordBatch::try_new(schema.clone(), vec![Arc::new(doubled)])?;
///             task.outputs.write(OUT, &out)?;
///         }
///         Ok(())
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.register::<DoubleParams, _>("double", "doubles `n`", |_params, _ctx| {
///     Ok(Arc::new(Double) as Arc<dyn Operator>)
/// });
/// assert!(registry.op("double").is_some());
/// ```
pub trait Operator: Send + Sync {
    /// Bumped by hand when the output for the same input and params changes.
    fn version(&self) -> u32;

    /// How the output relates to the input partitions.
    fn partitioning(&self) -> Partitioning;

    /// The input ports the operator accepts.
    fn input_ports(&self) -> InputPorts;

    /// The output ports and their types, given the types on the inputs.
    /// Errors are reported as plan errors on the node's params.
    fn output_ports(
        &self,
        ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>>;

    /// Sources: the files that make up this source, one per partition.
    fn list_partitions(&self, _ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        Ok(Vec::new())
    }

    /// Files named by the params whose content enters the cache key (word
    /// lists, configuration files, model weights).
    fn hashed_files(&self) -> Vec<HashedFile> {
        Vec::new()
    }

    /// Computes one unit.
    fn execute(&self, task: &mut Task<'_>) -> Result<()>;

    /// Whether its units want an accelerator (a GPU): on a cluster they go
    /// to executors started with `--gpu` when there are any.
    fn accelerated(&self) -> bool {
        false
    }

    /// Called after the node's outputs are in the cache, whether computed or
    /// not: operators with effects outside the cache (`export`) make them
    /// here, idempotently.
    fn publish(&self, _ctx: &PlanContext, _outputs: &crate::cache::NodeOutput) -> Result<()> {
        Ok(())
    }
}
