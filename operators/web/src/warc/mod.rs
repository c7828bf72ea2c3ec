//! `op: warc` — web pages from WARC files, one partition per file.
//!
//! Output `out` has the `pages` schema; damaged records go to `rejected`
//! with their offset and reason; `stats` counts records by type per file.

pub mod gzip;
pub mod http;
pub mod reader;
pub mod writer;

use dflow_engine::ports::{OUT, REJECTED};
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    ArrayRef, StringBuilder, TimestampMillisecondBuilder, UInt16Builder, UInt64Builder,
};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::ops::files::expand_sources;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::storage::{Location, SourceFile};
use dflow_engine::{
    Error, InputPorts, Operator, Outputs, Partitioning, PlanContext, PortType, Result, ResultExt,
    SourcePartition, Task,
};
use serde::{Deserialize, Serialize};

use crate::charset::decode_html;
use crate::udf::url_origin;
use reader::{Item, Record, Truncation, WarcReader};

fn default_max_record_bytes() -> u64 {
    10 * 1024 * 1024
}

/// Params of `op: warc`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarcParams {
    /// Globs relative to the pipeline file; each file is a partition.
    pub paths: Vec<String>,
    /// Keep records whose payload is not HTML (default false: skipped and
    /// counted in `stats`).
    #[serde(default)]
    pub keep_non_html: bool,
    /// A record block longer than this is cut to this many bytes (as Common
    /// Crawl truncates at 1 MiB); memory per record stays bounded. Default
    /// 10 MiB.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
}

pub struct WarcSource {
    params: WarcParams,
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "warc",
        "web pages from WARC files (plain, per-record gzip, whole-file gzip), one partition per file",
        &["paths"],
        |p: WarcParams, _| {
            if p.paths.is_empty() {
                return Err(BuildError::invalid("/paths", "`paths` is empty"));
            }
            if p.max_record_bytes < 1024 {
                return Err(BuildError::invalid(
                    "/max_record_bytes",
                    "must be at least 1024",
                ));
            }
            Ok(Arc::new(WarcSource { params: p }) as Arc<dyn Operator>)
        },
    );
}

/// The `rejected` port of `warc`.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("record_offset", DataType::UInt64, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// The `stats` port of `warc`.
pub fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("records", DataType::UInt64, false),
    ]))
}

