//! `train` through the real binary on the tiny BERT fixture: MNRL with
//! in-batch negatives, MNRL with a hard negative and MarginMSE learn (the
//! loss falls), the log is a table, a forced rerun repeats every loss
//! exactly (seeded, CPU), mixed precision (`precision: bf16`) follows the
//! f32 losses closely, the trained model feeds `embed` like any other model
//! artifact, and a GPU asked of a build without CUDA fails saying how to
//! build one.

mod common;

use std::path::Path;

use common::Project;

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("operators/neural/tests/fixtures/tiny-bert")
        .display()
        .to_string()
}

const PAIRS: &[(&str, &str, &str)] = &[
    (
        "how long does delivery take",
        "delivery takes two days",
        "our shop opens at seven",
    ),
    (
        "can i return a cake",
        "cakes cannot be returned",
        "bread is baked with rye",
    ),
    (
        "do you bake on sunday",
        "we bake every sunday morning",
        "gift cards work online",
    ),
    (
        "is the bread vegan",
        "all our breads are vegan",
        "delivery is free above fifty",
    ),
    (
        "where is the shop",
        "the shop is next to the station",
        "cakes need three days notice",
    ),
    (
        "do you sell coffee",
        "we serve coffee and tea",
        "the oven is heated with wood",
    ),
    (
        "can i pay by card",
        "we take cards and cash",
        "rye bread keeps for a week",
    ),
    (
        "what time do you close",
        "we close at six in the evening",
        "our flour is organic",
    ),
];

fn losses(p: &Project, node: &str) -> Vec<f64> {
    p.sql_rows(&format!("SELECT loss FROM {node}__log ORDER BY step"))
        .iter()
        .map(|l| l.parse().expect("loss"))
        .collect()
}

/// An empty project with `PAIRS` in `pairs.csv`: a negative, teacher
/// scores and two languages per row.
fn project_with_pairs() -> Project {
    let p = Project::new("empty");
    let mut csv = String::from("query,positive,negative,positive_score,negative_score,lang\n");
    for (i, (q, pos, neg)) in PAIRS.iter().enumerate() {
        let lang = if i % 2 == 0 { "eng" } else { "deu" };
        csv.push_str(&format!("{q},{pos},{neg},0.9,0.2,{lang}\n"));
    }
    p.write("pairs.csv", &csv);
    p
}

#[test]
fn mnrl_and_margin_mse_learn_repeatably() {
    let p = project_with_pairs();
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: train
nodes:
  rows:  {{ op: csv, params: {{ paths: [pairs.csv] }} }}
  grouped:
    op: sql
    inputs: {{ t: rows }}
    params:
      query: >
        SELECT query, positive, make_array(negative) AS negatives,
               make_array(CAST(negative_score AS FLOAT)) AS scores,
               CAST(positive_score AS FLOAT) AS positive_score FROM t
  base:  {{ op: model, params: {{ source: "path:{model}" }} }}
  in_batch:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2, path: models/in_batch }}
  hard:
    op: train
    inputs: {{ pairs: grouped, model: base }}
    params: {{ negatives: negatives, num_hard_negatives: 1, batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2 }}
  margin:
    op: train
    inputs: {{ pairs: grouped, model: base }}
    params: {{ loss: margin_mse, negatives: negatives, scores: scores, positive_score: positive_score, batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2 }}
  distilled:
    op: distill
    inputs: {{ pairs: grouped, model: base }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2 }}
  distilled_mnrl:
    op: distill
    inputs: {{ pairs: grouped, model: base }}
    params: {{ mnrl_weight: 0.5, batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2 }}
  dropped:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2, hidden_dropout: 0.1, attention_dropout: 0.1 }}
  dropped_again:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2, hidden_dropout: 0.1, attention_dropout: 0.1 }}
  mixed:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2, precision: bf16 }}
  per_language:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ per_language_batches: lang, batch_size: 3, epochs: 2, learning_rate: 0.001 }}
  vectors:
    op: embed
    inputs: {{ rows: rows, model: in_batch }}
    params: {{ column: query, dimensions: 32 }}
  base_vectors:
    op: embed
    inputs: {{ rows: rows, model: base }}
    params: {{ column: query, dimensions: 32 }}
