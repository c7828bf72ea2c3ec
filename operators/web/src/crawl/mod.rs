//! `op: crawl` — fetches a seed list (and, when asked, the links of what it
//! fetches) politely, writes every response into WARC.gz files (its `warc`
//! artifact, so the crawl is reproducible and re-readable by `op: warc`),
//! and emits the pages read back from those files.
//!
//! Ports: input `seeds` (a table with a URL column); outputs `out` (the
//! `pages` schema), `fetches` (one row per URL tried, robots.txt included),
//! `rejected` (URLs with no page and why: robots.txt, refused addresses,
//! timeouts, redirect loops, bad seeds) and the `warc` artifact.

pub mod crawler;
pub mod fetch;
pub mod guard;
pub mod journal;
pub mod links;
pub mod robots;
#[cfg(test)]
mod test_server;

use dflow_engine::ports::{OUT, REJECTED};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dflow_engine::datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanBuilder, StringBuilder, TimestampMillisecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use dflow_engine::datafusion::arrow::compute::cast;
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::storage::Location;
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt,
    Task,
};
use serde::{Deserialize, Serialize};

use crate::warc::{ReadPorts, WarcParams, WarcSource};
use crawler::{CrawlConfig, WARC_PREFIX};
use fetch::FetchConfig;
use journal::Entry;

/// Which links of a fetched page the crawl follows.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Follow {
    /// Only the seeds (and their redirects) are fetched.
    #[default]
    None,
    /// Links to the page's own host (`<a href>`, `<area href>` and
    /// `hreflang` alternates), up to `max_depth` links away from a seed.
    SameHost,
    /// Only the page's declared translations (`<link rel="alternate"
    /// hreflang>`), on any host: a multilingual FAQ page brings its other
    /// locales, which is what alignment needs.
    Hreflang,
}

fn d_url_column() -> String {
    "url".into()
}
fn d_user_agent() -> String {
    format!("dflow-crawler/{}", env!("CARGO_PKG_VERSION"))
}
fn d_true() -> bool {
    true
}
fn d_delay_ms() -> u64 {
    1000
}
fn d_max_crawl_delay_ms() -> u64 {
    30_000
}
fn d_one() -> usize {
    1
}
fn d_concurrency() -> usize {
    32
}
fn d_connect_timeout_ms() -> u64 {
    10_000
}
fn d_timeout_ms() -> u64 {
    30_000
}
fn d_read_timeout_ms() -> u64 {
    15_000
}
fn d_max_body_bytes() -> u64 {
    5 * 1024 * 1024
}
fn d_max_redirects() -> u32 {
    5
}
fn d_retries() -> u32 {
    2
}
fn d_backoff_ms() -> u64 {
    1000
}
fn d_max_retry_after_ms() -> u64 {
    60_000
}
fn d_max_depth() -> u32 {
    1
}
fn d_max_pages() -> u64 {
    10_000
}
fn d_warc_file_bytes() -> u64 {
    1 << 30
}

