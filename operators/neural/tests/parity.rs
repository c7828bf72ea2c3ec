//! Burn against Python `transformers` on tiny random checkpoints
//! (`scripts/make_tiny_models.py` made `tests/fixtures/`): token ids,
//! hidden states of every real token, mean / CLS / pooler embeddings and
//! cross-encoder logits agree to 1e-4 (fp32), for BERT and XLM-R, with a
//! batch of texts of mixed lengths (padding exercised).

use std::path::{Path, PathBuf};

use dflow_op_neural::Cpu;
use dflow_op_neural::config::EncoderConfig;
use dflow_op_neural::encoder::{Encoder, Pooling};
use dflow_op_neural::model::Model;
use dflow_op_neural::tokenize::{TextTokenizer, pad};
use dflow_op_neural::weights::Weights;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).expect("reference");
    serde_json::from_str(&text).expect("json")
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
        _ => panic!("not a number array"),
    }
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect()
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn encoder(name: &str) -> (Encoder<Cpu>, TextTokenizer) {
    let dir = fixture(name);
    let config = EncoderConfig::from_hf_json(
        &std::fs::read_to_string(dir.join("config.json")).expect("config"),
    )
    .expect("config parses");
    let weights = Weights::from_safetensors(&dir.join("model.safetensors")).expect("weights");
    let enc = Encoder::<Cpu>::load(config, weights, &Default::default()).expect("loads");
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), 512).expect("tokenizer");
    (enc, tok)
}

/// The reference's input texts.
fn texts(r: &Value) -> Vec<&str> {
    r["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text"))
        .collect()
}

fn check_encoder(name: &str, poolings: &[(&str, Pooling)]) {
    let r = reference(name);
    let (enc, tok) = encoder(name);
    let texts = texts(&r);
    let encoded: Vec<_> = texts
        .iter()
        .map(|t| tok.encode(t).expect("encode"))
        .collect();
    let got_ids: Vec<Vec<u32>> = encoded.iter().map(|e| e.ids.clone()).collect();
    assert_eq!(got_ids, ids(&r["ids"]), "{name}: token ids");
    let refs: Vec<_> = encoded.iter().collect();
    let batch = pad(&refs, tok.pad_id());
    let states = enc.forward(&batch);
    let [b, s, h] = states.dims();
    let all = states
        .clone()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("data");
    // Hidden states of the real tokens, row by row.
    let mut real = Vec::new();
    for (i, e) in encoded.iter().enumerate() {
        for t in 0..e.ids.len() {
            real.extend_from_slice(&all[(i * s + t) * h..(i * s + t + 1) * h]);
        }
    }
    let d = max_diff(&real, &floats(&r["hidden"]));
    assert!(d <= 1e-4, "{name}: hidden states differ by {d}");
    for (key, pooling) in poolings {
        let pooled = enc.pool(states.clone(), &batch, *pooling).expect("pool");
        assert_eq!(pooled.dims(), [b, h]);
        let v = pooled
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("data");
        let d = max_diff(&v, &floats(&r[*key]));
        assert!(d <= 1e-4, "{name}: {key} pooling differs by {d}");
    }
}

#[test]
fn tiny_bert_matches_transformers() {
    check_encoder(
        "tiny-bert",
        &[
            ("mean", Pooling::Mean),
            ("cls", Pooling::Cls),
            ("pooler", Pooling::Pooler),
        ],
    );
}

#[test]
fn tiny_xlmr_matches_transformers() {
    check_encoder(
        "tiny-xlmr",
        &[("mean", Pooling::Mean), ("cls", Pooling::Cls)],
    );
}

fn check_cross_encoder(name: &str) {
    let r = reference(name);
    let model = Model::<Cpu>::load(&fixture(name), 512, &Default::default()).expect("loads");
    let pairs: Vec<(String, String)> = r["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("q").to_string(),
                p[1].as_str().expect("d").to_string(),
            )
        })
        .collect();
    for (i, (q, d)) in pairs.iter().enumerate() {
        let e = model.tokenizer.encode_pair(q, d).expect("encode");
        assert_eq!(e.ids, ids(&r["ids"])[i], "{name}: pair ids");
        assert_eq!(e.type_ids, ids(&r["type_ids"])[i], "{name}: pair type ids");
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(q, d)| (q.as_str(), d.as_str()))
        .collect();
    // Batch of 2: the pairs are split over batches and put back in order.
    let logits = model.score_pairs(&refs, 2).expect("scores");
    let flat: Vec<f32> = logits.into_iter().flatten().collect();
    let d = max_diff(&flat, &floats(&r["logits"]));
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
}

