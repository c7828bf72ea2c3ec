//! Helpers for tests that drive the real `dflow` binary on a copy of a
//! fixture project.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dflow")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `../shared/data/<rel>`, absolute, if present. Tests that need it skip,
/// saying so, when it is not; under CI (`CI=true`) they fail.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), rel)
}

/// A URL map for `html_dir` over a tree of `<site>/<file>` pages: every page
/// at `https://<site>/<file>`, so each site is one origin and no URL path
/// hints at a language.
pub fn site_url_map(pages: &Path) -> String {
    let mut urls = String::new();
    for site in std::fs::read_dir(pages).expect("read").flatten() {
        for f in std::fs::read_dir(site.path()).expect("read").flatten() {
            let (s, f) = (site.file_name(), f.file_name());
            let (s, f) = (s.to_string_lossy(), f.to_string_lossy());
            urls.push_str(&format!("{s}/{f}\thttps://{s}/{f}\n"));
        }
    }
    urls
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A fixture copied into a temporary directory.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// The JSON events of one `dflow run --log-format json`.
pub struct RunLog {
    pub events: Vec<Value>,
    pub code: i32,
    pub stderr: String,
}

impl RunLog {
    /// The log of a finished `dflow run --log-format json`.
    pub fn from_output(out: &Output) -> Self {
        RunLog {
            events: String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn units(&self, status: &str) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &self.events {
            if e["event"] == "unit" && e["status"] == status {
                let node = e["node"].as_str().unwrap_or_default().to_string();
                let part = e["partition"].as_str().unwrap_or("*").to_string();
                m.entry(node).or_default().push(part);
            }
        }
        for v in m.values_mut() {
            v.sort();
        }
        m
    }

    /// Partitions computed, by node.
    pub fn computed(&self) -> BTreeMap<String, Vec<String>> {
        self.units("computed")
    }

    pub fn computed_nodes(&self) -> BTreeSet<String> {
        self.computed().into_keys().collect()
    }

    pub fn hits(&self) -> BTreeMap<String, Vec<String>> {
        self.units("hit")
    }

    pub fn nodes_with(&self, event: &str) -> BTreeSet<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == event)
            .filter_map(|e| e["node"].as_str().map(str::to_string))
            .collect()
    }
}

impl Project {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixture(name), dir.path());
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn pipeline(&self) -> PathBuf {
        self.path("pipeline.yaml")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path()).args(args);
        c.env_remove("DFLOW_CACHE_DIR");
        c
    }

    pub fn dflow(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run dflow")
    }

    pub fn run(&self, extra: &[&str]) -> RunLog {
        let mut args = vec!["run", "pipeline.yaml", "--log-format", "json"];
        args.extend_from_slice(extra);
        RunLog::from_output(&self.dflow(&args))
    }

    /// Replaces text in the pipeline file (must occur).
    pub fn edit(&self, from: &str, to: &str) {
        let p = self.pipeline();
        let text = std::fs::read_to_string(&p).expect("read pipeline");
        assert!(text.contains(from), "`{from}` not in pipeline");
        std::fs::write(&p, text.replacen(from, to, 1)).expect("write pipeline");
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read")
    }

    /// The single number a `dflow sql` query returns.
    pub fn sql_count(&self, query: &str) -> u64 {
        let out = self.stdout(&["sql", "pipeline.yaml", query, "--format", "csv"]);
        out.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in {out:?}"))
    }

    /// The rows of a `dflow sql` query as CSV lines, without the header.
    pub fn sql_rows(&self, query: &str) -> Vec<String> {
        let out = self.stdout(&["sql", "pipeline.yaml", query, "--format", "csv"]);
        out.lines().skip(1).map(str::to_string).collect()
    }

    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.dflow(args);
        assert!(
            out.status.success(),
            "dflow {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Every cache entry is complete: meta.json parses and each file it lists
/// exists with the recorded digest.
pub fn assert_cache_valid(cache: &Path) {
    let root = cache.join("cache");
    let Ok(shards) = std::fs::read_dir(&root) else {
        return;
    };
    for shard in shards.flatten() {
        for entry in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            let meta_path = entry.path().join("meta.json");
            let text = std::fs::read(&meta_path)
                .unwrap_or_else(|_| panic!("entry without meta.json: {}", entry.path().display()));
            let meta: Value = serde_json::from_slice(&text).expect("meta.json parses");
            for (_, out) in meta["outputs"].as_object().expect("outputs") {
                if out["kind"] == "table" {
                    for part in out["parts"].as_array().expect("parts") {
                        let file = entry.path().join(part["file"].as_str().expect("file"));
                        let bytes = std::fs::read(&file).expect("part file exists");
                        assert_eq!(
                            blake3::hash(&bytes).to_hex().as_str(),
                            part["digest"].as_str().expect("digest"),
                            "digest of {}",
                            file.display()
                        );
                    }
                }
            }
        }
    }
}
