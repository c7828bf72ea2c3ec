//! Sequence classification against `transformers`
//! (`scripts/classifier_references.py`): a tiny BERT with WebFAQ 2.0's 8
//! topic classes (softmax) and a tiny XLM-R with a multi-label head
//! (sigmoid), logits and probabilities to 1e-4, label names from
//! `id2label`; and the checkpoints whose label map cannot be right.

use std::path::{Path, PathBuf};

use dflow_op_neural::Cpu;
use dflow_op_neural::classify_op::probabilities;
use dflow_op_neural::model::Model;
use serde_json::Value;

mod common;
use common::{rows, strs};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn check(name: &str, multi: bool) {
    let dir = fixture(name);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).expect("read"))
            .expect("json");
    let model = Model::<Cpu>::load(&dir, 512, &Default::default()).expect("loads");
    assert_eq!(model.encoder.config.multi_label, multi);
    let texts = strs(&r["texts"]);
    // Batches of 4: padding must not change a text's logits.
    let logits = model.classify_texts(&texts, 4).expect("classify");
    let d = max_diff(&logits, &rows(&r["logits"]));
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
    let probs: Vec<Vec<f32>> = logits.iter().map(|l| probabilities(l, multi)).collect();
    let d = max_diff(&probs, &rows(&r["probs"]));
    assert!(d <= 1e-4, "{name}: probabilities differ by {d}");
    for (p, want) in probs.iter().zip(strs(&r["labels"])) {
        let best = p
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
            .0;
        assert_eq!(model.encoder.config.labels[best], want);
    }
}

#[test]
fn a_bert_topic_classifier_matches_transformers() {
    check("tiny-bert-topic", false);
}

#[test]
fn an_xlmr_multi_label_classifier_matches_transformers() {
    check("tiny-xlmr-multi", true);
}

#[test]
fn label_maps_that_disagree_with_the_head_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("tiny-bert-topic").join(f), dir.path().join(f)).expect("copy");
    }
    let config = dir.path().join("config.json");
    let mut c: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("read")).expect("json");
    // Three names for a head of eight.
    c["id2label"] = serde_json::json!({"0": "a", "1": "b", "2": "c"});
    c["num_labels"] = serde_json::json!(8);
    std::fs::write(&config, c.to_string()).expect("write");
    let e = Model::<Cpu>::load(dir.path(), 512, &Default::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("id2label names 3 labels but num_labels is 8"),
        "{e}"
    );
    // Eight names, a head of eight declared, but the weights hold another.
    c["id2label"] = serde_json::json!({"0": "a", "1": "b"});
    c["num_labels"] = serde_json::json!(2);
    std::fs::write(&config, c.to_string()).expect("write");
    let e = Model::<Cpu>::load(dir.path(), 512, &Default::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("classifier.weight"), "{e}");
}
