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

/// The head of one HTTP/1.1 request, as the projects' test servers read
/// it (the crawler's, the Hub's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestHead {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target (`/a.html?x=1`).
    pub path: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a request's head (up to the blank line) from `stream`; `None`
/// when the peer closes or sends nothing that ends a head.
pub fn read_request_head(stream: &mut impl std::io::Read) -> Option<RequestHead> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or("/").to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(RequestHead {
        method,
        path,
        headers,
    })
}
