//! Exact dense retrieval speed, as `evaluate` runs it: N random unit
//! vectors of 384 dimensions (e5-small's width) as the corpus, Q queries,
//! the top 100 of each by cosine (`dflow_ir::dense::top_k`).
//! Prints queries per second, and leaves the vectors in the temp directory
//! for `dense_python.py`, which does the same with NumPy and FAISS
//! (`IndexFlatIP`, exact).
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/dense_bench 1000000 1000

use std::time::Instant;

use dflow_ir::dense::top_k;

use dflow_benches::vectors::unit_vectors;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(1_000_000);
    let q = args.next().unwrap_or(1_000);
    let dim = 384;
    let corpus = unit_vectors(n, dim, &mut 0x2545_F491_4F6C_DD1Du64);
    let queries = unit_vectors(q, dim, &mut 0x9E37_79B9_7F4A_7C15u64);
    // The same vectors for dense_python.py (raw little-endian f32).
    for (name, v) in [("corpus", &corpus), ("queries", &queries)] {
        let path = std::env::temp_dir().join(format!("dflow-dense-{name}.f32"));
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("dense_bench: writing {}: {e}", path.display());
        }
    }
    let start = Instant::now();
    let hits = match top_k(&queries, &corpus, dim, 100) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("dense_bench: {e}");
            std::process::exit(1);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let first: Vec<usize> = hits
        .first()
        .map(|h| h.iter().take(3).map(|x| x.0).collect())
        .unwrap_or_default();
    println!(
        "dflow dense::top_k ({} threads): {q} queries × {n} vectors, top 100, in {secs:.2} s = {:.1} queries/s (first query's top 3: {first:?})",
        rayon::current_num_threads(),
        q as f64 / secs
    );
}