#[test]
fn tiny_bert_cross_encoder_matches_transformers() {
    check_cross_encoder("tiny-bert-ce");
}

#[test]
fn tiny_xlmr_cross_encoder_with_three_labels_matches_transformers() {
    check_cross_encoder("tiny-xlmr-ce");
}

#[test]
fn a_mis_shaped_tensor_is_named_with_both_shapes() {
    let dir = fixture("tiny-bert");
    let mut config = EncoderConfig::from_hf_json(
        &std::fs::read_to_string(dir.join("config.json")).expect("config"),
    )
    .expect("config parses");
    config.intermediate = 48;
    let weights = Weights::from_safetensors(&dir.join("model.safetensors")).expect("weights");
    let e = Encoder::<Cpu>::load(config, weights, &Default::default()).expect_err("shape");
    assert!(
        e.to_string().ends_with("tensor `encoder.layer.0.intermediate.dense.weight` has shape [64, 32], the config needs [48, 32]"),
        "{e}"
    );
}

#[test]
fn a_tokenizer_bigger_than_the_embedding_table_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("tiny-bert").join(f), dir.path().join(f)).expect("copy");
    }
    let config = std::fs::read_to_string(fixture("tiny-bert").join("config.json")).expect("config");
    let mut v: Value = serde_json::from_str(&config).expect("json");
    v["vocab_size"] = 100.into();
    std::fs::write(dir.path().join("config.json"), v.to_string()).expect("write");
    let e = Model::<Cpu>::load(dir.path(), 512, &Default::default())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("do not belong together"), "{e}");
}

/// `name`'s fixture loaded, saved in the sentence-transformers layout and
/// loaded again from there (kept in `DFLOW_KEEP_SAVED/<name>` when that is
/// set, for `scripts/st_load_check.py`).
fn save_and_reload(name: &str) -> (Model<Cpu>, Model<Cpu>) {
    use dflow_op_neural::save::save_sentence_transformers;
    let model = Model::<Cpu>::load(&fixture(name), 512, &Default::default()).expect("loads");
    let dir = tempfile::tempdir().expect("tmp");
    let tokenizer = fixture(name).join("tokenizer.json");
    save_sentence_transformers(&model, &tokenizer, dir.path(), "test").expect("saves");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "README.md",
    ] {
        assert!(dir.path().join(f).is_file(), "{name}: {f} missing");
    }
    if let Some(keep) = std::env::var_os("DFLOW_KEEP_SAVED") {
        save_sentence_transformers(&model, &tokenizer, &Path::new(&keep).join(name), "test")
            .expect("saves");
    }
    let again = Model::<Cpu>::load(dir.path(), 512, &Default::default()).expect("reloads");
    (model, again)
}

/// Saved in the sentence-transformers layout and loaded again, a model
/// gives the same vectors and logits as the checkpoint it came from (and
/// as transformers did on it).
#[test]
fn saved_models_load_back_unchanged() {
    for name in ["tiny-bert", "tiny-xlmr"] {
        let r = reference(name);
        let (model, again) = save_and_reload(name);
        let texts = texts(&r);
        let a: Vec<f32> = model.embed(&texts, 4).expect("embed").concat();
        let b: Vec<f32> = again.embed(&texts, 4).expect("embed").concat();
        assert_eq!(a, b, "{name}: vectors changed through save/load");
        assert!(max_diff(&b, &floats(&r["mean"])) <= 1e-4, "{name}");
    }
    let (model, again) = save_and_reload("tiny-bert-ce");
    let pairs = [("what is dflow", "a dataflow engine"), ("hello", "world")];
    assert_eq!(
        model.score_pairs(&pairs, 2).expect("scores"),
        again.score_pairs(&pairs, 2).expect("scores")
    );
}
