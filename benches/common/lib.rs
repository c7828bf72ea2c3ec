//! Helpers shared by the benchmark programs in `benches/` (each is an
//! example of this package: `cargo build --workspace --all-targets` builds
//! them into `target/debug/examples/`).

pub mod vectors;