/// Params of `op: crawl`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlParams {
    /// The column of the seed table holding absolute http(s) URLs (default
    /// `url`).
    #[serde(default = "d_url_column")]
    pub url_column: String,
    /// Sent with every request (default `dflow-crawler/<version>`); its
    /// product token (before `/`) is what robots.txt groups are matched
    /// against. Name your crawler and a contact here.
    #[serde(default = "d_user_agent")]
    pub user_agent: String,
    /// Obey robots.txt (default true): fetched once per origin; a 4xx
    /// allows everything, a 5xx, 429 or no answer forbids everything
    /// (RFC 9309).
    #[serde(default = "d_true")]
    pub obey_robots: bool,
    /// Least time between two requests to one host, in ms (default 1000).
    /// A larger robots.txt `Crawl-delay` wins.
    #[serde(default = "d_delay_ms")]
    pub delay_ms: u64,
    /// Longest robots.txt `Crawl-delay` honoured, in ms (default 30000).
    #[serde(default = "d_max_crawl_delay_ms")]
    pub max_crawl_delay_ms: u64,
    /// Requests in flight to one host at a time (default 1).
    #[serde(default = "d_one")]
    pub per_host_concurrency: usize,
    /// Requests in flight in all (default 32).
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    /// Connection timeout, in ms (default 10000).
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the next bytes of a response, in ms (default
    /// 15000).
    #[serde(default = "d_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Whole-request timeout (connect, headers and body), in ms (default
    /// 30000).
    #[serde(default = "d_timeout_ms")]
    pub timeout_ms: u64,
    /// A body longer than this is cut here (`WARC-Truncated: length`), in
    /// bytes as served (default 5 MiB). The page keeps what decodes of a
    /// cut gzip or brotli body; `fetches` flags it `truncated` and the
    /// unit's note counts the pages cut.
    #[serde(default = "d_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Redirects followed from one URL (default 5); each hop is a request
    /// of its own, under robots.txt and the address policy.
    #[serde(default = "d_max_redirects")]
    pub max_redirects: u32,
    /// Retries after a 429, a 5xx, a timeout or a failed connection
    /// (default 2).
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// First retry's wait in ms, doubled each time (default 1000); a
    /// server's `Retry-After` (seconds or an HTTP date) wins when longer.
    #[serde(default = "d_backoff_ms")]
    pub backoff_ms: u64,
    /// A `Retry-After` longer than this (ms) gives up instead of waiting
    /// (default 60000).
    #[serde(default = "d_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
    /// Which links to follow (default `none`).
    #[serde(default)]
    pub follow: Follow,
    /// With `follow: same_host`: links followed away from a seed (default
    /// 1: the seeds' own links).
    #[serde(default = "d_max_depth")]
    pub max_depth: u32,
    /// URLs fetched at most, seeds, links and redirects together (default
    /// 10000).
    #[serde(default = "d_max_pages")]
    pub max_pages: u64,
    /// Allow loopback, private, link-local and multicast addresses (default
    /// false: refused, after DNS resolution and on every redirect).
    #[serde(default)]
    pub allow_private: bool,
    /// A WARC file is closed once it passes this many bytes (default 1 GiB).
    #[serde(default = "d_warc_file_bytes")]
    pub warc_file_bytes: u64,
    /// Keep responses whose payload is not HTML in `out` (default false).
    #[serde(default)]
    pub keep_non_html: bool,
    /// Fixed addresses for host names, as curl's `--resolve`: `{
    /// "shop.example": "203.0.113.7", "*.staging.example": "10.0.0.5" }`
    /// (exact names win over `*.` wildcards; the URL's port is kept). The
    /// address policy still applies to the answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolve: BTreeMap<String, String>,
    /// Also copy the WARC files here (relative to the pipeline file, or an
    /// object store folder such as `s3://bucket/crawl/warc`), e.g.
    /// `out/crawl/warc`; they stay in the cache either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warc_path: Option<String>,
}

