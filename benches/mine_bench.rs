//! BM25 mining speed: top-k queries/s over a corpus of N documents built
//! from XQuAD-R's sentences (11 languages), repeated with a copy marker
//! token until N is reached, whitespace + lower-case tokens (as in
//! `mine_python.py`, which does the same with `bm25s`).
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/mine_bench ../shared/data/eval/xquad-r 200000 2000 200

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use dflow_op_retrieval::analysis::{Analyzer, AnalyzerChoice};
use dflow_op_retrieval::bm25::{
    Bm25Params, Doc, Exclude, Scratch, Searcher, extend_index, text_hash,
};
use rayon::prelude::*;

fn sentences_and_questions(dir: &Path) -> (Vec<String>, Vec<String>) {
    let (mut docs, mut queries) = (Vec::new(), Vec::new());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("xquad-r dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    for f in files {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&f).expect("open"))
            .read_to_string(&mut text)
            .expect("gunzip");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        for article in v["data"].as_array().into_iter().flatten() {
            for para in article["paragraphs"].as_array().into_iter().flatten() {
                for s in para["sentences"].as_array().into_iter().flatten() {
                    docs.push(s.as_str().unwrap_or_default().to_string());
                }
                for qa in para["qas"].as_array().into_iter().flatten() {
                    queries.push(qa["question"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    (docs, queries)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("../shared/data/eval/xquad-r");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let q: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let k: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(200);
    let (base, questions) = sentences_and_questions(Path::new(dir));
    let corpus: Vec<String> = (0..n)
        .map(|i| format!("{} copy{}", base[i % base.len()], i / base.len()))
        .collect();
    // Queries spread over the languages.
    let step = (questions.len() / q.max(1)).max(1);
    let queries: Vec<&String> = questions.iter().step_by(step).take(q).collect();

    let t = Instant::now();
    let docs: Vec<Doc> = corpus
        .par_iter()
        .enumerate()
        .map_init(
            || Analyzer::new(AnalyzerChoice::Whitespace, "und"),
            |a, (i, text)| Doc {
                ord: i as u64,
                tokens: a.tokens(text),
                hash: text_hash(text),
            },
        )
        .collect();
    let tmp = tempfile::tempdir().expect("tmp");
    extend_index(tmp.path(), None, docs).expect("index");
    let index_s = t.elapsed().as_secs_f64();

    let searcher = Searcher::open(tmp.path(), Bm25Params::default()).expect("open");
    let t = Instant::now();
    let hits: usize = queries
        .par_iter()
        .map_init(
            || {
                (
                    Analyzer::new(AnalyzerChoice::Whitespace, "und"),
                    Scratch::default(),
                )
            },
            |(a, s), query| {
                searcher
                    .search(&a.tokens(query), k, Exclude::default(), s)
                    .map(|(h, _)| h.len())
                    .unwrap_or(0)
            },
        )
        .sum();
    let search_s = t.elapsed().as_secs_f64();
    println!(
        "dflow (tantivy index, Lucene BM25): {n} docs indexed in {index_s:.2} s; {} queries top-{k} in {search_s:.2} s = {:.0} queries/s on {} threads ({hits} hits)",
        queries.len(),
        queries.len() as f64 / search_s,
        rayon::current_num_threads()
    );
}
