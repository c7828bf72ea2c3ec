//! The names of the ports operators share, so that no operator spells them
//! by hand: a pipeline's `inputs: { in: node }` reads a node's [`OUT`]
//! unless it names another port (`node.rejected`).

/// The main output of an operator, and what `node` means in an input.
pub const OUT: &str = "out";
/// The rows a filter or parser turned away, each with its reason.
pub const REJECTED: &str = "rejected";
