//! The two processes of a cluster, both in the `dflow` binary: the
//! scheduler (Ballista's, with dflow's codec) and executors that run units
//! with the operators compiled into this binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use dflow_engine::Error;
use dflow_engine::exec::TaskHost;

use ballista_core::RuntimeProducer;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_scheduler::scheduler_server::SessionBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use super::codec::DflowCodec;
use super::placement::{AcceleratorAware, GPU_MARK};
use super::stores::EnvRegistry;
use super::units_exec::Worker;

/// How a scheduler listens and when it gives up on an executor.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Address to listen on (`host:port`).
    pub bind: SocketAddr,
    /// Host name executors and clients reach it by (default: the bind host).
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is lost and its
    /// tasks run elsewhere.
    pub executor_timeout_secs: u64,
}

/// Runs a scheduler until it fails or the process is stopped.
pub fn run_scheduler(
    opts: &SchedulerOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let cfg = SchedulerConfig {
        bind_host: opts.bind.ip().to_string(),
        external_host: opts
            .external_host
            .clone()
            .unwrap_or_else(|| opts.bind.ip().to_string()),
        bind_port: opts.bind.port(),
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        // One unit per executor in turn, so that units spread over the
        // cluster instead of filling the first executor's slots; units of
        // accelerated nodes only on `--gpu` executors when there are any.
        task_distribution: TaskDistributionPolicy::Custom(Arc::new(AcceleratorAware::default())),
        executor_timeout_seconds: opts.executor_timeout_secs.max(2),
        expire_dead_executor_interval_seconds: (opts.executor_timeout_secs / 3).max(1),
        override_physical_codec: Some(Arc::new(DflowCodec::default())),
        override_session_builder: Some(session_builder()),
        ..Default::default()
    };
    let addr = opts.bind;
    eprintln!(
        "dflow cluster scheduler listening on {addr} ({})",
        super::codec::BUILD
    );
    runtime
        .block_on(async move {
            let cluster = BallistaCluster::new_from_config(&cfg).await?;
            start_server(cluster, addr, Arc::new(cfg)).await
        })
        .map_err(|e| Error::Cluster(format!("the scheduler on {addr} stopped: {e}")))
}

/// How an executor joins a cluster.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// The scheduler (`host:port`).
    pub scheduler: String,
    /// Address of the executor's data (Arrow Flight) service; its task
    /// service listens on the next port.
    pub bind: SocketAddr,
    /// Host name the scheduler and other executors reach it by.
    pub external_host: Option<String>,
    /// Units run at once.
    pub slots: usize,
    /// The executor's name in the run log (default: host:port).
    pub name: Option<String>,
    /// Where it keeps its working copy of the cache and Ballista's files.
    pub work_dir: PathBuf,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_secs: u64,
    /// It has a GPU: units of accelerated nodes go to such executors.
    pub gpu: bool,
}

/// Runs an executor until it is stopped (Ctrl-C, SIGTERM) or loses its
/// scheduler.
pub fn run_executor(
    opts: &ExecutorOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let (scheduler_host, scheduler_port) = split_host_port(&opts.scheduler)?;
    let external_host = opts
        .external_host
        .clone()
        .unwrap_or_else(|| opts.bind.ip().to_string());
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("{external_host}:{}", opts.bind.port()));
    let name = if opts.gpu {
        format!("{name}{GPU_MARK}")
    } else {
        name
    };
    let grpc_port = opts.bind.port().checked_add(1).ok_or_else(|| {
        Error::config("the executor's port must leave room for its task service on the next port")
    })?;
    std::fs::create_dir_all(&opts.work_dir)?;
    let ballista_dir = opts.work_dir.join("ballista");
    std::fs::create_dir_all(&ballista_dir)?;
    let worker = Arc::new(Worker {
        host: TaskHost::new(crate::registry(), runtime.handle().clone(), &opts.work_dir),
        name: name.clone(),
    });
    let cfg = ExecutorProcessConfig {
        executor_id: name.clone(),
        bind_host: opts.bind.ip().to_string(),
        external_host: Some(external_host),
        port: opts.bind.port(),
        grpc_port,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: opts.slots.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(ballista_dir.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: opts.heartbeat_secs.max(1),
        override_physical_codec: Some(Arc::new(DflowCodec::for_executor(worker))),
        override_runtime_producer: Some(runtime_producer(ballista_dir.clone())),
        ..Default::default()
    };
    eprintln!(
        "dflow cluster executor {name} on {} with {} slots, scheduler {}",
        opts.bind, cfg.vcores, opts.scheduler
    );
    runtime
        .block_on(start_executor_process(Arc::new(cfg)))
        .map_err(|e| Error::Cluster(format!("executor {name} stopped: {e}")))
}

/// The scheduler's sessions: Ballista's, with object stores from the
/// environment (it reads the files' sizes while planning a query).
fn session_builder() -> SessionBuilder {
    let registry = Arc::new(EnvRegistry::default());
    Arc::new(move |config: SessionConfig| {
        Ok(SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(
                RuntimeEnvBuilder::new()
                    .with_object_store_registry(registry.clone())
                    .build_arc()?,
            )
            .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
            .with_scalar_functions(ballista_scalar_functions())
            .with_aggregate_functions(ballista_aggregate_functions())
            .with_window_functions(ballista_window_functions())
            .build())
    })
}

/// An executor's runtime: object stores from the environment, spill files
/// in its work directory.
fn runtime_producer(spill: PathBuf) -> RuntimeProducer {
    let registry = Arc::new(EnvRegistry::default());
    Arc::new(move |_config: &SessionConfig| {
        RuntimeEnvBuilder::new()
            .with_object_store_registry(registry.clone())
            .with_temp_file_path(spill.clone())
            .build_arc()
    })
}

/// `host:port` split, with a message that says what was expected.
pub fn split_host_port(addr: &str) -> Result<(String, u16), Error> {
    let bad = || Error::config(format!("`{addr}` is not host:port (e.g. 10.0.0.5:50050)"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}