"#,
            model = tiny_model()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    for node in ["in_batch", "hard", "margin", "distilled", "distilled_mnrl"] {
        let l = losses(&p, node);
        // 8 rows in batches of 4 for 5 epochs.
        assert_eq!(l.len(), 10, "{node}: {l:?}");
        assert!(l.iter().all(|x| x.is_finite()), "{node}: {l:?}");
        let first: f64 = l[..3].iter().sum::<f64>() / 3.0;
        let last: f64 = l[7..].iter().sum::<f64>() / 3.0;
        assert!(last < first, "{node}: the loss did not fall: {l:?}");
    }
    // Dropout: seeded, so the same params give the same steps, and they
    // are not the steps without it.
    assert_eq!(losses(&p, "dropped"), losses(&p, "dropped_again"));
    assert_ne!(losses(&p, "dropped"), losses(&p, "in_batch"));
    // `op: distill` is `train` with margin_mse on the grouped columns.
    assert_eq!(losses(&p, "distilled"), losses(&p, "margin"));
    assert_ne!(losses(&p, "distilled_mnrl"), losses(&p, "margin"));
    // Mixed precision follows the f32 run closely, but not exactly.
    let (full, mixed) = (losses(&p, "in_batch"), losses(&p, "mixed"));
    assert_eq!(full.len(), mixed.len());
    assert_ne!(full, mixed, "bf16 changed nothing");
    for (f, m) in full.iter().zip(&mixed) {
        assert!(
            (f - m).abs() <= 0.02 * f.abs(),
            "f32 {full:?}, bf16 {mixed:?}"
        );
    }
    // Per-language batches: 4 rows per language in batches of 3 is 2
    // batches per language, 4 steps an epoch.
    assert_eq!(losses(&p, "per_language").len(), 8);
    // Warm-up then linear decay.
    let lr: Vec<f64> = p
        .sql_rows("SELECT learning_rate FROM in_batch__log ORDER BY step")
        .iter()
        .map(|x| x.parse().expect("lr"))
        .collect();
    assert!(
        (lr[0] - 0.0005).abs() < 1e-12 && (lr[1] - 0.001).abs() < 1e-12,
        "{lr:?}"
    );
    assert!(lr[9] < lr[2], "{lr:?}");
    // Wall times are in the run log, not in the (content-addressed) log.
    let header = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT * FROM in_batch__log LIMIT 1",
        "--format",
        "csv",
    ]);
    assert_eq!(
        header.lines().next(),
        Some("step,epoch,loss,learning_rate"),
        "{header}"
    );
    let note =
        p.sql_rows("SELECT note FROM dflow_runs WHERE node = 'in_batch' AND status = 'computed'");
    assert_eq!(note.len(), 1, "{note:?}");
    assert!(
        note[0].starts_with("10 steps in ") && note[0].ends_with(" s/step after the first)"),
        "{note:?}"
    );
    // The trained model is a model artifact: embed reads it.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM vectors"),
        PAIRS.len() as u64
    );
    assert_eq!(
        p.sql_count(
            "SELECT count(*) FROM vectors v JOIN base_vectors b ON v.query = b.query WHERE v.embedding = b.embedding"
        ),
        0,
        "training changed no vector"
    );

    // And lands beside the pipeline in the sentence-transformers layout.
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
        "README.md",
    ] {
        assert!(p.path(&format!("models/in_batch/{f}")).is_file(), "{f}");
    }
    if let Some(dir) = std::env::var_os("DFLOW_KEEP_TRAINED") {
        common::copy_dir(&p.path("models/in_batch"), Path::new(&dir));
        std::fs::write(
            Path::new(&dir).join("dflow_vectors.json"),
            p.stdout(&[
                "sql",
                "pipeline.yaml",
                "SELECT query, embedding FROM vectors",
                "--format",
                "json",
            ]),
        )
        .expect("write");
    }

    // Seeded on the CPU: a forced rerun gives the same losses.
    let before = losses(&p, "hard");
    let log = p.run(&["--force", "hard"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(losses(&p, "hard"), before);
}

/// A project training the tiny BERT for `steps` steps, checkpointing every
/// `every`, publishing the model to `models/m`.
fn checkpointed(steps: usize, every: usize) -> Project {
    let p = project_with_pairs();
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: resume
nodes:
  rows: {{ op: csv, params: {{ paths: [pairs.csv] }} }}
  base: {{ op: model, params: {{ source: "path:{model}" }} }}
  m:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, epochs: 100000, max_steps: {steps}, learning_rate: 0.0005, warmup_steps: 5, checkpoint_every: {every}, hidden_dropout: 0.1, attention_dropout: 0.1, path: models/m }}
"#,
            model = tiny_model()
        ),
    );
    p
}

fn checkpoint_written(p: &Project) -> bool {
    std::fs::read_dir(p.path(".dflow/work"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|unit| unit.path().join("checkpoint/position.json").is_file())
}

#[test]
fn a_killed_training_resumes_from_its_checkpoint_and_ends_with_the_same_model() {
    let (steps, every) = (1500, 25);
    let straight = checkpointed(steps, every);
    let log = straight.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(
        !straight.path(".dflow/work").exists()
            || std::fs::read_dir(straight.path(".dflow/work"))
                .expect("work")
                .next()
                .is_none(),
        "a finished unit leaves no work directory"
    );
    // How often to checkpoint is not part of the key: changing it leaves
    // the node fresh, and a run recomputes nothing.
    straight.edit(
        &format!("checkpoint_every: {every}"),
        "checkpoint_every: 50",
    );
    let status = straight.stdout(&["status", "pipeline.yaml"]);
    assert!(!status.contains("STALE"), "{status}");
    assert!(straight.run(&[]).computed().is_empty());
    straight.edit(
        "checkpoint_every: 50",
        &format!("checkpoint_every: {every}"),
    );

    // Killed (SIGKILL) once its first checkpoint is on disk...
    let killed = checkpointed(steps, every);
    let mut child = killed
        .command(&["run", "pipeline.yaml", "--quiet"])
        .spawn()
        .expect("spawn dflow");
    let started = std::time::Instant::now();
    while !checkpoint_written(&killed) {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "training ended before its first checkpoint could be seen"
        );
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(
        !killed.path("models/m/model.safetensors").exists(),
        "the run was killed too late to test resuming"
    );

    // ... the next run resumes there and ends with the same weights, the
    // same loss log, as the run that was never interrupted.
    let log = killed.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.stderr.contains("resuming at step"), "{}", log.stderr);
    let weights = |p: &Project| std::fs::read(p.path("models/m/model.safetensors")).expect("model");
    assert!(
        weights(&killed) == weights(&straight),
        "resumed weights differ"
    );
    let (resumed, uninterrupted) = (losses(&killed, "m"), losses(&straight, "m"));
    assert_eq!(resumed.len(), steps);
    assert!(resumed == uninterrupted, "the resumed loss log differs");
}

