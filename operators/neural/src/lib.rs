//! dflow-op-neural: see DESIGN.md for the operators this crate will hold.

use dflow_engine::Registry;

/// Registers this crate's operators and SQL functions (none yet).
pub fn register(_registry: &mut Registry) {}
