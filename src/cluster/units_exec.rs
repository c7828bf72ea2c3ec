//! The execution plan that carries a node's stale units to a Ballista
//! cluster: one output partition per unit, each run by the executor that
//! gets its task.
//!
//! Ballista cuts every task's plan down to that task's partitions, which
//! it knows how to do for in-memory sources but not for a custom leaf. So
//! the units' indices come from a memory source with one row per partition
//! (the seed), and [`UnitsExec`] runs, for each row it reads, the unit that
//! row names. The plan sent is `CoalescePartitionsExec(UnitsExec(seed))`:
//! the units become one stage of tasks, and the results reach the client
//! through one final task.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use dflow_engine::exec::{TaskDone, TaskHost, UnitTask};
use futures::StreamExt;

/// What runs units on an executor: the task host and the executor's name.
pub struct Worker {
    /// Compiles pipelines and runs units against the shared cache.
    pub host: TaskHost,
    /// The executor's name, reported with every unit it ran.
    pub name: String,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).finish()
    }
}

/// Runs units, one per input row of its seed.
#[derive(Debug)]
pub struct UnitsExec {
    tasks: Arc<Vec<UnitTask>>,
    seed: Arc<dyn ExecutionPlan>,
    worker: Option<Arc<Worker>>,
    properties: Arc<PlanProperties>,
}

/// The seed's one column: a unit's index in [`UnitsExec`]'s tasks.
const TASK: &str = "task";

impl UnitsExec {
    /// The plan a client submits for `tasks`: every unit its own
    /// partition, or with `in_order` (a fold's units) all in one partition,
    /// run one after the other by one executor.
    pub fn plan(tasks: Vec<UnitTask>, in_order: bool) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = Arc::new(Schema::new(vec![Field::new(TASK, DataType::UInt32, false)]));
        let indices = (0..tasks.len())
            .map(|i| {
                u32::try_from(i)
                    .map_err(|_| DataFusionError::Plan("too many units in one node".into()))
            })
            .collect::<DfResult<Vec<u32>>>()?;
        let groups: Vec<Vec<u32>> = if in_order {
            vec![indices]
        } else {
            indices.into_iter().map(|i| vec![i]).collect()
        };
        let partitions = groups
            .into_iter()
            .map(|group| {
                let column: ArrayRef = Arc::new(UInt32Array::from(group));
                Ok(vec![RecordBatch::try_new(schema.clone(), vec![column])?])
            })
            .collect::<DfResult<Vec<_>>>()?;
        let seed = MemorySourceConfig::try_new_exec(&partitions, schema, None)?;
        let units = Self::new(Arc::new(tasks), seed, None);
        Ok(Arc::new(CoalescePartitionsExec::new(Arc::new(units))))
    }

    /// `tasks` run over `seed`'s partitions, by `worker` where there is one.
    pub fn new(
        tasks: Arc<Vec<UnitTask>>,
        seed: Arc<dyn ExecutionPlan>,
        worker: Option<Arc<Worker>>,
    ) -> Self {
        let partitions = seed.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(result_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            tasks,
            seed,
            worker,
            properties: Arc::new(properties),
        }
    }

    /// Whether the units are of an accelerated node (GPU executors first).
    pub fn accelerated(&self) -> bool {
        self.tasks.first().is_some_and(|t| t.accelerated)
    }

    /// The units, in the order their indices name them.
    pub fn tasks(&self) -> &[UnitTask] {
        &self.tasks
    }
}

impl DisplayAs for UnitsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.tasks.first().map(|t| t.node.as_str()).unwrap_or("");
        write!(f, "UnitsExec: node={node}, units={}", self.tasks.len())?;
        if self.accelerated() {
            f.write_str(", accelerated")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for UnitsExec {
    fn name(&self) -> &'static str {
        "UnitsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.seed]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [seed] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("UnitsExec has one child".into()))?;
        Ok(Arc::new(Self::new(
            self.tasks.clone(),
            seed,
            self.worker.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let seed = self.seed.execute(partition, context)?;
        let tasks = self.tasks.clone();
        let worker = self.worker.clone();
        let results = seed.then(move |batch| {
            let tasks = tasks.clone();
            let worker = worker.clone();
            async move { run_batch(batch?, &tasks, worker).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            results,
        )))
    }
}

/// Runs the units a seed batch names, in order, and returns their results.
/// Once one fails the rest are not run (a fold's later units read its
/// state); each of them says so.
async fn run_batch(
    seed: RecordBatch,
    tasks: &Arc<Vec<UnitTask>>,
    worker: Option<Arc<Worker>>,
) -> DfResult<RecordBatch> {
    let worker = worker.ok_or_else(|| {
        DataFusionError::Execution(
            "dflow units run only on executors started with `dflow cluster executor`".into(),
        )
    })?;
    let indices = seed
        .column(0)
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| DataFusionError::Internal("the units' seed is not u32".into()))?
        .clone();
    let mut results = Vec::with_capacity(indices.len());
    let mut failed: Option<String> = None;
    for index in indices.iter().flatten() {
        let task = tasks
            .get(index as usize)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("no unit {index}")))?;
        let outcome = match &failed {
            Some(label) => Err((
                "DF3099".to_string(),
                format!("not run: {label} before it failed"),
            )),
            None => {
                let w = worker.clone();
                let label = task.label();
                let outcome = tokio::task::spawn_blocking(move || w.host.run(&task))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                if outcome.is_err() {
                    failed = Some(label);
                }
                outcome.map_err(|e| (e.code().to_string(), e.to_string()))
            }
        };
        results.push(UnitResult {
            task: index,
            executor: worker.name.clone(),
            outcome,
        });
    }
    results_batch(&results)
}

