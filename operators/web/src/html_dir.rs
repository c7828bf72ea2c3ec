//! `op: html_dir` — web pages from a directory tree of HTML files, one
//! partition per file. The URL of each page comes from a sidecar map
//! (`urls`: lines of `relative/path<TAB>url`) or from `base_url` joined with
//! the file's path. A file longer than `max_file_bytes` is read only that
//! far (the page keeps its start; the unit's note says it was cut).

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    ArrayRef, StringArray, TimestampMillisecondArray, UInt16Array, UInt64Array,
};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::ops::files::{expand_sources, resolve_source};
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::storage::{Location, SourceFile, mirror_file};
use dflow_engine::{
    Error, HashedFile, InputPorts, Operator, Partitioning, PlanContext, PortType, Result,
    ResultExt, SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

use crate::charset::decode_html;
use crate::udf::url_origin;

fn default_extensions() -> Vec<String> {
    vec!["html".into(), "htm".into()]
}

fn default_max_file_bytes() -> u64 {
    10 * 1024 * 1024
}

/// Params of `op: html_dir`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlDirParams {
    /// The directory, relative to the pipeline file (or under
    /// `--source-root`), or a folder in an object store
    /// (`s3://bucket/pages`).
    pub path: String,
    /// File extensions read (default `html`, `htm`).
    #[serde(default = "default_extensions")]
    pub extensions: Vec<String>,
    /// URL of a page = `base_url` + its path relative to `path`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// A sidecar file (relative to the pipeline file, or under
    /// `--source-root`, or an object store URL) of lines
    /// `relative/path<TAB>url`; its content enters the cache key. Pages it
    /// does not list fall back to `base_url`.
    #[serde(default)]
    pub urls: Option<String>,
    /// A file longer than this is read only up to this many bytes (the
    /// page keeps its start, and the unit's note says it was cut), so
    /// memory per file stays bounded. Default 10 MiB, as `warc`'s
    /// `max_record_bytes`; at least 1024.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

pub struct HtmlDir {
    params: HtmlDirParams,
    /// `path`, resolved as sources are (`expand_sources`).
    base: Location,
    /// `urls`, resolved as `path` is.
    urls_file: Option<Location>,
    /// The URL map, read once per run (not once per page).
    urls: std::sync::OnceLock<std::result::Result<BTreeMap<String, String>, String>>,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "html_dir",
        "web pages from a directory tree of HTML files, one partition per file",
        &["path", "extensions"],
        |p: HtmlDirParams, ctx| {
            validate(&p)?;
            let resolve = |path: &str| {
                resolve_source(ctx, path).map_err(|e| BuildError::invalid("/path", e.to_string()))
            };
            Ok(Arc::new(HtmlDir {
                base: resolve(&p.path)?,
                urls_file: p.urls.as_deref().map(resolve).transpose()?,
                urls: std::sync::OnceLock::new(),
                params: p,
            }) as Arc<dyn Operator>)
        },
    );
}

/// The checks on params that need no file system.
fn validate(p: &HtmlDirParams) -> std::result::Result<(), BuildError> {
    if p.base_url.is_none() && p.urls.is_none() {
        return Err(BuildError::invalid(
            "",
            "pages need URLs: set `base_url`, `urls` or both",
        ));
    }
    if let Some(b) = &p.base_url
        && url_origin(b).is_none()
    {
        return Err(BuildError::invalid(
            "/base_url",
            format!("`{b}` is not an absolute http(s) URL"),
        ));
    }
    if p.max_file_bytes < 1024 {
        return Err(BuildError::invalid(
            "/max_file_bytes",
            "must be at least 1024",
        ));
    }
    Ok(())
}

/// The first bytes of a file, at most a cap of them.
#[derive(Debug)]
struct Head {
    bytes: Vec<u8>,
    /// The file goes on past the cap (what is past it was not read).
    cut: bool,
}

/// Reads at most `cap` bytes of the file at `path` (one more, to know
/// whether it goes on): a huge file costs `cap` bytes of memory, not its
/// size.
fn read_head(file: impl Read, cap: u64) -> std::io::Result<Head> {
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > cap;
    if cut {
        bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    }
    Ok(Head { bytes, cut })
}

impl HtmlDir {
    fn url_map(&self) -> Result<BTreeMap<String, String>> {
        let Some(path) = &self.urls_file else {
            return Ok(BTreeMap::new());
        };
        let mut text = String::new();
        SourceFile::open(path)?
            .read_to_string(&mut text)
            .context(|| format!("reading the URL map {path}"))?;
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((file, url)) = line.split_once('\t') else {
                return Err(Error::data(format!(
                    "{path}:{}: expected `path<TAB>url`",
                    i + 1
                )));
            };
            map.insert(file.trim().to_string(), url.trim().to_string());
        }
        Ok(map)
    }
}

impl HtmlDir {
    /// A page's path relative to `path` (the key of the URL map): from the
    /// file path, or from the partition name when the two are spelled
    /// differently (`./pages` and `pages`, relative and absolute).
    fn relative(&self, source: &SourcePartition) -> String {
        match (&self.base, &source.location) {
            (Location::Local(base), Location::Local(file)) => {
                if let Ok(rel) = file.strip_prefix(base) {
                    return rel.to_string_lossy().replace('\\', "/");
                }
            }
            (Location::Object(base), Location::Object(file)) => {
                let prefix = format!("{}/", base.key().trim_end_matches('/'));
                if let Some(rel) = file.key().strip_prefix(&prefix) {
                    return rel.to_string();
                }
            }
            _ => {}
        }
        let dir = self
            .params
            .path
            .trim_start_matches("./")
            .trim_end_matches('/');
        source
            .name
            .strip_prefix(dir)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(&source.name)
            .to_string()
    }
}

