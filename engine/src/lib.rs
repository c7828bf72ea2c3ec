//! dflow's engine: pipeline files with spans ([`spec`]), compilation to a
//! typed DAG ([`compile`]), the content-addressed cache ([`cache`]), the
//! scheduler ([`exec`]), freshness ([`status`]) and SQL over every cached
//! table ([`sql`]). Operators plug in through [`Operator`] and [`Registry`].

#![warn(missing_docs)]

pub mod cache;
pub mod compile;
pub mod diag;
pub mod error;
pub mod exec;
pub mod kit;
pub mod operator;
pub mod ops;
pub mod ports;
pub mod registry;
pub mod source_text;
pub mod spec;
pub mod sql;
pub mod status;
pub mod storage;
pub mod table;
pub mod testing;

pub use cache::{NodeOutput, PortData};
pub use compile::{Plan, PlanNode, compile};
pub use diag::{CompileError, Diagnostics};
pub use error::{Error, Result, ResultExt};
pub use operator::{
    HashedFile, Input, InputKind, InputPort, InputPorts, Operator, Outputs, Partitioning,
    PlanContext, PortType, STATE_DIR, SourcePartition, TableInput, Task,
};
pub use registry::{BuildError, Registry};
pub use spec::PipelineSpec;

/// Re-exported so operator crates use the same Arrow and DataFusion.
pub use datafusion;

/// A registry with the engine's built-in operators.
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    ops::register(&mut r);
    r
}
