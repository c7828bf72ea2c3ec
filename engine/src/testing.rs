//! Inputs of tests that live outside the repository: `../shared/data` (real
//! pages, WARCs, evaluation sets) and the model weights under
//! `DFLOW_TEST_MODELS` (`scripts/fetch_models.sh DIR`).
//!
//! A test that needs one runs whenever it is there. When it is missing,
//! the test says so and skips, except under CI (`CI=true`), where a missing
//! input is a failure: CI always has them, and a test that skips there
//! proves nothing.

use std::path::{Path, PathBuf};

/// `../shared/data/<rel>` beside the workspace that holds `manifest_dir`
/// (pass `env!("CARGO_MANIFEST_DIR")`), absolute, if present.
///
/// # Panics
///
/// Under CI, when the path is missing.
pub fn shared_data(manifest_dir: &str, rel: &str) -> Option<PathBuf> {
    let root = Path::new(manifest_dir)
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(Path::new(manifest_dir));
    let path = root.join("../shared/data").join(rel);
    match std::fs::canonicalize(&path) {
        Ok(abs) => Some(abs),
        Err(_) => missing(&format!("../shared/data/{rel}")),
    }
}

/// The model directory `DFLOW_TEST_MODELS` names, with `<rel>` in it
/// (`""` for the directory itself), if set and present.
///
/// # Panics
///
/// Under CI, when it is not set or `<rel>` is not there.
pub fn test_models(rel: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("DFLOW_TEST_MODELS") else {
        return missing("DFLOW_TEST_MODELS (scripts/fetch_models.sh DIR)");
    };
    let path = PathBuf::from(dir).join(rel);
    if path.exists() {
        Some(path)
    } else {
        missing(&format!("{} (scripts/fetch_models.sh)", path.display()))
    }
}

/// Whether this is a CI run (`CI=true`, as CI services set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing input: a failure under CI, a skip with its reason
/// otherwise.
///
/// # Panics
///
/// Under CI.
pub fn missing<T>(what: &str) -> Option<T> {
    assert!(
        !under_ci(),
        "{what} is missing, and CI must run every test (CI=true)"
    );
    eprintln!("{what} is missing: skipped");
    None
}
