//! Language id on the Tatoeba sentences of `../shared/data/eval/tatoeba-laser`
//! (29 languages and their English sides): dflow's labels equal Python
//! fastText's on the same lid.176.ftz for at least 99.9% of sentences
//! (`scripts/tatoeba_fasttext.py` made `tatoeba_fasttext.json.gz`), and the
//! accuracy against each file's language is printed (`cargo test
//! --workspace --test langid_tatoeba -- --nocapture`).

use std::collections::BTreeMap;
use std::io::Read;

use dflow_op_web::langid::{bundled_model, predict};

/// Tatoeba's codes where lid.176 (as ISO 639-3 macrolanguages) names the
/// language otherwise.
fn expected_code(file_lang: &str) -> &str {
    match file_lang {
        "cmn" => "zho",
        "arb" => "ara",
        "pes" => "fas",
        "zsm" => "msa",
        other => other,
    }
}

#[test]
fn labels_agree_with_python_fasttext() {
    let Some(dir) =
        dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), "eval/tatoeba-laser")
    else {
        return;
    };
    let mut gz = Vec::new();
    flate2::read::GzDecoder::new(&include_bytes!("tatoeba_fasttext.json.gz")[..])
        .read_to_end(&mut gz)
        .expect("gunzip");
    let expected: BTreeMap<String, Vec<String>> = serde_json::from_slice(&gz).expect("json");
    let model = bundled_model().expect("model");
    let (mut same, mut total) = (0usize, 0usize);
    let mut report = Vec::new();
    let mut disagreements = Vec::new();
    for (file, labels) in &expected {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        let lines: Vec<&str> = text.split('\n').collect();
        let lines = &lines[..labels.len()];
        let lang = file.rsplit('.').next().unwrap_or_default();
        let mut correct = 0;
        for (line, want) in lines.iter().zip(labels) {
            let got = predict(model, line, 1)
                .into_iter()
                .next()
                .map(|(c, _)| c)
                .unwrap_or_default();
            let want3 = if want.is_empty() {
                String::new()
            } else {
                dflow_op_web::langid::codes::iso3(want)
            };
            total += 1;
            if got == want3 {
                same += 1;
            } else if disagreements.len() < 20 {
                disagreements.push(format!("{file}: {line:?} dflow {got} python {want3}"));
            }
            if got == expected_code(lang) {
                correct += 1;
            }
        }
        if !file.ends_with(".eng") {
            report.push(format!(
                "{lang}: {:.1}% ({correct}/{})",
                100.0 * correct as f64 / labels.len() as f64,
                labels.len()
            ));
        }
    }
    println!(
        "accuracy against the file's language:\n{}",
        report.join("\n")
    );
    let agreement = same as f64 / total as f64;
    println!(
        "agreement with Python fastText: {same}/{total} = {:.4}%",
        100.0 * agreement
    );
    assert!(total > 50_000, "{total}");
    assert!(
        agreement >= 0.999,
        "{agreement}: {}",
        disagreements.join("\n")
    );
}
