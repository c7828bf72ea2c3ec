//! The `dflow` command-line tool: wires the operator crates into the engine's
//! registry and exposes the engine as subcommands.

pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;

use dflow_engine::Registry;

/// Every operator and SQL function dflow ships with.
pub fn registry() -> Registry {
    let mut r = dflow_engine::builtin_registry();
    dflow_op_web::register(&mut r);
    dflow_op_neural::register(&mut r);
    dflow_op_retrieval::register(&mut r);
    r
}