/// `WARC-Date` (ISO 8601, UTC) as Unix milliseconds.
pub fn parse_warc_date(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, sec) = (
        t.next()?.ok()?,
        t.next()?.ok()?,
        t.next().unwrap_or(Ok(0)).ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil calendar (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

fn looks_like_html(body: &[u8]) -> bool {
    let head: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(512)
        .map(u8::to_ascii_lowercase)
        .collect();
    head.starts_with(b"<!doctype html")
        || head.starts_with(b"<html")
        || head.starts_with(b"<head")
        || head.starts_with(b"<!--")
        || (head.starts_with(b"<") && head.windows(5).any(|w| w == b"<body"))
}

fn is_html_type(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.contains("text/html") || ct.contains("application/xhtml")
}

struct PagesBuilder {
    url: StringBuilder,
    origin: StringBuilder,
    fetched_at: TimestampMillisecondBuilder,
    status: UInt16Builder,
    content_type: StringBuilder,
    charset: StringBuilder,
    html: StringBuilder,
    source_file: StringBuilder,
    record_id: StringBuilder,
    offset: UInt64Builder,
    rows: usize,
    bytes: usize,
}

impl PagesBuilder {
    fn new() -> Self {
        Self {
            url: StringBuilder::new(),
            origin: StringBuilder::new(),
            fetched_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            status: UInt16Builder::new(),
            content_type: StringBuilder::new(),
            charset: StringBuilder::new(),
            html: StringBuilder::new(),
            source_file: StringBuilder::new(),
            record_id: StringBuilder::new(),
            offset: UInt64Builder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.url.finish()),
            Arc::new(self.origin.finish()),
            Arc::new(self.fetched_at.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.content_type.finish()),
            Arc::new(self.charset.finish()),
            Arc::new(self.html.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.record_id.finish()),
            Arc::new(self.offset.finish()),
        ];
        self.rows = 0;
        self.bytes = 0;
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

struct Rejects {
    file: String,
    offset: UInt64Builder,
    url: StringBuilder,
    reason: StringBuilder,
    rows: usize,
}

impl Rejects {
    fn push(&mut self, offset: u64, url: Option<&str>, reason: &str) {
        self.offset.append_value(offset);
        self.url.append_option(url);
        self.reason.append_value(reason);
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let n = self.rows;
        self.rows = 0;
        let mut files = StringBuilder::new();
        for _ in 0..n {
            files.append_value(&self.file);
        }
        Ok(RecordBatch::try_new(
            rejected_schema(),
            vec![
                Arc::new(files.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.url.finish()),
                Arc::new(self.reason.finish()),
            ],
        )?)
    }
}

/// What one record becomes.
enum Outcome {
    /// An HTML page; its payload is decoded to UTF-8 where it is stored.
    Page {
        url: String,
        status: Option<u16>,
        content_type: Option<String>,
        payload: Payload,
    },
    Skip(&'static str),
    Reject(String),
}

/// A page's bytes, where the record left them (no copy).
enum Payload {
    /// A `response` record's HTTP body.
    Http(http::Response),
    /// A `resource` record's block.
    Block(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Http(r) => r.body(),
            Payload::Block(b) => b,
        }
    }

    /// The body's compressed stream ended early or hit the size cap; the
    /// page keeps what decoded.
    fn body_truncated(&self) -> bool {
        matches!(self, Payload::Http(r) if r.truncated)
    }
}

impl WarcSource {
    /// Takes the record's block (the page is made from it, not copied).
    fn classify(&self, rec: &mut Record) -> Outcome {
        let kind = rec.header("WARC-Type").unwrap_or("").to_ascii_lowercase();
        let (status, content_type, payload): (Option<u16>, Option<String>, Payload) =
            match kind.as_str() {
                "response" => {
                    let is_http = rec
                        .header("Content-Type")
                        .is_none_or(|c| c.to_ascii_lowercase().contains("application/http"));
                    if !is_http {
                        return Outcome::Skip("response_not_http");
                    }
                    match http::parse_response(
                        std::mem::take(&mut rec.block),
                        self.params.max_record_bytes,
                    ) {
                        Ok(r) => {
                            let ct = r.header("Content-Type").map(str::to_string);
                            (Some(r.status), ct, Payload::Http(r))
                        }
                        Err(e) => return Outcome::Reject(format!("bad HTTP response: {e}")),
                    }
                }
                "resource" => (
                    None,
                    rec.header("Content-Type").map(str::to_string),
                    Payload::Block(std::mem::take(&mut rec.block)),
                ),
                _ => return Outcome::Skip("other_record_type"),
            };
        if rec.invalid_header_utf8 {
            return Outcome::Reject("invalid UTF-8 in WARC headers".into());
        }
        let Some(url) = rec
            .header("WARC-Target-URI")
            .map(|u| u.trim_matches(['<', '>']).to_string())
        else {
            return Outcome::Reject("record has no WARC-Target-URI".into());
        };
        let typed_html = content_type.as_deref().is_some_and(is_html_type);
        let html = typed_html || (content_type.is_none() && looks_like_html(payload.bytes()));
        if !html && !self.params.keep_non_html {
            return Outcome::Skip("non_html");
        }
        if html
            && payload
                .bytes()
                .iter()
                .take(1024)
                .filter(|&&b| b == 0)
                .count()
                > 2
        {
            return Outcome::Reject("binary content typed as HTML".into());
        }
        Outcome::Page {
            url,
            status,
            content_type,
            payload,
        }
    }
}

impl Operator for WarcSource {
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
        ctx: &PlanContext,
        _inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        // Fail early on a path that names no file (globs may match nothing
        // yet: a release directory can start empty).
        self.list_partitions(ctx)?;
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(dflow_schemas::pages())),
            (REJECTED.to_string(), PortType::Table(rejected_schema())),
            ("stats".to_string(), PortType::Table(stats_schema())),
        ]))
    }

    fn list_partitions(&self, ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        expand_sources(ctx, &self.params.paths)
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let Some(source) = task.source else {
            return Err(Error::internal("warc unit without a file"));
        };
        let ports = ReadPorts {
            out: OUT,
            out_partition: None,
            rejected: Some(REJECTED),
            stats: Some("stats"),
        };
        self.read_file(&source.location, &source.name, task.outputs, &ports)
    }
}

/// Where [`WarcSource::read_file`] writes: pages, damaged records, counts.
pub(crate) struct ReadPorts<'a> {
    pub out: &'a str,
    /// The partition of `out` to write (global operators that keep one
    /// partition per file); `None`: the unit's own.
    pub out_partition: Option<&'a str>,
    pub rejected: Option<&'a str>,
    pub stats: Option<&'a str>,
}

fn write_pages(outputs: &mut Outputs, ports: &ReadPorts<'_>, batch: &RecordBatch) -> Result<()> {
    match ports.out_partition {
        Some(part) => outputs.table_partition(ports.out, part)?.write(batch),
        None => outputs.write(ports.out, batch),
    }
}

impl WarcSource {
    pub(crate) fn new(params: WarcParams) -> Self {
        Self { params }
    }

