//! Execution, in rooms with one job each:
//!
//! - [`planner`]: a node's units, their keys, which are stale and why;
//! - [`scheduler`]: node order, parallelism, failures, cancellation;
//! - [`unit`]: one unit, from its inputs to its committed cache entry;
//! - [`remote`]: units as tasks for another process (a cluster);
//! - [`lockstate`]: the lock file while a run goes on;
//! - [`runlog`]: the run's records (`dflow_runs`);
//! - [`run`]: a run, tying them together;
//! - [`progress`]: what a run reports as it goes.

pub mod lockstate;
pub mod planner;
pub mod progress;
pub mod remote;
pub mod run;
pub mod runlog;
pub mod scheduler;
pub mod unit;

pub use progress::{
    Event, JsonReporter, PlainReporter, ProgressReporter, QuietReporter, Reporter, UnitStatus,
};
pub use remote::{RemoteUnits, TaskDone, TaskHost, UnitTask};
pub use run::{Remote, RunOptions, RunSummary, Workspace, run};
pub use runlog::{RunRecord, load_run_records};
pub use scheduler::Cancel;
