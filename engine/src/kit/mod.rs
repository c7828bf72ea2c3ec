//! The operator kit: what operators share besides the [`crate::Operator`]
//! contract, so that an operator is its params, its logic and its tests.
//!
//! - [`columns`]: typed column access with errors that name the column, and
//!   the port declarations of text tables;
//! - [`rng`]: the seeded generator every sampling operator uses, so that a
//!   seed means the same draw everywhere;
//! - [`state`]: small Parquet files an operator keeps as its state;
//! - [`crate::ports`]: the names of the shared ports.

pub mod columns;
pub mod rng;
pub mod state;
