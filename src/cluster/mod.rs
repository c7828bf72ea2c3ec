//! The cluster (`cluster` feature): the same pipeline on Apache DataFusion
//! Ballista 55. The run plans where it is started, as a local run does
//! (keys, staleness, the lock file), and sends each node's stale units to
//! the scheduler as one job; executors run them against the shared cache in
//! an object store and publish their entries; only keys and counts come
//! back. Rooms:
//!
//! - [`units_exec`]: the execution plan that carries units, one partition each;
//! - [`codec`]: how that plan travels (Ballista's codec for everything else);
//! - [`placement`]: which executor runs which unit (GPU executors for accelerated nodes);
//! - [`roles`]: `dflow cluster scheduler` and `dflow cluster executor`;
//! - [`client`]: `dflow run --cluster`, the engine's [`RemoteUnits`];
//! - [`sql`]: `dflow sql --cluster`, the tables read from the shared cache;
//! - [`stores`]: object stores for DataFusion in the scheduler and executors.
//!
//! [`RemoteUnits`]: dflow_engine::exec::RemoteUnits

pub mod client;
pub mod codec;
pub mod placement;
pub mod roles;
pub mod sql;
pub mod stores;
pub mod units_exec;

pub use client::ClusterUnits;
pub use roles::{ExecutorOptions, SchedulerOptions, run_executor, run_scheduler};
pub use sql::cluster_session;
