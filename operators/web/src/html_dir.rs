//! `op: html_dir` — web pages from a directory tree of HTML files, one
//! partition per file. The URL of each page comes from a sidecar map
//! (`urls`: lines of `relative/path<TAB>url`) or from `base_url` joined with
//! the file's path.

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    ArrayRef, StringArray, TimestampMillisecondArray, UInt16Array, UInt64Array,
};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::ops::files::expand_globs;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt,
    SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

use crate::charset::decode_html;
use crate::udf::url_origin;

fn default_extensions() -> Vec<String> {
    vec!["html".into(), "htm".into()]
}

/// Params of `op: html_dir`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlDirParams {
    /// The directory, relative to the pipeline file.
    pub path: String,
    /// File extensions read (default `html`, `htm`).
    #[serde(default = "default_extensions")]
    pub extensions: Vec<String>,
    /// URL of a page = `base_url` + its path relative to `path`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// A sidecar file (relative to the pipeline file) of lines
    /// `relative/path<TAB>url`; its content enters the cache key. Pages it
    /// does not list fall back to `base_url`.
    #[serde(default)]
    pub urls: Option<String>,
}

pub struct HtmlDir {
    params: HtmlDirParams,
    /// `path`, resolved against the pipeline directory.
    base: PathBuf,
    /// `urls`, resolved against the pipeline directory.
    urls_file: Option<PathBuf>,
    /// The URL map, read once per run (not once per page).
    urls: std::sync::OnceLock<std::result::Result<BTreeMap<String, String>, String>>,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "html_dir",
        "web pages from a directory tree of HTML files, one partition per file",
        &["path", "extensions"],
        |p: HtmlDirParams, ctx| {
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
            Ok(Arc::new(HtmlDir {
                base: ctx.resolve(&p.path),
                urls_file: p.urls.as_deref().map(|u| ctx.resolve(u)),
                urls: std::sync::OnceLock::new(),
                params: p,
            }) as Arc<dyn Operator>)
        },
    );
}

impl HtmlDir {
    fn url_map(&self) -> Result<BTreeMap<String, String>> {
        let Some(path) = &self.urls_file else {
            return Ok(BTreeMap::new());
        };
        let text = std::fs::read_to_string(path)
            .context(|| format!("reading the URL map {}", path.display()))?;
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((file, url)) = line.split_once('\t') else {
                return Err(Error::data(format!(
                    "{}:{}: expected `path<TAB>url`",
                    path.display(),
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
        if let Ok(rel) = source.path.strip_prefix(&self.base) {
            return rel.to_string_lossy().replace('\\', "/");
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
        1
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
        if !self.base.is_dir() {
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
        expand_globs(&ctx.base_dir, &globs)
    }

    fn hashed_files(&self) -> Vec<PathBuf> {
        self.urls_file.iter().cloned().collect()
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
        let bytes =
            std::fs::read(&source.path).context(|| format!("reading {}", source.path.display()))?;
        let decoded = decode_html(&bytes, None);
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
