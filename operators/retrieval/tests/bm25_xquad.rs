//! BM25 on XQuAD-R (`../shared/data/eval/xquad-r`, 11 languages): dflow's
//! top-10 lists agree with Python `bm25s` (Lucene variant, k1 = 0.9,
//! b = 0.4, the same whitespace + lower-case tokens) on at least 95% of
//! positions. `scripts/bm25s_xquad.py` made `data/xquad_bm25s_top10.json.gz`.
//!
//! A position counts as agreeing when the document ids are equal, or when
//! bm25s' score there is tied with a neighbour's (the order inside a tie
//! is arbitrary) or is zero (nothing matched).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use dflow_op_retrieval::analysis::{Analyzer, AnalyzerChoice};
use dflow_op_retrieval::bm25::{
    Bm25Params, Doc, Exclude, Scratch, Searcher, extend_index, text_hash,
};
use serde_json::Value;

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// Sentence ids and texts, and (question id, question) in file order.
fn load(path: &Path) -> (Vec<String>, Vec<String>, Vec<(String, String)>) {
    let v: Value = serde_json::from_slice(&gunzip(path)).expect("json");
    let (mut ids, mut corpus, mut queries) = (Vec::new(), Vec::new(), Vec::new());
    let mut p = 0;
    for article in v["data"].as_array().expect("data") {
        for para in article["paragraphs"].as_array().expect("paragraphs") {
            for (s, sentence) in para["sentences"]
                .as_array()
                .expect("sentences")
                .iter()
                .enumerate()
            {
                ids.push(format!("p{p}-s{s}"));
                corpus.push(sentence.as_str().expect("text").to_string());
            }
            for qa in para["qas"].as_array().expect("qas") {
                queries.push((
                    qa["id"].as_str().expect("id").to_string(),
                    qa["question"].as_str().expect("question").to_string(),
                ));
            }
            p += 1;
        }
    }
    (ids, corpus, queries)
}

#[test]
fn top10_agrees_with_bm25s() {
    let Some(dir) = dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), "eval/xquad-r")
    else {
        return;
    };
    let expected: BTreeMap<String, Value> = serde_json::from_slice(&gunzip(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/xquad_bm25s_top10.json.gz"),
    ))
    .expect("json");
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut agree, mut total, mut exact) = (0usize, 0usize, 0usize);
    for (lang, exp) in &expected {
        let (ids, corpus, queries) = load(&dir.join(format!("{lang}.json.gz")));
        let mut analyzer = Analyzer::new(AnalyzerChoice::Whitespace, lang);
        let docs = corpus
            .iter()
            .enumerate()
            .map(|(i, t)| Doc {
                ord: i as u64,
                tokens: analyzer.tokens(t),
                hash: text_hash(t),
            })
            .collect();
        let index = tmp.path().join(lang);
        extend_index(&index, None, docs).expect("index");
        let searcher = Searcher::open(&index, Bm25Params::default()).expect("open");
        let mut scratch = Scratch::default();
        let (mut lang_agree, mut lang_total) = (0, 0);
        let want_ids = exp["queries"].as_array().expect("queries");
        for (qi, (qid, question)) in queries.iter().take(want_ids.len()).enumerate() {
            assert_eq!(
                want_ids[qi].as_str(),
                Some(qid.as_str()),
                "{lang}: query order"
            );
            let (hits, _) = searcher
                .search(
                    &analyzer.tokens(question),
                    10,
                    Exclude::default(),
                    &mut scratch,
                )
                .expect("search");
            let top = exp["top"][qi].as_array().expect("top");
            let scores: Vec<f64> = exp["scores"][qi]
                .as_array()
                .expect("scores")
                .iter()
                .map(|s| s.as_f64().unwrap_or(0.0))
                .collect();
            for (pos, want) in top.iter().enumerate() {
                let got = hits.get(pos).map(|h| ids[h.ord as usize].as_str());
                let s = scores[pos];
                let tied = (pos > 0 && (scores[pos - 1] - s).abs() < 1e-5)
                    || (pos + 1 < scores.len() && (scores[pos + 1] - s).abs() < 1e-5);
                if got == want.as_str() {
                    exact += 1;
                }
                if got == want.as_str() || tied || s == 0.0 {
                    lang_agree += 1;
                }
                if let (Some(h), true) = (hits.get(pos), got == want.as_str()) {
                    assert!(
                        (f64::from(h.score) - s).abs() < 1e-3 * s.max(1.0),
                        "{lang} {qid}: score {} vs bm25s {s}",
                        h.score
                    );
                }
                lang_total += 1;
            }
        }
        eprintln!(
            "{lang}: {:.2}% of top-10 positions agree with bm25s ({lang_agree}/{lang_total})",
            100.0 * lang_agree as f64 / lang_total as f64
        );
        agree += lang_agree;
        total += lang_total;
    }
    let share = agree as f64 / total as f64;
    eprintln!(
        "overall: {:.2}% ({agree}/{total}); the same document id at {:.2}% of positions",
        100.0 * share,
        100.0 * exact as f64 / total as f64
    );
    assert!(
        share >= 0.95,
        "only {:.2}% of positions agree",
        100.0 * share
    );
}
