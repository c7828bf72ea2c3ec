//! Alignment speed: one origin with N QAs in each of two languages
//! (random unit vectors of 384 dimensions, e5-small's width), every pair
//! compared, mutual best matches found. Prints pairs compared per second
//! per core; `align_python.py` does the same with NumPy.
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/align_bench 10000

use std::time::Instant;

use dflow_op_retrieval::align::best_matches;

use dflow_benches::vectors::unit_vectors;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dim = 384;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let a = unit_vectors(n, dim, &mut seed);
    let b = unit_vectors(n, dim, &mut seed);
    let ar: Vec<&[f32]> = a.chunks(dim).collect();
    let br: Vec<&[f32]> = b.chunks(dim).collect();
    let t = Instant::now();
    let (ab, bb) = best_matches(&ar, &br);
    let secs = t.elapsed().as_secs_f64();
    let mutual = ab
        .iter()
        .enumerate()
        .filter(|(i, (j, _))| bb[*j].0 == *i)
        .count();
    let cores = rayon::current_num_threads();
    let pairs = (n * n) as f64;
    println!(
        "dflow align: {n} x {n} QAs ({dim} dims) in {secs:.2} s on {cores} threads = {:.1} M pairs/s/core ({mutual} mutual best)",
        pairs / secs / cores as f64 / 1e6
    );
}
