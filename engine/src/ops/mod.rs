//! Operators built into the engine: `sql`, the file sources and `export`.

pub mod export;
pub mod files;
pub mod sql;

use crate::registry::Registry;

/// Registers the built-in operators.
pub fn register(registry: &mut Registry) {
    sql::register(registry);
    files::register(registry);
    export::register(registry);
}
