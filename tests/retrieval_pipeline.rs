//! The retrieval operators through the real binary on small generated FAQ
//! releases: `testset` (split by origin, BEIR export), `mine → score →
//! negatives` (BM25 candidates, a teacher's scores, denoising, JSON lines
//! and TREC exports) with a second release mined incrementally and `--full`
//! restoring the from-scratch result, and `align` reusing its per-origin
//! results exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::Project;
use serde_json::Value;

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("operators/neural/tests/fixtures/tiny-bert")
}

const CITIES: &[&str] = &[
    "Berlin", "Paris", "Madrid", "Rome", "Vienna", "Prague", "Oslo", "Lisbon", "Dublin", "Athens",
    "Warsaw", "Zurich",
];
const ITEMS: &[&str] = &["bread", "cake", "cookies", "coffee", "tea"];

/// A CSV of FAQ rows: `sites` origins, English and German, each QA about a
/// city and an item, so BM25 has shared words to rank by.
fn release(sites: std::ops::Range<usize>, tag: &str) -> String {
    let mut csv = String::from("id,origin,url,language,question,answer\n");
    for s in sites {
        for (c, city) in CITIES.iter().enumerate().take(4 + s % 5) {
            let item = ITEMS[(s + c) % ITEMS.len()];
            let origin = format!("https://shop{s}.test");
            csv.push_str(&format!(
                "{tag}-{s}-{c}-en,{origin},{origin}/en/faq,eng,How long does {item} delivery to {city} take?,Delivery of {item} to {city} takes {} days from our shop number {s}.\n",
                c + 1
            ));
            csv.push_str(&format!(
                "{tag}-{s}-{c}-de,{origin},{origin}/de/faq,deu,Wie lange dauert die Lieferung von {item} nach {city}?,Die Lieferung von {item} nach {city} dauert {} Tage ab unserem Laden Nummer {s}.\n",
                c + 1
            ));
        }
    }
    csv
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn testset_splits_by_origin_and_exports_beir() {
    let p = Project::new("empty");
    p.write("data/r1.csv", &release(0..40, "r1"));
    p.write(
        "pipeline.yaml",
        &(r#"version: 1
name: sets
nodes:
  qa:   { op: csv, params: { paths: ["data/*.csv"] } }
  sets: { op: testset, inputs: { qa: qa }, params: { test_fraction: 0.25, seed: 3 } }
  beir_queries:
    op: sql
    inputs: { t: sets.queries }
    params: { query: "SELECT language, _id, text FROM t" }
  beir_qrels:
    op: sql
    inputs: { t: sets.qrels }
    params: { query: "SELECT language, \"query-id\", \"corpus-id\", score FROM t" }
  export_corpus:  { op: export, inputs: { table: sets.corpus }, params: { path: "exports/beir/{language}/corpus.jsonl" } }
  export_queries: { op: export, inputs: { table: beir_queries }, params: { path: "exports/beir/{language}/queries.jsonl" } }
  export_qrels:   { op: export, inputs: { table: beir_qrels }, params: { path: "exports/beir/{language}/qrels/test.tsv" } }
  bm25:
    op: evaluate
    inputs: { queries: sets.queries, corpus: sets.corpus, qrels: sets.qrels }
    params: { name: bm25 }
  bm25_cross:
    op: evaluate
    inputs: { queries: sets.queries, corpus: sets.corpus, qrels: translations }
    params: { name: bm25, query_language: deu, corpus_language: eng }
  translations:
    op: sql
    inputs: { q: sets.queries, c: sets.corpus }
    params:
      query: >
        SELECT q._id AS "query-id", c._id AS "corpus-id", 1 AS score
        FROM q JOIN c ON c.language = 'eng' AND q.language = 'deu'
         AND replace(q._id, '-de', '') = replace(c._id, '-en', '')
"#
        .to_string()
            + &format!(
                r#"  model: {{ op: model, params: {{ source: "path:{}" }} }}
  qvec:  {{ op: embed, inputs: {{ rows: sets.queries, model: model }}, params: {{ column: text, dimensions: 32 }} }}
  cvec:  {{ op: embed, inputs: {{ rows: sets.corpus, model: model }}, params: {{ column: text, dimensions: 32 }} }}
  dense: {{ op: evaluate, inputs: {{ queries: qvec, corpus: cvec, qrels: sets.qrels }}, params: {{ name: tiny, method: dense }} }}
  compare:
    op: report
    inputs: {{ a: bm25, b: dense }}
    params: {{ path: out/report, title: Sample, metrics: [ndcg@10, recall@100] }}
"#,
                tiny_model().display()
            )),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);

    let train: BTreeSet<String> = p
        .sql_rows("SELECT DISTINCT origin FROM sets__train")
        .into_iter()
        .collect();
    let test_ids = p.sql_rows("SELECT _id FROM sets__queries");
    assert!(!test_ids.is_empty());
    // No origin on both sides; one query per test origin and language.
    let test_origins = p.sql_rows(
        "SELECT q.language, t.origin, count(*) FROM sets__queries q JOIN qa t ON q._id = t.id GROUP BY 1, 2",
    );
    for row in &test_origins {
        let f: Vec<&str> = row.split(',').collect();
        assert!(!train.contains(f[1]), "{} is in train and test", f[1]);
        assert_eq!(f[2], "1", "{row}");
    }
    let all = p.sql_count("SELECT count(*) FROM qa");
    assert_eq!(p.sql_count("SELECT count(*) FROM sets__corpus"), all);
    assert_eq!(
        p.sql_count("SELECT count(*) FROM sets__qrels WHERE \"query-id\" = \"corpus-id\""),
        test_ids.len() as u64
    );

    // Evaluation: per language and the macro average, metrics in [0, 1];
    // BM25 finds each query's own answer (they share city and item) first
    // most of the time.
    let rows = p.sql_rows("SELECT language, queries, \"ndcg@10\", \"mrr@10\", \"recall@100\" FROM bm25 ORDER BY language");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[2].starts_with("macro,"), "{rows:?}");
    for r in &rows {
        let f: Vec<f64> = r
            .split(',')
            .skip(2)
            .map(|x| x.parse().expect("metric"))
            .collect();
        assert!(f.iter().all(|m| (0.0..=1.0).contains(m)), "{r}");
        assert!(f[0] > 0.5, "{r}");
    }
    // Dense retrieval with the tiny model's embeddings: same queries, valid
    // metrics.
    let dense = p.sql_rows("SELECT language, queries, \"ndcg@10\" FROM dense ORDER BY language");
    let sparse = p.sql_rows("SELECT language, queries FROM bm25 ORDER BY language");
    assert_eq!(
        dense
            .iter()
            .map(|r| r.rsplit_once(',').map(|x| x.0).unwrap_or_default())
            .collect::<Vec<_>>(),
        sparse
    );
    // The side-by-side report: both systems per language, a chart per metric.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM compare"),
        p.sql_count("SELECT count(*) FROM bm25") + p.sql_count("SELECT count(*) FROM dense")
    );
    let md = std::fs::read_to_string(p.path("out/report/report.md")).expect("report.md");
    assert!(md.contains("| language | queries | bm25 | tiny |"), "{md}");
    assert!(
        md.contains("## ndcg@10") && md.contains("![recall@100](recall_at_100.svg)"),
        "{md}"
    );
    assert!(md.contains("| macro |"), "{md}");
    for chart in ["ndcg_at_10.svg", "recall_at_100.svg"] {
        let svg = std::fs::read_to_string(p.path(&format!("out/report/{chart}"))).expect("svg");
        assert!(
            svg.starts_with("<svg")
                && svg.contains("bm25")
                && svg.contains("tiny")
                && svg.contains("deu")
        );
    }
    if let Some(dir) = std::env::var_os("DFLOW_KEEP_REPORT") {
        common::copy_dir(&p.path("out/report"), std::path::Path::new(&dir));
    }
    // Cross-lingual: German questions against the English corpus.
    let cross = p.sql_rows("SELECT language, queries FROM bm25_cross WHERE language <> 'macro'");
    assert_eq!(cross.len(), 1);
    assert!(cross[0].starts_with("deu-eng,"), "{cross:?}");

    // The BEIR layout, per language, without the language column.
    for lang in ["eng", "deu"] {
        let dir = p.path(&format!("exports/beir/{lang}"));
        let corpus = json_lines(&dir.join("corpus.jsonl"));
        assert!(corpus.iter().all(|d| d["_id"].is_string()
            && d["text"].is_string()
            && d["title"].is_string()
            && d.get("language").is_none()));
        let queries = json_lines(&dir.join("queries.jsonl"));
        let qrels = std::fs::read_to_string(dir.join("qrels/test.tsv")).expect("qrels");
        let mut lines = qrels.lines();
        assert_eq!(lines.next(), Some("query-id\tcorpus-id\tscore"));
        assert_eq!(lines.count(), queries.len());
    }
}

