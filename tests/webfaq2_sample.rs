//! `pipelines/webfaq2.yaml`, every node of it, on the bundled sample web,
//! with the tiny BERT fixture in place of multilingual-e5-small and a few
//! training steps, so that it runs in seconds: release 1 first, then
//! release 2 added, which must recompute only what the new partitions
//! touch. The full-size run (e5, the real step counts) is the README's
//! first command; its numbers are in BENCHMARKS.md.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Project, copy_dir};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The real pipeline file with the model swapped for the tiny BERT.
fn reduced_pipeline() -> String {
    let text = std::fs::read_to_string(root().join("pipelines/webfaq2.yaml")).expect("pipeline");
    let start = text.find("\n  e5:\n").expect("an `e5` node");
    let end = start + 1 + text[start + 1..].find("\n\n").expect("end of the e5 node");
    let tiny = root().join("operators/neural/tests/fixtures/tiny-bert");
    let model = format!(
        "\n  e5: {{ op: model, params: {{ source: \"path:{}\" }} }}",
        tiny.display()
    );
    let text = format!("{}{}{}", &text[..start], model, &text[end..]);
    assert!(text.contains("max_steps: 16"));
    text.replace("dimensions: 384", "dimensions: 32")
        .replace("max_steps: 16", "max_steps: 2")
}

/// The node names: the two-space-indented keys under `nodes:`.
fn nodes_of(pipeline: &str) -> BTreeSet<String> {
    pipeline
        .lines()
        .skip_while(|l| !l.starts_with("nodes:"))
        .skip(1)
        .filter(|l| l.len() - l.trim_start().len() == 2 && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

fn sample(release: &str) -> std::path::PathBuf {
    root().join("pipelines/sample").join(release)
}

#[test]
fn the_whole_pipeline_runs_and_a_second_release_recomputes_only_what_it_touches() {
    let p = Project::new("empty");
    let pipeline = reduced_pipeline();
    p.write("pipeline.yaml", &pipeline);
    copy_dir(&sample("release-1"), &p.path("sample/release-1"));

    // Release 1: every node runs.
    let first = p.run(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let all = nodes_of(&pipeline);
    assert!(all.len() > 30, "{all:?}");
    assert_eq!(first.computed_nodes(), all, "nodes that did not run");
    let pairs = p.sql_count("SELECT count(*) FROM unique");
    assert!(pairs > 1_800, "{pairs} QA pairs from release 1");
    assert!(p.sql_count("SELECT count(DISTINCT language) FROM unique") >= 16);
    assert!(p.sql_count("SELECT count(DISTINCT origin) FROM unique") >= 38);
    // The record cut off at the end of the last file is kept with what was
    // read, flagged; the rest of the file read.
    assert_eq!(p.sql_count("SELECT count(*) FROM pages__rejected"), 0);
    assert_eq!(
        p.sql_count("SELECT sum(records) FROM pages__stats WHERE kind = 'truncated_disconnect'"),
        1
    );
    assert!(p.sql_count("SELECT count(*) FROM faqs__rejected") >= 1);
    for file in [
        "out/webfaq2/data/eng.parquet",
        "out/webfaq2/data/zho.parquet",
        "out/webfaq2/hard_negatives.jsonl",
        "out/webfaq2/teacher.trec",
        "out/webfaq2/retrieval/deu/corpus.jsonl",
        "out/webfaq2/retrieval/deu/qrels/test.tsv",
        "out/webfaq2/models/e5-small-mnrl/model.safetensors",
        "out/webfaq2/models/e5-small-margin-mse/1_Pooling/config.json",
        "out/webfaq2/report/report.md",
        "out/webfaq2/report/ndcg_at_10.svg",
    ] {
        assert!(p.path(file).is_file(), "{file} was not written");
    }
    assert_eq!(
        p.sql_count("SELECT count(DISTINCT system) FROM report"),
        4,
        "bm25, base and the two fine-tuned models"
    );
    assert_eq!(p.sql_count("SELECT count(*) FROM mnrl__log"), 2);

    // Nothing is stale after a run (f32 params read back from the lock
    // file compare equal).
    let status = p.stdout(&["status", "pipeline.yaml"]);
    assert!(!status.contains("STALE"), "{status}");

    // Release 2 arrives: status names what is stale and why.
    let new = "sample/release-2/sample-00004.warc.gz";
    copy_dir(&sample("release-2"), &p.path("sample/release-2"));
    let status = p.stdout(&["status", "pipeline.yaml"]);
    let line = |node: &str| {
        status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(node))
            .unwrap_or_else(|| panic!("no `{node}` in {status}"))
    };
    let pages = line("pages");
    assert!(
        pages.contains("STALE") && pages.contains("new partition") && pages.contains(new),
        "{pages}"
    );
    assert!(line("unique").contains("UPSTREAM (lang)"), "{status}");
    assert!(line("e5").contains("FRESH"), "{status}");

    let second = p.run(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let computed = second.computed();
    // Per-partition nodes compute the new file only; the folds fold it in.
    for node in [
        "pages",
        "faqs",
        "clean",
        "lang",
        "unique",
        "scored",
        "alignment_vectors",
        "qa_pairs",
        // The test corpus keeps its partitions: the base model embeds only
        // the new release's answers.
        "base_corpus",
    ] {
        let parts = &computed[node];
        assert_eq!(parts.len(), 1, "{node} computed {parts:?}");
        assert!(parts[0].ends_with(new), "{node} computed {parts:?}");
        assert_eq!(
            second.hits()[node].len(),
            4,
            "{node}: the old files are cached"
        );
    }
    // Mining folds the new training partition into its index.
    assert_eq!(
        computed["candidates"].len(),
        1,
        "{:?}",
        computed["candidates"]
    );
    assert_eq!(computed["teacher_scores"].len(), 1);
    // The teacher's texts and the base model's new test answers are
    // questions and answers that `scored` embedded with the same model:
    // they come from the vector store, none is embedded again.
    for node in ["teacher_scores", "base_corpus", "base_queries"] {
        let notes = p.sql_rows(&format!(
            "SELECT note FROM dflow_runs WHERE node = '{node}' AND status = 'computed' \
             AND run_id = (SELECT max(run_id) FROM dflow_runs)"
        ));
        assert!(!notes.is_empty(), "{node}: no note");
        for note in notes {
            assert!(
                note.contains(": 0 embedded,") && !note.contains(" 0 read from"),
                "{node}: {note}"
            );
        }
    }
    // The model is unchanged; global nodes downstream of new data rerun.
    assert!(!computed.contains_key("e5"));
    for node in ["bitexts", "sets", "mnrl", "margin_mse", "report"] {
        assert!(computed.contains_key(node), "{node} did not rerun");
    }
    assert!(p.sql_count("SELECT count(*) FROM unique") > pairs);
}

#[test]
fn two_cold_runs_give_byte_identical_lock_files() {
    // Every output is content-addressed, the trainings' logs included (wall
    // times go to the run log): the same inputs give the same bytes.
    let pipeline = reduced_pipeline();
    let locks: Vec<String> = (0..2)
        .map(|_| {
            let p = Project::new("empty");
            p.write("pipeline.yaml", &pipeline);
            copy_dir(&sample("release-1"), &p.path("sample/release-1"));
            let run = p.run(&[]);
            assert_eq!(run.code, 0, "{}", run.stderr);
            p.read("dflow.lock")
        })
        .collect();
    assert!(locks[0].contains("\"log\""), "the trainings ran");
    assert!(
        locks[0] == locks[1],
        "two cold runs gave different lock files"
    );
}
