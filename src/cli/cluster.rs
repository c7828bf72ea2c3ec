//! `dflow cluster scheduler|executor`, and what `run --cluster` needs. The
//! commands exist in every build, so that a build without the `cluster`
//! feature says how to get one instead of not knowing the word.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;
use dflow_engine::Error;
#[cfg(feature = "cluster")]
use dflow_engine::exec::Remote;

/// A role in a cluster.
#[derive(Subcommand, Debug)]
pub enum ClusterRole {
    /// Run a scheduler: it hands units to executors and retries them when
    /// an executor is lost.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
        /// Host name executors and clients reach it by (default: the bind address).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat after which an executor counts as
        /// lost and its units run elsewhere.
        #[arg(long, default_value_t = 60)]
        executor_timeout_secs: u64,
    },
    /// Run an executor: it runs units with the operators of this binary.
    Executor {
        /// The scheduler's address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Address of the executor's data service; its task service listens
        /// on the next port.
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: SocketAddr,
        /// Host name the scheduler and other executors reach it by.
        #[arg(long)]
        external_host: Option<String>,
        /// Units run at once (default: one per core).
        #[arg(long)]
        slots: Option<usize>,
        /// Its name in run logs (default: host:port).
        #[arg(long)]
        name: Option<String>,
        /// Where it keeps its working copy of the cache (default:
        /// `~/.cache/dflow/executor-<port>`).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 10)]
        heartbeat_secs: u64,
        /// This machine has a GPU: units of embed, score, classify and
        /// train go to such executors whenever the cluster has one (its
        /// name in run logs ends in `@gpu`).
        #[arg(long)]
        gpu: bool,
    },
}

/// Runs a cluster role until it is stopped.
pub fn run_role(role: ClusterRole, runtime: &tokio::runtime::Runtime) -> Result<(), Error> {
    #[cfg(feature = "cluster")]
    {
        use crate::cluster::{ExecutorOptions, SchedulerOptions, run_executor, run_scheduler};
        match role {
            ClusterRole::Scheduler {
                bind,
                external_host,
                executor_timeout_secs,
            } => run_scheduler(
                &SchedulerOptions {
                    bind,
                    external_host,
                    executor_timeout_secs,
                },
                runtime,
            ),
            ClusterRole::Executor {
                scheduler,
                bind,
                external_host,
                slots,
                name,
                work_dir,
                heartbeat_secs,
                gpu,
            } => run_executor(
                &ExecutorOptions {
                    scheduler,
                    bind,
                    external_host,
                    slots: slots.unwrap_or_else(|| {
                        std::thread::available_parallelism()
                            .map(|n| n.get())
                            .unwrap_or(1)
                    }),
                    name,
                    work_dir: work_dir.unwrap_or_else(|| {
                        dflow_engine::storage::mirror_root()
                            .with_file_name(format!("executor-{}", bind.port()))
                    }),
                    heartbeat_secs,
                    gpu,
                },
                runtime,
            ),
        }
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (role, runtime);
        Err(not_built())
    }
}

/// The remote that runs units on the cluster at `scheduler`.
#[cfg(feature = "cluster")]
pub fn remote(scheduler: &str, runtime: &tokio::runtime::Runtime) -> Result<Remote, Error> {
    let units = crate::cluster::ClusterUnits::connect(scheduler, runtime.handle().clone())?;
    Ok(Remote(std::sync::Arc::new(units)))
}

/// Runs `query` on the cluster at `scheduler` over the tables of `plan`'s
/// lock file, read from the shared cache.
#[cfg(feature = "cluster")]
pub fn sql(
    scheduler: &str,
    plan: &dflow_engine::Plan,
    lock: &dflow_engine::cache::LockFile,
    shared: &dflow_engine::cache::SharedCache,
    query: &str,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, Error> {
    let ctx = crate::cluster::cluster_session(scheduler, plan, lock, shared)?;
    let batches = runtime.block_on(dflow_engine::sql::query(
        &ctx,
        query,
        dflow_engine::sql::Access::ReadOnly,
    ))?;
    Ok(batches)
}

/// Without the `cluster` feature there is no cluster to query.
#[cfg(not(feature = "cluster"))]
pub fn sql(
    _scheduler: &str,
    _plan: &dflow_engine::Plan,
    _lock: &dflow_engine::cache::LockFile,
    _shared: &dflow_engine::cache::SharedCache,
    _query: &str,
    _runtime: &tokio::runtime::Runtime,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, Error> {
    Err(not_built())
}

/// Without the `cluster` feature there is no remote.
#[cfg(not(feature = "cluster"))]
pub fn remote(
    _scheduler: &str,
    _runtime: &tokio::runtime::Runtime,
) -> Result<dflow_engine::exec::Remote, Error> {
    Err(not_built())
}

#[cfg(not(feature = "cluster"))]
fn not_built() -> Error {
    Error::Cluster(
        "this dflow was built without the `cluster` feature: \
         build it with `cargo build --features cluster`"
            .into(),
    )
}
