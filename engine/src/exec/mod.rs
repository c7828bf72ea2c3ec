//! Execution: units and keys, the scheduler, and progress reporting.

pub mod progress;
pub mod run;
pub mod units;

pub use progress::{
    Event, JsonReporter, PlainReporter, ProgressReporter, QuietReporter, Reporter, UnitStatus,
};
pub use run::{RunOptions, RunRecord, RunSummary, Workspace, load_run_records, run};
pub use units::{NodeOutput, PortData};