impl Operator for HtmlDir {
    fn version(&self) -> u32 {
        // 2: files past `max_file_bytes` are cut there.
        2
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Source
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(Vec::new())
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        _inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let Location::Local(dir) = &self.base
            && !dir.is_dir()
        {
            return Err(Error::data(format!(
                "`{}` is not a directory",
                self.params.path
            )));
        }
        self.url_map()?;
        Ok(BTreeMap::from([(
            OUT.to_string(),
            PortType::Table(dflow_schemas::pages()),
        )]))
    }

    fn list_partitions(&self, ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        let globs: Vec<String> = self
            .params
            .extensions
            .iter()
            .map(|e| format!("{}/**/*.{}", self.params.path.trim_end_matches('/'), e))
            .collect();
        expand_sources(ctx, &globs)
    }

    fn hashed_files(&self) -> Vec<HashedFile> {
        match &self.urls_file {
            None => Vec::new(),
            Some(Location::Local(path)) => vec![HashedFile::from(path.clone())],
            // Hashed from a local copy, named by URL. One that cannot be
            // fetched fails `output_ports` (the URL map is read there) first.
            Some(Location::Object(url)) => mirror_file(url)
                .map(|local| vec![HashedFile::named(url.to_string(), local)])
                .unwrap_or_default(),
        }
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let Some(source) = task.source else {
            return Err(Error::internal("html_dir unit without a file"));
        };
        let rel = self.relative(source);
        let urls = self
            .urls
            .get_or_init(|| self.url_map().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::data(e.clone()))?;
        let url = match (urls.get(&rel), &self.params.base_url) {
            (Some(u), _) => u.clone(),
            (None, Some(base)) => format!("{}/{rel}", base.trim_end_matches('/')),
            (None, None) => {
                return Err(Error::data(format!(
                    "{rel} is not in the URL map and there is no `base_url`"
                )));
            }
        };
        let cap = self.params.max_file_bytes;
        let head =
            read_head(source.open()?, cap).context(|| format!("reading {}", source.location))?;
        if head.cut {
            task.outputs.note(format!(
                "truncated: {rel} is longer than max_file_bytes ({cap}); its first {cap} bytes were read"
            ));
        }
        let decoded = decode_html(&head.bytes, None);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![url.clone()])),
            Arc::new(StringArray::from(vec![
                url_origin(&url).unwrap_or_default(),
            ])),
            Arc::new(TimestampMillisecondArray::from(vec![None::<i64>]).with_timezone("UTC")),
            Arc::new(UInt16Array::from(vec![None::<u16>])),
            Arc::new(StringArray::from(vec![Some("text/html")])),
            Arc::new(StringArray::from(vec![decoded.charset.as_str()])),
            Arc::new(StringArray::from(vec![decoded.text.as_ref()])),
            Arc::new(StringArray::from(vec![source.name.clone()])),
            Arc::new(StringArray::from(vec![None::<String>])),
            Arc::new(UInt64Array::from(vec![0u64])),
        ];
        let batch = RecordBatch::try_new(dflow_schemas::pages(), cols)?;
        task.outputs.write(OUT, &batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn params(json: serde_json::Value) -> HtmlDirParams {
        serde_json::from_value(json).expect("params")
    }

    #[test]
    fn a_file_past_the_cap_is_read_only_up_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = |n: usize| {
            let mut p = b"<!doctype html><html><body>".to_vec();
            p.resize(n, b'x');
            p
        };
        let big = dir.path().join("big.html");
        std::fs::write(&big, page(5000)).expect("write");
        let head = read_head(File::open(&big).expect("open"), 1024).expect("read");
        assert!(head.cut);
        assert_eq!(head.bytes, page(5000)[..1024]);
        // At the cap exactly, or under it: the whole file, not cut.
        let exact = dir.path().join("exact.html");
        std::fs::write(&exact, page(1024)).expect("write");
        let head = read_head(File::open(&exact).expect("open"), 1024).expect("read");
        assert!(!head.cut && head.bytes == page(1024));
        let head = read_head(File::open(&big).expect("open"), 1 << 20).expect("read");
        assert!(!head.cut && head.bytes == page(5000));
    }

    #[test]
    fn max_file_bytes_defaults_to_10_mib_and_is_at_least_1024() {
        let p = params(serde_json::json!({ "path": "pages", "base_url": "https://a.example/" }));
        assert_eq!(p.max_file_bytes, 10 * 1024 * 1024);
        assert!(validate(&p).is_ok());
        let small = params(serde_json::json!({
            "path": "pages", "base_url": "https://a.example/", "max_file_bytes": 1023
        }));
        match validate(&small) {
            Err(BuildError::Invalid {
                pointer, message, ..
            }) => {
                assert_eq!(pointer.as_deref(), Some("/max_file_bytes"));
                assert!(message.contains("at least 1024"), "{message}");
            }
            other => panic!("1023 accepted: {:?}", other.is_ok()),
        }
    }
}
