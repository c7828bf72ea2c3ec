//! Alignment speed: one origin with N QAs in each of two languages
//! (random unit vectors of 384 dimensions, e5-small's width), every pair
//! compared, mutual best matches found. Prints pairs compared per second
//! per core; `align_python.py` does the same with NumPy.
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/align_bench 10000

use std::time::Instant;

use dflow_op_retrieval::align::best_matches;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dim = 384;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut unit = || {
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let a: Vec<Vec<f32>> = (0..n).map(|_| unit()).collect();
    let b: Vec<Vec<f32>> = (0..n).map(|_| unit()).collect();
    let ar: Vec<&[f32]> = a.iter().map(Vec::as_slice).collect();
    let br: Vec<&[f32]> = b.iter().map(Vec::as_slice).collect();
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
