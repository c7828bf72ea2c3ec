//! `dflow run --cluster`: a node's stale units submitted to the scheduler
//! as one Ballista job, and the results mapped back to the units.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::physical_plan::common::collect;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::PhysicalPlanNode;
use dflow_engine::Error;
use dflow_engine::exec::{RemoteUnits, TaskDone, UnitTask};

use super::codec::DflowCodec;
use super::units_exec::{UnitResult, UnitsExec, read_results};

/// Runs units on the cluster whose scheduler is at `scheduler`.
pub struct ClusterUnits {
    scheduler: String,
    runtime: tokio::runtime::Handle,
    session: String,
}

impl ClusterUnits {
    /// A client of the scheduler at `scheduler` (`host:port`), which must
    /// answer now.
    pub fn connect(scheduler: &str, runtime: tokio::runtime::Handle) -> Result<Self, Error> {
        let (host, port) = super::roles::split_host_port(scheduler)?;
        check_reachable(scheduler, &host, port)?;
        Ok(Self {
            scheduler: format!("http://{host}:{port}"),
            runtime,
            session: format!("dflow-{}-{}", std::process::id(), unix_ms()),
        })
    }

    async fn submit(&self, tasks: Vec<UnitTask>, in_order: bool) -> Result<Vec<UnitResult>, Error> {
        let job = tasks.first().map(|t| t.node.clone()).unwrap_or_default();
        let plan = UnitsExec::plan(tasks, in_order)?;
        // One unit per task, so that units spread over the executors and a
        // lost executor costs only its own units.
        let config = SessionConfig::new_with_ballista()
            .set_usize("ballista.scheduler.max_partitions_per_task", 1)
            .set_str("ballista.job.name", &format!("dflow {job}"));
        let codec = DflowCodec::default();
        let stream = execute_physical_plan::<PhysicalPlanNode>(
            self.scheduler.clone(),
            &config.ballista_config(),
            plan,
            &codec,
            self.session.clone(),
            config,
        )
        .await?;
        let mut results = Vec::new();
        for batch in collect(stream).await? {
            results.extend(read_results(&batch)?);
        }
        Ok(results)
    }
}

impl RemoteUnits for ClusterUnits {
    fn run_tasks(
        &self,
        tasks: Vec<UnitTask>,
        in_order: bool,
    ) -> Vec<Result<(TaskDone, String), Error>> {
        let n = tasks.len();
        let labels: Vec<String> = tasks.iter().map(UnitTask::label).collect();
        let results = match self.runtime.block_on(self.submit(tasks, in_order)) {
            Ok(results) => results,
            Err(e) => {
                let msg = format!("the cluster at {} failed the job: {e}", self.scheduler);
                return (0..n).map(|_| Err(Error::Cluster(msg.clone()))).collect();
            }
        };
        let mut by_task: HashMap<u32, UnitResult> =
            results.into_iter().map(|r| (r.task, r)).collect();
        labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let Some(r) = u32::try_from(i).ok().and_then(|i| by_task.remove(&i)) else {
                    return Err(Error::Cluster(format!(
                        "the cluster returned nothing for {label}"
                    )));
                };
                match r.outcome {
                    Ok(done) => Ok((done, r.executor)),
                    Err((code, msg)) => Err(Error::with_code(
                        &code,
                        format!("on executor {}: {msg}", r.executor),
                    )),
                }
            })
            .collect()
    }
}

/// Fails with a message that says how to start a scheduler when none
/// answers at `scheduler`.
pub fn check_reachable(scheduler: &str, host: &str, port: u16) -> Result<(), Error> {
    let reachable = (host, port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok());
    if reachable {
        return Ok(());
    }
    Err(Error::Cluster(format!(
        "no scheduler answers at {scheduler}: start one with \
         `dflow cluster scheduler --bind {scheduler}`"
    )))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
