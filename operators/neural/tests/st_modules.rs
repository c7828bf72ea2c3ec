//! sentence-transformers' module chain, against its own outputs
//! (`scripts/st_module_references.py`): every single Pooling mode on the
//! tiny BERT, and a LaBSE-shaped model (CLS pooling, Dense with tanh,
//! Normalize, prompts in `config_sentence_transformers.json`) saved by
//! sentence-transformers 6, each to 1e-4. What dflow saves of that model
//! loads back with the same vectors.

use std::path::{Path, PathBuf};

use dflow_op_neural::Cpu;
use dflow_op_neural::encoder::Pooling;
use dflow_op_neural::model::Model;
use dflow_op_neural::save::save_sentence_transformers;
use serde_json::Value;

mod common;
use common::{rows, strs as texts};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

fn assert_close(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    let mut worst = 0.0f32;
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{what}: width");
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= 1e-4, "{what}: differs by {worst}");
}

#[test]
fn every_pooling_mode_matches_sentence_transformers() {
    let r = json(fixture("tiny-bert/pooling.json"));
    let texts = texts(&r["texts"]);
    let mut model =
        Model::<Cpu>::load(&fixture("tiny-bert"), 512, &Default::default()).expect("loads");
    for (name, mode) in [
        ("cls", Pooling::Cls),
        ("max", Pooling::Max),
        ("mean", Pooling::Mean),
        ("mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
        ("weightedmean", Pooling::WeightedMean),
        ("lasttoken", Pooling::LastToken),
    ] {
        model.profile.pooling = mode;
        // Batches of 4 pad the shorter texts: padding must not count.
        let got = model.embed(&texts, 4).expect("embed");
        assert_close(name, &got, &rows(&r["pooled"][name]));
    }
}

#[test]
fn a_labse_shaped_model_with_prompts_matches_sentence_transformers() {
    let dir = fixture("tiny-labse");
    let r = json(dir.join("reference.json"));
    let texts = texts(&r["texts"]);
    let model = Model::<Cpu>::load(&dir, 512, &Default::default()).expect("loads");
    assert_eq!(model.profile.pooling, Pooling::Cls);
    assert!(model.profile.normalize);
    assert_eq!(model.encoder.heads.st_dense.len(), 1);
    let query = model.profile.prompts["query"].clone();
    assert_eq!(query, "query: ");
    let prompted: Vec<String> = texts.iter().map(|t| format!("{query}{t}")).collect();
    let prompted: Vec<&str> = prompted.iter().map(String::as_str).collect();
    assert_close(
        "query",
        &model.embed(&prompted, 4).expect("embed"),
        &rows(&r["query"]),
    );
    let plain = model.embed(&texts, 4).expect("embed");
    assert_close("plain", &plain, &rows(&r["plain"]));

    // Saved by dflow, it loads back (in dflow here; in sentence-transformers
    // through the same layout) with the same vectors and prompts.
    let out = tempfile::tempdir().expect("tempdir");
    save_sentence_transformers(&model, &dir.join("tokenizer.json"), out.path(), "test")
        .expect("saves");
    let again = Model::<Cpu>::load(out.path(), 512, &Default::default()).expect("reloads");
    assert_eq!(again.profile.prompts, model.profile.prompts);
    assert_eq!(again.embed(&texts, 4).expect("embed"), plain);
}

#[test]
fn module_chains_dflow_cannot_run_the_same_way_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("tiny-bert").join(f), dir.path().join(f)).expect("copy");
    }
    // The error of loading with `file` holding `text`.
    let load_with = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        Model::<Cpu>::load(dir.path(), 512, &Default::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = load_with(
        "1_Pooling/config.json",
        r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
    );
    assert!(
        e.contains("several pooling modes") && e.contains("1_Pooling"),
        "{e}"
    );
    load_with("1_Pooling/config.json", r#"{"pooling_mode": "mean"}"#);
    let chain = |last: &str| {
        format!(
            r#"[{{"path": "", "type": "sentence_transformers.models.Transformer"}},
                {{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}},
                {{"path": "2_{last}", "type": "sentence_transformers.models.{last}"}}]"#
        )
    };
    let e = load_with("modules.json", &chain("Dense"));
    assert!(e.contains("2_Dense/config.json"), "{e}");
    let e = load_with("modules.json", &chain("LayerNorm"));
    assert!(
        e.contains("`sentence_transformers.models.LayerNorm`"),
        "{e}"
    );
}