#[test]
fn mine_score_negatives_incremental_and_full() {
    let p = Project::new("empty");
    p.write("data/r1.csv", &release(0..6, "r1"));
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: mine
nodes:
  pairs:   {{ op: csv, params: {{ paths: ["data/*.csv"] }} }}
  bm25:    {{ op: mine, inputs: {{ pairs: pairs }}, params: {{ k: 8 }} }}
  teacher: {{ op: model, params: {{ source: "path:{}" }} }}
  scored:
    op: score
    inputs: {{ pairs: bm25, model: teacher }}
    params: {{ mode: bi_encoder, query: query, document: document, output: teacher_score }}
  hard:
    op: negatives
    inputs: {{ candidates: scored }}
    params: {{ num_negatives: 3, margin: 0.01 }}
  export_grouped: {{ op: export, inputs: {{ table: hard.grouped }}, params: {{ path: "exports/hard_negatives.jsonl" }} }}
  export_run:     {{ op: export, inputs: {{ table: hard.run }}, params: {{ path: "exports/teacher.trec" }} }}
"#,
            tiny_model().display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let queries = p.sql_count("SELECT count(*) FROM pairs");
    // Every query: its positive at rank 0, then at most k candidates, never
    // the positive again, BM25 scores not increasing.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM bm25 WHERE rank = 0"),
        queries
    );
    assert_eq!(
        p.sql_count("SELECT count(*) FROM bm25 WHERE rank > 0 AND doc_id = query_id"),
        0
    );
    assert_eq!(
        p.sql_count(
            "SELECT count(*) FROM (SELECT query_id, count(*) AS n FROM bm25 GROUP BY 1) WHERE n > 9"
        ),
        0
    );
    assert_eq!(
        p.sql_count(
            "SELECT count(*) FROM bm25 a JOIN bm25 b ON a.query_id = b.query_id AND b.rank = a.rank + 1 \
             WHERE a.rank > 0 AND b.bm25_score > a.bm25_score"
        ),
        0
    );
    // Candidates stay in the query's language.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM bm25 b JOIN pairs p ON b.doc_id = p.id WHERE b.language <> p.language"),
        0
    );
    // Denoising: at most 3 per query, each at least 0.01 under the
    // positive's score (the tiny model's cosines are all near 0.95).
    assert_eq!(
        p.sql_count("SELECT count(*) FROM (SELECT query_id, count(*) AS n FROM hard WHERE selected GROUP BY 1) WHERE n > 3"),
        0
    );
    assert_eq!(
        p.sql_count("SELECT count(*) FROM hard WHERE selected AND teacher_score > positive_score - 0.01 + 1e-6"),
        0
    );
    assert!(p.sql_count("SELECT count(*) FROM hard WHERE selected") > 0);
    let grouped = json_lines(&p.path("exports/hard_negatives.jsonl"));
    assert_eq!(grouped.len() as u64, queries);
    for g in &grouped {
        let n = g["negatives"].as_array().expect("negatives").len();
        assert!(n <= 3);
        assert_eq!(g["scores"].as_array().expect("scores").len(), n);
        assert!(g["query"].is_string() && g["positive"].is_string());
    }
    let run = std::fs::read_to_string(p.path("exports/teacher.trec")).expect("run");
    assert!(run.lines().all(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() == 6 && f[1] == "Q0" && f[3].parse::<u32>().is_ok() && f[4].parse::<f32>().is_ok()
    }));

    let before: BTreeMap<String, Vec<String>> = candidates(&p);

    // A second release: only its partition is indexed and mined.
    p.write("data/r2.csv", &release(6..9, "r2"));
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["bm25"], ["data/r2.csv"]);
    assert_eq!(log.hits()["bm25"], ["data/r1.csv"]);
    assert_eq!(log.computed()["scored"], ["data/r2.csv"]);
    let after = candidates(&p);
    for (q, c) in &before {
        assert_eq!(&after[q], c, "old query {q} was mined again");
    }
    // New queries see the documents of both releases.
    assert!(
        after
            .iter()
            .filter(|(q, _)| q.starts_with("r2"))
            .any(|(_, c)| c.iter().any(|d| d.starts_with("r1"))),
        "no r2 query found an r1 document"
    );

    // `--full` mines everything against everything as one unit: old
    // queries may now find new documents.
    let log = p.run(&["--full", "bm25"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["bm25"], ["*"]);
    let full = candidates(&p);
    assert_eq!(full.len(), after.len());
    assert!(
        before
            .keys()
            .any(|q| full[q].iter().any(|d| d.starts_with("r2"))),
        "no old query found a new document after --full"
    );
}