pub struct CrawlOp {
    params: CrawlParams,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "crawl",
        "polite HTTP crawl of a seed table (robots.txt, delays, retries); responses written to WARC, pages emitted",
        // Where the WARC files are copied to does not change them.
        &["warc_path"],
        |p: CrawlParams, _| {
            if p.user_agent.trim().is_empty() {
                return Err(BuildError::invalid("/user_agent", "`user_agent` is empty"));
            }
            if p.concurrency == 0 {
                return Err(BuildError::invalid("/concurrency", "must be at least 1"));
            }
            if p.per_host_concurrency == 0 {
                return Err(BuildError::invalid(
                    "/per_host_concurrency",
                    "must be at least 1",
                ));
            }
            if p.max_body_bytes < 1024 {
                return Err(BuildError::invalid(
                    "/max_body_bytes",
                    "must be at least 1024",
                ));
            }
            if let Err(e) = guard::Overrides::parse(&p.resolve) {
                return Err(BuildError::invalid("/resolve", e));
            }
            for (name, ms) in [
                ("/timeout_ms", p.timeout_ms),
                ("/connect_timeout_ms", p.connect_timeout_ms),
                ("/read_timeout_ms", p.read_timeout_ms),
            ] {
                if ms == 0 {
                    return Err(BuildError::invalid(name, "must be at least 1 ms"));
                }
            }
            Ok(Arc::new(CrawlOp { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// The `fetches` port of `crawl`: one row per URL tried.
pub fn fetches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("depth", DataType::UInt32, false),
        Field::new("http_status", DataType::UInt16, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("attempts", DataType::UInt32, false),
        Field::new(
            "fetched_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("warc_file", DataType::Utf8, true),
        Field::new("warc_offset", DataType::UInt64, true),
        Field::new("location", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// The `rejected` port of `crawl`: URLs that gave no page, and why.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("depth", DataType::UInt32, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

impl CrawlOp {
    fn config(&self, node: &str) -> CrawlConfig {
        let p = &self.params;
        CrawlConfig {
            fetch: FetchConfig {
                user_agent: p.user_agent.clone(),
                max_body_bytes: p.max_body_bytes,
                retries: p.retries,
                backoff: Duration::from_millis(p.backoff_ms),
                max_retry_after: Duration::from_millis(p.max_retry_after_ms),
                timeout: Duration::from_millis(p.timeout_ms),
                allow_private: p.allow_private,
            },
            obey_robots: p.obey_robots,
            delay: Duration::from_millis(p.delay_ms),
            max_crawl_delay: Duration::from_millis(p.max_crawl_delay_ms),
            per_host_concurrency: p.per_host_concurrency,
            concurrency: p.concurrency,
            follow: p.follow,
            max_depth: p.max_depth,
            max_pages: p.max_pages,
            max_redirects: p.max_redirects,
            warc_file_bytes: p.warc_file_bytes,
            progress: Some(node.to_string()),
        }
    }

    fn client(&self) -> Result<reqwest::Client> {
        let p = &self.params;
        reqwest::Client::builder()
            .user_agent(p.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(p.connect_timeout_ms))
            .read_timeout(Duration::from_millis(p.read_timeout_ms))
            .timeout(Duration::from_millis(p.timeout_ms))
            // Proxies would connect on the crawler's behalf, around the
            // address policy: none are used.
            .no_proxy()
            .dns_resolver(guard::resolver(
                p.allow_private,
                guard::Overrides::parse(&p.resolve).map_err(Error::config)?,
            ))
            .pool_max_idle_per_host(p.per_host_concurrency)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))
    }

    /// The seed URLs; unusable ones go to `rejected`.
    fn seeds(
        &self,
        task: &Task<'_>,
        rejected: &mut Vec<(String, u32, String)>,
    ) -> Result<Vec<url::Url>> {
        let table = task.table("seeds")?;
        let mut out = Vec::new();
        for batch in table.batches(8192) {
            let batch = batch?;
            let Some(col) = batch.column_by_name(&self.params.url_column) else {
                return Err(Error::data(format!(
                    "the seed table has no column `{}`",
                    self.params.url_column
                )));
            };
            // Utf8, LargeUtf8 and Utf8View alike (the plan accepted any).
            let col = cast(col, &DataType::Utf8)?;
            let values = col.as_string::<i32>();
            for v in values.iter().flatten() {
                let v = v.trim();
                if v.is_empty() {
                    continue;
                }
                match url::Url::parse(v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                        out.push(u)
                    }
                    Ok(u) => rejected.push((
                        v.to_string(),
                        0,
                        format!("not an http(s) URL (scheme `{}`)", u.scheme()),
                    )),
                    Err(e) => rejected.push((v.to_string(), 0, format!("not a URL: {e}"))),
                }
            }
        }
        Ok(out)
    }
}

impl Operator for CrawlOp {
    fn version(&self) -> u32 {
        // 2: `out` has one partition per WARC file.
        2
    }

    fn partitioning(&self) -> Partitioning {
        // One crawl over all seeds: politeness is per host across the
        // whole seed list.
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("seeds")])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let Some(PortType::Table(schema)) = inputs.get("seeds") {
            match schema.field_with_name(&self.params.url_column) {
                Ok(f)
                    if matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) => {}
                Ok(f) => {
                    return Err(Error::config(format!(
                        "seed column `{}` is {}, not a string",
                        self.params.url_column,
                        f.data_type()
                    )));
                }
                Err(_) => {
                    return Err(Error::config(format!(
                        "the seed table has no column `{}` (it has: {}); set `url_column`",
                        self.params.url_column,
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(dflow_schemas::pages())),
            ("fetches".to_string(), PortType::Table(fetches_schema())),
            (REJECTED.to_string(), PortType::Table(rejected_schema())),
            ("warc".to_string(), PortType::Artifact),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let mut refused = Vec::new();
        let seeds = self.seeds(task, &mut refused)?;
        let work = task.work_dir()?;
        let client = self.client()?;
        let outcome = task
            .runtime
            .block_on(crawler::run(self.config(task.node), client, seeds, &work))
            .context(|| format!("crawling into {}", work.display()))?;
        task.outputs.note(outcome.note());
        refused.extend(outcome.refused);

        let warc_dir = task.outputs.artifact_dir("warc")?;
        let reader = WarcSource::new(WarcParams {
            paths: Vec::new(),
            keep_non_html: self.params.keep_non_html,
            max_record_bytes: self.params.max_body_bytes + (1 << 20),
        });
        // One `out` partition per WARC file, so that the per-partition
        // nodes after the crawl work through a large crawl in parallel.
        for (name, path) in journal::warc_files(&work, WARC_PREFIX)? {
            let dest = warc_dir.join(&name);
            link_or_copy(&path, &dest)?;
            let ports = ReadPorts {
                out: OUT,
                out_partition: Some(&name),
                rejected: None,
                stats: None,
            };
            reader.read_file(&Location::Local(dest.clone()), &name, task.outputs, &ports)?;
        }
        let fetches = fetches_batch(&outcome.entries)?;
        task.outputs.write("fetches", &fetches)?;
        for e in &outcome.entries {
            if let Some(err) = &e.error
                && e.kind == "page"
            {
                refused.push((e.url.clone(), e.depth, err.clone()));
            }
        }
        if !refused.is_empty() {
            task.outputs.write(REJECTED, &rejected_batch(&refused)?)?;
        }
        Ok(())
    }

    fn publish(&self, ctx: &PlanContext, outputs: &dflow_engine::NodeOutput) -> Result<()> {
        self.publish_warc(ctx, outputs)
    }
}

impl CrawlOp {
    fn publish_warc(&self, ctx: &PlanContext, outputs: &dflow_engine::NodeOutput) -> Result<()> {
        let (Some(path), Some(dflow_engine::PortData::Artifact { dir, .. })) =
            (&self.params.warc_path, outputs.ports.get("warc"))
        else {
            return Ok(());
        };
        dflow_engine::ops::export::publish_to(dir, path, ctx)
    }
}

/// Puts a WARC file into the artifact and leaves the work directory's copy
/// in place (a hard link where it can): if the run is killed before the
/// unit is committed, the journal still has its files to replay.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

fn fetches_batch(entries: &[Entry]) -> Result<RecordBatch> {
    let mut url = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut depth = UInt32Builder::new();
    let mut status = UInt16Builder::new();
    let mut bytes = UInt64Builder::new();
    let mut truncated = BooleanBuilder::new();
    let mut attempts = UInt32Builder::new();
    let mut at = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut file = StringBuilder::new();
    let mut offset = UInt64Builder::new();
    let mut location = StringBuilder::new();
    let mut error = StringBuilder::new();
    for e in entries {
        url.append_value(&e.url);
        kind.append_value(&e.kind);
        depth.append_value(e.depth);
        status.append_option(e.status);
        bytes.append_value(e.bytes);
        truncated.append_value(e.truncated);
        attempts.append_value(e.attempts);
        at.append_value(e.fetched_at_ms);
        file.append_option(e.warc_file.as_deref());
        offset.append_option(e.warc_offset);
        location.append_option(e.location.as_deref());
        error.append_option(e.error.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(url.finish()),
        Arc::new(kind.finish()),
        Arc::new(depth.finish()),
        Arc::new(status.finish()),
        Arc::new(bytes.finish()),
        Arc::new(truncated.finish()),
        Arc::new(attempts.finish()),
        Arc::new(at.finish()),
        Arc::new(file.finish()),
        Arc::new(offset.finish()),
        Arc::new(location.finish()),
        Arc::new(error.finish()),
    ];
    Ok(RecordBatch::try_new(fetches_schema(), cols)?)
}

fn rejected_batch(rows: &[(String, u32, String)]) -> Result<RecordBatch> {
    let mut url = StringBuilder::new();
    let mut depth = UInt32Builder::new();
    let mut reason = StringBuilder::new();
    for (u, d, r) in rows {
        url.append_value(u);
        depth.append_value(*d);
        reason.append_value(r);
    }
    Ok(RecordBatch::try_new(
        rejected_schema(),
        vec![
            Arc::new(url.finish()),
            Arc::new(depth.finish()),
            Arc::new(reason.finish()),
        ],
    )?)
}