/// `eval_every`: the model under training evaluated on a test set before
/// the first step, every N steps and after the last, per language and
/// macro; the last row equals what `op: evaluate` says of the finished
/// model.
#[test]
fn evaluation_during_training_matches_evaluate_on_the_result() {
    let p = project_with_pairs();
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: train_eval
nodes:
  rows: {{ op: csv, params: {{ paths: [pairs.csv] }} }}
  queries:
    op: sql
    inputs: {{ t: rows }}
    params: {{ query: "SELECT lang AS language, md5(query) AS _id, query AS text FROM t" }}
  corpus:
    op: sql
    inputs: {{ t: rows }}
    params: {{ query: "SELECT lang AS language, md5(positive) AS _id, positive AS text FROM t" }}
  qrels:
    op: sql
    inputs: {{ t: rows }}
    params: {{ query: "SELECT lang AS language, md5(query) AS \"query-id\", md5(positive) AS \"corpus-id\", CAST(1 AS INT) AS score FROM t" }}
  base: {{ op: model, params: {{ source: "path:{model}" }} }}
  m:
    op: train
    inputs: {{ pairs: rows, model: base, eval_queries: queries, eval_corpus: corpus, eval_qrels: qrels }}
    params: {{ batch_size: 4, epochs: 5, learning_rate: 0.001, warmup_steps: 2, eval_every: 4 }}
  qv:
    op: embed
    inputs: {{ rows: queries, model: m }}
    params: {{ column: text, dimensions: 32 }}
  cv:
    op: embed
    inputs: {{ rows: corpus, model: m }}
    params: {{ column: text, dimensions: 32 }}
  final:
    op: evaluate
    inputs: {{ queries: qv, corpus: cv, qrels: qrels }}
    params: {{ name: m, method: dense }}
"#,
            model = tiny_model()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    // 8 rows, batches of 4, 5 epochs: 10 steps; evaluated at 0, 4, 8, 10.
    let rows = p.sql_rows(
        "SELECT CAST(step AS VARCHAR) || ' ' || language FROM m__eval ORDER BY step, language",
    );
    let expected: Vec<String> = [0, 4, 8, 10]
        .iter()
        .flat_map(|s| ["deu", "eng", "macro"].map(|l| format!("{s} {l}")))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        p.sql_count("SELECT count(*) FROM m__eval WHERE \"ndcg@10\" < 0 OR \"ndcg@10\" > 1"),
        0
    );
    let during = p.sql_rows(
        "SELECT language || ' ' || CAST(round(\"ndcg@10\", 6) AS VARCHAR) || ' ' || CAST(round(\"mrr@10\", 6) AS VARCHAR) FROM m__eval WHERE step = 10 ORDER BY language",
    );
    let after = p.sql_rows(
        "SELECT language || ' ' || CAST(round(\"ndcg@10\", 6) AS VARCHAR) || ' ' || CAST(round(\"mrr@10\", 6) AS VARCHAR) FROM final ORDER BY language",
    );
    assert_eq!(during, after);
}

/// A GPU asked of a build without CUDA: the node fails saying how to get
/// one, and the rest of the run goes on.
#[cfg(not(feature = "cuda"))]
#[test]
fn train_on_cuda_without_the_feature_says_how_to_build_it() {
    let p = project_with_pairs();
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: train
nodes:
  rows:  {{ op: csv, params: {{ paths: [pairs.csv] }} }}
  base:  {{ op: model, params: {{ source: "path:{model}" }} }}
  gpu:
    op: train
    inputs: {{ pairs: rows, model: base }}
    params: {{ batch_size: 4, max_steps: 1, precision: bf16 }}
    resources: {{ device: "cuda:1" }}
"#,
            model = tiny_model()
        ),
    );
    let log = p.run(&[]);
    assert_ne!(log.code, 0, "{}", log.stderr);
    assert!(
        log.stderr.contains("device `cuda:1`") && log.stderr.contains("--features cuda"),
        "{}",
        log.stderr
    );
    assert_eq!(p.sql_count("SELECT count(*) FROM rows"), PAIRS.len() as u64);
}