/// query id → candidate doc ids in rank order.
fn candidates(p: &Project) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in p.sql_rows("SELECT query_id, doc_id FROM bm25 WHERE rank > 0 ORDER BY query_id, rank")
    {
        let (q, d) = r.split_once(',').expect("row");
        m.entry(q.to_string()).or_default().push(d.to_string());
    }
    m
}

#[test]
fn align_reuses_unchanged_origins_exactly() {
    let p = Project::new("empty");
    p.write("data/r1.csv", &release(0..5, "r1"));
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: align
nodes:
  qa:    {{ op: csv, params: {{ paths: ["data/*.csv"] }} }}
  model: {{ op: model, params: {{ source: "path:{}" }} }}
  emb:
    op: embed
    inputs: {{ rows: qa, model: model }}
    params: {{ template: "{{question}} {{answer}}", dimensions: 32 }}
  align:
    op: align
    inputs: {{ qa: emb }}
    params: {{ min_qa_similarity: null, candidate_threshold: 0.0, release_threshold: 0.0, min_pairs_per_language_pair: 1 }}
"#,
            tiny_model().display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(p.sql_count("SELECT count(*) FROM align") > 0);
    // Only cross-language pairs within one origin.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM align WHERE language1 = language2 OR url1 NOT LIKE origin || '%' OR url2 NOT LIKE origin || '%'"),
        0
    );
    // A release touching two new origins and one old one.
    let mut r2 = release(5..7, "r2");
    r2.push_str(
        &release(0..1, "r2x")
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    r2.push('\n');
    p.write("data/r2.csv", &r2);
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let incremental = p.sql_rows("SELECT * FROM align ORDER BY id1, id2");
    let log = p.run(&["--full", "align"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["align"], ["*"]);
    assert_eq!(
        p.sql_rows("SELECT * FROM align ORDER BY id1, id2"),
        incremental
    );
}
