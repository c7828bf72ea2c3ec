//! Language id predictions per second: dflow's fastText reader with the
//! bundled lid.176 (top-1 and top-10) on every Tatoeba sentence, one core.
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/langid_bench ../shared/data/eval/tatoeba-laser [ROUNDS]
//!
//! `benches/langid.sh` runs it beside Python fastText on the same texts.

use std::time::Instant;

use dflow_op_web::langid::{bundled_model, predict};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "../shared/data/eval/tatoeba-laser".into());
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tatoeba."))
    });
    names.sort();
    let texts: Vec<String> = names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let t = Instant::now();
    let model = bundled_model().expect("bundled model");
    println!("model load: {:.3} s", t.elapsed().as_secs_f64());
    for k in [1, 10] {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            let n: usize = texts.iter().map(|s| predict(model, s, k).len()).sum();
            std::hint::black_box(n);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "dflow  k={k:<2} {} texts  best of {rounds}: {best:.3} s  {:>8.0} predictions/s",
            texts.len(),
            texts.len() as f64 / best
        );
    }
}