/// What became of one unit on an executor.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitResult {
    /// The unit's index.
    pub task: u32,
    /// The executor that ran it.
    pub executor: String,
    /// The unit's result, or its error's code and message.
    pub outcome: Result<TaskDone, (String, String)>,
}

/// The columns results travel in.
pub fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(TASK, DataType::UInt32, false),
        Field::new("executor", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("computed", DataType::Boolean, true),
        Field::new("rows", DataType::UInt64, true),
        Field::new("seconds", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("error_code", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
    ]))
}

fn results_batch(results: &[UnitResult]) -> DfResult<RecordBatch> {
    let done = |f: &dyn Fn(&TaskDone) -> Option<String>| -> StringArray {
        results
            .iter()
            .map(|r| r.outcome.as_ref().ok().and_then(f))
            .collect()
    };
    let failed = |f: &dyn Fn(&(String, String)) -> String| -> StringArray {
        results
            .iter()
            .map(|r| r.outcome.as_ref().err().map(f))
            .collect()
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(results.iter().map(|r| r.task).collect::<UInt32Array>()),
        Arc::new(
            results
                .iter()
                .map(|r| Some(r.executor.clone()))
                .collect::<StringArray>(),
        ),
        Arc::new(done(&|d| Some(d.key.clone()))),
        Arc::new(
            results
                .iter()
                .map(|r| r.outcome.as_ref().ok().map(|d| d.computed))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            results
                .iter()
                .map(|r| r.outcome.as_ref().ok().map(|d| d.rows))
                .collect::<UInt64Array>(),
        ),
        Arc::new(
            results
                .iter()
                .map(|r| r.outcome.as_ref().ok().map(|d| d.seconds))
                .collect::<Float64Array>(),
        ),
        Arc::new(done(&|d| d.note.clone())),
        Arc::new(failed(&|(code, _)| code.clone())),
        Arc::new(failed(&|(_, msg)| msg.clone())),
    ];
    Ok(RecordBatch::try_new(result_schema(), columns)?)
}

/// The results in a batch of [`result_schema`].
pub fn read_results(batch: &RecordBatch) -> DfResult<Vec<UnitResult>> {
    fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> DfResult<&'a T> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| DataFusionError::Internal(format!("unit results lack `{name}`")))
    }
    let task = col::<UInt32Array>(batch, TASK)?;
    let executor = col::<StringArray>(batch, "executor")?;
    let key = col::<StringArray>(batch, "key")?;
    let computed = col::<BooleanArray>(batch, "computed")?;
    let rows = col::<UInt64Array>(batch, "rows")?;
    let seconds = col::<Float64Array>(batch, "seconds")?;
    let note = col::<StringArray>(batch, "note")?;
    let error_code = col::<StringArray>(batch, "error_code")?;
    let error = col::<StringArray>(batch, "error")?;
    let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    Ok((0..batch.num_rows())
        .map(|i| UnitResult {
            task: task.value(i),
            executor: executor.value(i).to_string(),
            outcome: match text(key, i) {
                Some(key) => Ok(TaskDone {
                    key,
                    computed: computed.value(i),
                    rows: rows.value(i),
                    seconds: seconds.value(i),
                    note: text(note, i),
                }),
                None => Err((
                    text(error_code, i).unwrap_or_default(),
                    text(error, i).unwrap_or_default(),
                )),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_a_batch() {
        let results = vec![
            UnitResult {
                task: 0,
                executor: "a".into(),
                outcome: Ok(TaskDone {
                    key: "k".into(),
                    computed: true,
                    rows: 7,
                    seconds: 0.5,
                    note: Some("n".into()),
                }),
            },
            UnitResult {
                task: 1,
                executor: "b".into(),
                outcome: Err(("DF3003".into(), "bad".into())),
            },
        ];
        let batch = results_batch(&results).expect("batch");
        assert_eq!(read_results(&batch).expect("read"), results);
    }
}