    /// Reads one WARC file (`file_name` is what `source_file` says) into
    /// `outputs`.
    pub(crate) fn read_file(
        &self,
        location: &Location,
        file_name: &str,
        outputs: &mut Outputs,
        ports: &ReadPorts<'_>,
    ) -> Result<()> {
        let path = location;
        let file_name = file_name.to_string();
        let schema = dflow_schemas::pages();
        let reader = WarcReader::new(SourceFile::open(location)?, self.params.max_record_bytes)
            .context(|| format!("opening {location}"))?;
        let mut pages = PagesBuilder::new();
        let mut rejects = Rejects {
            file: file_name.clone(),
            offset: UInt64Builder::new(),
            url: StringBuilder::new(),
            reason: StringBuilder::new(),
            rows: 0,
        };
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut failure: Option<Error> = None;
        reader
            .for_each(|item| {
                if failure.is_some() {
                    return;
                }
                match item {
                    Item::Damaged {
                        offset,
                        reason,
                        url,
                        ..
                    } => {
                        *counts.entry("damaged".into()).or_default() += 1;
                        rejects.push(offset, url.as_deref(), &reason);
                    }
                    Item::Record(mut rec) => {
                        let kind = rec.header("WARC-Type").unwrap_or("?").to_ascii_lowercase();
                        *counts.entry(kind).or_default() += 1;
                        match rec.truncated {
                            Some(Truncation::Length) => {
                                *counts.entry("truncated".into()).or_default() += 1
                            }
                            Some(Truncation::Disconnect) => {
                                *counts.entry("truncated_disconnect".into()).or_default() += 1
                            }
                            None => {}
                        }
                        match self.classify(&mut rec) {
                            Outcome::Skip(why) => *counts.entry(why.into()).or_default() += 1,
                            Outcome::Reject(reason) => {
                                *counts.entry(REJECTED.into()).or_default() += 1;
                                rejects.push(rec.offset, rec.header("WARC-Target-URI"), &reason);
                            }
                            Outcome::Page {
                                url,
                                status,
                                content_type,
                                payload,
                            } => {
                                if payload.body_truncated() {
                                    *counts.entry("body_truncated".into()).or_default() += 1;
                                }
                                let decoded = decode_html(payload.bytes(), content_type.as_deref());
                                let html = decoded.text;
                                pages
                                    .origin
                                    .append_value(url_origin(&url).unwrap_or_default());
                                pages.url.append_value(&url);
                                pages.fetched_at.append_option(
                                    rec.header("WARC-Date").and_then(parse_warc_date),
                                );
                                pages.status.append_option(status);
                                pages.content_type.append_option(content_type);
                                pages.charset.append_value(&decoded.charset);
                                pages.bytes += html.len();
                                pages.html.append_value(&html);
                                pages.source_file.append_value(&file_name);
                                pages.record_id.append_option(rec.header("WARC-Record-ID"));
                                pages.offset.append_value(rec.offset);
                                pages.rows += 1;
                                if pages.rows >= 512 || pages.bytes >= 64 << 20 {
                                    let r = pages
                                        .finish(&schema)
                                        .and_then(|b| write_pages(outputs, ports, &b));
                                    if let Err(e) = r {
                                        failure = Some(e);
                                    }
                                }
                            }
                        }
                    }
                }
            })
            .context(|| format!("reading {path}"))?;
        if let Some(e) = failure {
            return Err(e);
        }
        if pages.rows > 0 {
            let b = pages.finish(&schema)?;
            write_pages(outputs, ports, &b)?;
        }
        if let Some(port) = ports.rejected
            && rejects.rows > 0
        {
            let b = rejects.finish()?;
            outputs.write(port, &b)?;
        }
        let Some(stats_port) = ports.stats else {
            return Ok(());
        };
        let mut file_col = StringBuilder::new();
        let mut kind_col = StringBuilder::new();
        let mut n_col = UInt64Builder::new();
        for (k, n) in &counts {
            file_col.append_value(&file_name);
            kind_col.append_value(k);
            n_col.append_value(*n);
        }
        let stats = RecordBatch::try_new(
            stats_schema(),
            vec![
                Arc::new(file_col.finish()),
                Arc::new(kind_col.finish()),
                Arc::new(n_col.finish()),
            ],
        )?;
        outputs.write(stats_port, &stats)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warc_dates() {
        assert_eq!(parse_warc_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_warc_date("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500)
        );
        assert_eq!(
            parse_warc_date("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000)
        );
        assert_eq!(parse_warc_date("yesterday"), None);
    }

    #[test]
    fn html_sniffing() {
        assert!(looks_like_html(b"  <!DOCTYPE html><html>"));
        assert!(!looks_like_html(b"%PDF-1.4"));
        assert!(is_html_type("text/html; charset=utf-8"));
        assert!(!is_html_type("image/png"));
    }
}
