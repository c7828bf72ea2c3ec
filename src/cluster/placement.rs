//! Which executor gets which task: round robin, as Ballista's own policy,
//! except that the units of accelerated nodes (`Operator::accelerated`:
//! embed, score, classify, train) go only to executors started with
//! `--gpu` whenever the cluster has one. Ballista knows executors only by
//! id and free slots, so a GPU executor's id carries [`GPU_MARK`].
//!
//! Binding a task (a slice of a stage's pending partitions, one task info,
//! one task description) follows Ballista 55's `bind_one`, which is
//! private to its crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballista_core::JobId;
use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::{RangeShuffleReaderExec, ShuffleReaderExec};
use ballista_core::serde::protobuf::{AvailableVcores, job_status};
use ballista_core::serde::scheduler::TaskKey;
use ballista_scheduler::cluster::{BoundTask, DistributionPolicy};
use ballista_scheduler::state::execution_graph::{TaskDescription, create_task_info};
use ballista_scheduler::state::execution_stage::RunningStage;
use ballista_scheduler::state::task_manager::JobInfoCache;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::units_exec::UnitsExec;

/// The end of the id of an executor started with `--gpu`.
pub const GPU_MARK: &str = "@gpu";

/// Whether the executor `id` was started with `--gpu`.
pub fn has_gpu(id: &str) -> bool {
    id.ends_with(GPU_MARK)
}

/// How long a GPU executor is remembered without being seen with a free
/// slot: Ballista hands a policy only executors with free slots, so a GPU
/// executor busy with a long unit is unseen, not gone. One unseen for this
/// long is taken for lost, and accelerated units go anywhere again.
const GPU_MEMORY: Duration = Duration::from_secs(600);

/// Round robin, accelerated units to GPU executors first.
#[derive(Debug, Default)]
pub struct AcceleratorAware {
    /// GPU executors, when each was last seen with a free slot.
    gpus: Mutex<HashMap<String, Instant>>,
}

impl AcceleratorAware {
    /// Whether the cluster has a GPU executor, remembering those in `budgets`.
    fn cluster_has_gpu(&self, budgets: &[&mut AvailableVcores]) -> bool {
        let Ok(mut gpus) = self.gpus.lock() else {
            return budgets.iter().any(|b| has_gpu(&b.executor_id));
        };
        let now = Instant::now();
        for b in budgets.iter().filter(|b| has_gpu(&b.executor_id)) {
            gpus.insert(b.executor_id.clone(), now);
        }
        gpus.retain(|_, seen| now.duration_since(*seen) < GPU_MEMORY);
        !gpus.is_empty()
    }
}

#[async_trait::async_trait]
impl DistributionPolicy for AcceleratorAware {
    async fn bind_tasks(
        &self,
        mut budgets: Vec<&mut AvailableVcores>,
        running_jobs: Arc<HashMap<JobId, JobInfoCache>>,
    ) -> datafusion::error::Result<Vec<BoundTask>> {
        let mut bound = Vec::new();
        let any_gpu = self.cluster_has_gpu(&budgets);
        if budgets.iter().all(|b| b.vcores == 0) {
            return Ok(bound);
        }
        budgets.sort_by_key(|b| std::cmp::Reverse(b.vcores));
        let mut next = 0usize;
        for (job_id, job) in running_jobs.iter() {
            if !matches!(job.status, Some(job_status::Status::Running(_))) {
                continue;
            }
            let mut graph = job.execution_graph.write().await;
            let session_id = graph.session_id().to_string();
            let mut done_stages = Vec::new();
            while let Some(stage) = graph.fetch_running_stage(&done_stages) {
                done_stages.push(stage.stage_id);
                let gpu_only = any_gpu && wants_accelerator(&stage.plan);
                let eligible: Vec<usize> = (0..budgets.len())
                    .filter(|&i| !gpu_only || has_gpu(&budgets[i].executor_id))
                    .collect();
                // Round robin over the eligible executors with free slots
                // (none: the stage waits for a GPU executor to free one).
                let mut idle = 0usize;
                while idle < eligible.len() {
                    let budget = &mut *budgets[eligible[next % eligible.len()]];
                    next += 1;
                    if budget.vcores == 0 {
                        idle += 1;
                        continue;
                    }
                    match bind_one(stage, &session_id, job_id, budget) {
                        Some(task) => {
                            bound.push(task);
                            idle = 0;
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(bound)
    }

    fn name(&self) -> &str {
        "dflow accelerator-aware round robin"
    }
}

/// Whether a stage runs units of an accelerated node.
fn wants_accelerator(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(units) = plan.downcast_ref::<UnitsExec>() {
        return units.accelerated();
    }
    plan.children().into_iter().any(wants_accelerator)
}

/// Whether the stage's root reads through a single partition below it: its
/// whole pending queue must then be one task (Ballista's rule).
fn collapses(root: &Arc<dyn ExecutionPlan>) -> bool {
    fn walk(node: &Arc<dyn ExecutionPlan>) -> bool {
        if node.downcast_ref::<ShuffleReaderExec>().is_some()
            || node.downcast_ref::<RangeShuffleReaderExec>().is_some()
        {
            return false;
        }
        if node.output_partitioning().partition_count() == 1 {
            return true;
        }
        match node.children().as_slice() {
            [child] => walk(child),
            _ => false,
        }
    }
    match root.children().as_slice() {
        [child] => walk(child),
        _ => false,
    }
}

/// Binds the next slice of `stage`'s pending partitions to the executor of
/// `budget`, or `None` when nothing is pending.
fn bind_one(
    stage: &mut RunningStage,
    session_id: &str,
    job_id: &JobId,
    budget: &mut AvailableVcores,
) -> Option<BoundTask> {
    let collapse = collapses(&stage.plan);
    let cap = stage
        .session_config
        .options()
        .extensions
        .get::<BallistaConfig>()
        .map(|c| c.max_partitions_per_task())
        .filter(|&n| n > 0)
        .unwrap_or(usize::MAX);
    let max = if collapse {
        usize::MAX
    } else {
        (budget.vcores as usize).min(cap)
    };
    let partitions = stage.pending.next_slice(max);
    if partitions.is_empty() {
        return None;
    }
    let vcores = if collapse {
        1
    } else {
        u32::try_from(partitions.len()).unwrap_or(u32::MAX)
    };
    let executor = budget.executor_id.clone();
    let task_id = stage.task_infos.len();
    let attempt = partitions
        .iter()
        .filter_map(|p| stage.task_failure_numbers.get(*p))
        .max()
        .copied()
        .unwrap_or(0);
    let mut info = create_task_info(executor.clone(), task_id);
    info.global_input_partition_ids = partitions.clone();
    info.vcores_consumed = vcores;
    stage.task_infos.push(info);
    let task = TaskDescription {
        session_id: session_id.to_string(),
        key: TaskKey {
            job_id: job_id.clone(),
            stage_id: stage.stage_id,
            task_id,
        },
        stage_attempt_num: stage.stage_attempt_num,
        task_attempt: attempt,
        global_input_partition_ids: partitions,
        vcores_consumed: vcores,
        plan: stage.plan.clone(),
        session_config: stage.session_config.clone(),
    };
    budget.vcores = budget.vcores.saturating_sub(vcores);
    Some((executor, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_executors_are_known_by_their_mark() {
        assert!(has_gpu("node-3:50051@gpu"));
        assert!(!has_gpu("node-3:50051"));
        assert!(!has_gpu("gpu-node"));
    }
}
