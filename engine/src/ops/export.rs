//! `op: export` — writes a table out of the cache as Parquet, JSON lines,
//! CSV, TSV or a TREC run file, optionally one file per value of a column
//! (`data/{language}.parquet`; that column is then in the path, not in the
//! files, as in Hive-style partitioned writes).
//!
//! The files are built as an artifact in the cache, then copied to the
//! destination (only those that differ), so an export is as cached and as
//! reproducible as any other output.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use crate::cache::store::{remove_tmp_files, walk_files, write_atomic};
use crate::cache::{NodeOutput, PortData};
use crate::error::{Error, Result, ResultExt};
use crate::operator::{InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Task};
use crate::registry::{BuildError, Registry};
use crate::storage::{Location, ObjectUrl, is_url, stores, upload_file};
use crate::table::writer_properties;

/// The file format of an export.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Parquet, with the cache's pinned writer settings.
    Parquet,
    /// JSON lines: one object per row.
    Jsonl,
    /// Comma-separated, with a header line.
    Csv,
    /// Tab-separated, with a header line (BEIR's `qrels/test.tsv`).
    Tsv,
    /// A TREC run: `query_id Q0 doc_id rank score tag` per line, from the
    /// columns `query_id`, `doc_id`, `rank`, `score` and, if present, `tag`.
    Trec,
}

/// The columns a TREC run is written from.
const TREC_COLUMNS: [&str; 4] = ["query_id", "doc_id", "rank", "score"];

/// Params of `op: export`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Destination file, relative to the pipeline file, or an object store
    /// URL (`s3://bucket/exports/data.parquet`, `gs://`, `az://`). A
    /// `{column}` placeholder writes one file per value of that column, e.g.
    /// `exports/data/{language}.parquet`.
    pub path: String,
    /// `parquet`, `jsonl`, `csv`, `tsv` or `trec`; default: from the file
    /// extension (`.trec` and `.run` are TREC runs).
    #[serde(default)]
    pub format: Option<ExportFormat>,
}

/// The `export` operator: writes its input table to files under a path template.
pub struct ExportOp {
    /// Directory before the first placeholder (relative to the pipeline).
    prefix: PathBuf,
    /// The rest of the path, with at most one `{column}`.
    template: String,
    column: Option<String>,
    format: ExportFormat,
}

/// Registers `op: export`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "export",
        "write a table to files (Parquet, JSON lines, CSV), optionally one per column value",
        |p: ExportParams, _| build(p).map(|op| Arc::new(op) as Arc<dyn Operator>),
    );
}

fn build(p: ExportParams) -> Result<ExportOp, BuildError> {
    let format = match p.format {
        Some(f) => f,
        None => match Path::new(&p.path).extension().and_then(|e| e.to_str()) {
            Some("parquet") => ExportFormat::Parquet,
            Some("jsonl") | Some("json") => ExportFormat::Jsonl,
            Some("csv") => ExportFormat::Csv,
            Some("tsv") => ExportFormat::Tsv,
            Some("trec") | Some("run") => ExportFormat::Trec,
            _ => {
                return Err(BuildError::invalid(
                    "/path",
                    format!("cannot tell the format of `{}`", p.path),
                )
                .with_help(
                    "end the path in .parquet, .jsonl, .csv, .tsv or .trec, or set `format`",
                ));
            }
        },
    };
    let placeholders: Vec<&str> = p
        .path
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(c, _)| c))
        .collect();
    if placeholders.len() > 1 {
        return Err(BuildError::invalid(
            "/path",
            "at most one `{column}` placeholder is supported",
        ));
    }
    if is_url(&p.path) {
        match ObjectUrl::parse(&p.path) {
            Err(e) => return Err(BuildError::invalid("/path", e.to_string())),
            Ok(url) if !url.kind().can_create_only() => {
                return Err(BuildError::invalid(
                    "/path",
                    format!(
                        "{} is read-only: export to a local path, s3://, gs:// or az://",
                        url.store()
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
    if p.path.split('/').any(|seg| seg == "..") {
        return Err(BuildError::invalid(
            "/path",
            "`..` is not allowed in export paths",
        ));
    }
    let (prefix, template) = match p.path.find('{') {
        Some(i) => {
            let dir_end = p.path[..i].rfind('/').map(|j| j + 1).unwrap_or(0);
            (
                PathBuf::from(&p.path[..dir_end]),
                p.path[dir_end..].to_string(),
            )
        }
        None => {
            let path = Path::new(&p.path);
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                path.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        }
    };
    if template.is_empty() {
        return Err(BuildError::invalid("/path", "the path names no file"));
    }
    Ok(ExportOp {
        prefix,
        template,
        column: placeholders.first().map(|s| s.to_string()),
        format,
    })
}

/// A column value made safe as a file name, one to one: `%`, `/`, backslash and
/// control characters become `%XX` (their UTF-8 bytes in hex), a leading
/// `.` becomes `%2E` (no `.`, `..` or hidden files), and the empty value is
/// `%empty` (escapes are always `%` and two hex digits, so no value encodes
/// to it). Two distinct values never share a file.
fn file_safe(value: &str) -> String {
    if value.is_empty() {
        return "%empty".into();
    }
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.char_indices() {
        if c == '%' || c == '/' || c == '\\' || c.is_control() || (i == 0 && c == '.') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The file name part of a null value (`%null`: no value encodes to it).
const NULL_FILE_PART: &str = "%null";

enum FileWriter {
    Parquet(ArrowWriter<BufWriter<File>>),
    Jsonl(datafusion::arrow::json::LineDelimitedWriter<BufWriter<File>>),
    Csv(datafusion::arrow::csv::Writer<BufWriter<File>>),
    Trec(BufWriter<File>),
}

impl FileWriter {
    fn create(path: &Path, format: ExportFormat, schema: &SchemaRef) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file =
            BufWriter::new(File::create(path).context(|| format!("creating {}", path.display()))?);
        Ok(match format {
            ExportFormat::Parquet => FileWriter::Parquet(ArrowWriter::try_new(
                file,
                schema.clone(),
                Some(writer_properties()),
            )?),
            ExportFormat::Jsonl => {
                FileWriter::Jsonl(datafusion::arrow::json::LineDelimitedWriter::new(file))
            }
            ExportFormat::Csv => FileWriter::Csv(datafusion::arrow::csv::Writer::new(file)),
            ExportFormat::Tsv => FileWriter::Csv(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_delimiter(b'\t')
                    .build(file),
            ),
            ExportFormat::Trec => FileWriter::Trec(file),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.write(batch)?,
            FileWriter::Jsonl(w) => w.write(batch)?,
            FileWriter::Csv(w) => w.write(batch)?,
            FileWriter::Trec(w) => write_trec(w, batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => {
                w.close()?;
            }
            FileWriter::Jsonl(mut w) => w.finish()?,
            FileWriter::Csv(_) => {}
            FileWriter::Trec(mut w) => std::io::Write::flush(&mut w)?,
        }
        Ok(())
    }
}

fn write_trec(w: &mut BufWriter<File>, batch: &RecordBatch) -> Result<()> {
    use std::io::Write;
    let text = |name: &str| -> Result<datafusion::arrow::array::ArrayRef> {
        Ok(cast(
            batch.column(batch.schema().index_of(name)?),
            &DataType::Utf8,
        )?)
    };
    let cols = TREC_COLUMNS
        .iter()
        .map(|c| text(c))
        .collect::<Result<Vec<_>>>()?;
    let tag = match batch.schema().index_of("tag") {
        Ok(i) => Some(cast(batch.column(i), &DataType::Utf8)?),
        Err(_) => None,
    };
    let cols: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
    let tag = tag.as_ref().map(|t| t.as_string::<i32>());
    for row in 0..batch.num_rows() {
        let v = |i: usize| {
            if cols[i].is_null(row) {
                ""
            } else {
                cols[i].value(row)
            }
        };
        let t = tag
            .filter(|t| t.is_valid(row))
            .map(|t| t.value(row))
            .unwrap_or("dflow");
        writeln!(w, "{} Q0 {} {} {} {}", v(0), v(1), v(2), v(3), t)?;
    }
    Ok(())
}

impl Operator for ExportOp {
    fn version(&self) -> u32 {
        // 2: per-value files leave out the column the path names.
        2
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("table")])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let (Some(col), Some(PortType::Table(schema))) = (&self.column, inputs.get("table"))
            && schema.field_with_name(col).is_err()
        {
            return Err(Error::config(format!(
                "the path names column `{col}`, which the table does not have; its columns are: {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.format == ExportFormat::Trec
            && let Some(PortType::Table(schema)) = inputs.get("table")
        {
            for c in TREC_COLUMNS {
                if schema.field_with_name(c).is_err() {
                    return Err(Error::config(format!(
                        "a TREC run is written from the columns {}; the table has no `{c}`",
                        TREC_COLUMNS.join(", ")
                    )));
                }
            }
        }
        Ok(BTreeMap::from([("files".to_string(), PortType::Artifact)]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let input = task.table("table")?.clone();
        let dir = task.outputs.artifact_dir("files")?;
        let mut writers: BTreeMap<String, FileWriter> = BTreeMap::new();
        let col_idx = match &self.column {
            Some(c) => Some(input.schema.index_of(c)?),
            None => None,
        };
        // Per-value files leave out the column the path names.
        let file_schema = match col_idx {
            Some(idx) => {
                let mut fields: Vec<_> = input.schema.fields().iter().cloned().collect();
                fields.remove(idx);
                Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
            }
            None => input.schema.clone(),
        };
        for batch in input.batches(task.batch_size()) {
            let batch = batch?;
            match col_idx {
                None => {
                    let name = self.template.clone();
                    if !writers.contains_key(&name) {
                        writers.insert(
                            name.clone(),
                            FileWriter::create(&dir.join(&name), self.format, &input.schema)?,
                        );
                    }
                    if let Some(w) = writers.get_mut(&name) {
                        w.write(&batch)?;
                    }
                }
                Some(idx) => {
                    let values = cast(batch.column(idx), &DataType::Utf8)?;
                    let values = values.as_string::<i32>();
                    let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                    for row in 0..batch.num_rows() {
                        let v = if values.is_null(row) {
                            NULL_FILE_PART.to_string()
                        } else {
                            file_safe(values.value(row))
                        };
                        groups.entry(v).or_default().push(row as u32);
                    }
                    for (value, rows) in groups {
                        let col = self.column.as_deref().unwrap_or_default();
                        let name = self.template.replace(&format!("{{{col}}}"), &value);
                        let mut part = take_record_batch(&batch, &UInt32Array::from(rows))?;
                        part.remove_column(idx);
                        if !writers.contains_key(&name) {
                            writers.insert(
                                name.clone(),
                                FileWriter::create(&dir.join(&name), self.format, &file_schema)?,
                            );
                        }
                        if let Some(w) = writers.get_mut(&name) {
                            w.write(&part)?;
                        }
                    }
                }
            }
        }
        if writers.is_empty() && col_idx.is_none() {
            FileWriter::create(&dir.join(&self.template), self.format, &input.schema)?.finish()?;
        }
        for (_, w) in writers {
            w.finish()?;
        }
        Ok(())
    }

    fn publish(&self, ctx: &PlanContext, outputs: &NodeOutput) -> Result<()> {
        let Some(PortData::Artifact { dir, .. }) = outputs.ports.get("files") else {
            return Err(Error::internal("export has no files artifact"));
        };
        publish_to(dir, &self.prefix.to_string_lossy(), ctx)
    }
}

/// Publishes the files of an artifact directory to `dest` as a node's
/// params name it: a path relative to the pipeline file
/// ([`publish_files`]) or a folder in an object store
/// ([`publish_objects`]). For operators whose output is meant to land
/// beside the pipeline or in a bucket (`export`, `report`, `train`'s
/// `path`, `crawl`'s `warc_path`).
pub fn publish_to(dir: &Path, dest: &str, ctx: &PlanContext) -> Result<()> {
    match Location::parse(dest, &ctx.base_dir)? {
        Location::Local(dest) => publish_files(dir, &dest, &ctx.node),
        Location::Object(url) if !url.kind().can_create_only() => Err(Error::config(format!(
            "{} is read-only: publish to a local path, s3://, gs:// or az://",
            url.store()
        ))),
        Location::Object(url) => publish_objects(dir, &url, &ctx.node),
    }
}

/// [`publish_files`] into an object store prefix: each file is uploaded
/// unless the node's manifest there (`.dflow-export-<node>.json`, each
/// file's BLAKE3) says the same bytes are already in place, and files the
/// node exported before and no longer produces are deleted.
pub fn publish_objects(dir: &Path, dest: &ObjectUrl, node: &str) -> Result<()> {
    use object_store::{ObjectStoreExt, PutPayload};
    let store = stores::store_for(dest)?;
    let manifest_url = dest.join(&format!(".dflow-export-{node}.json"));
    let previous: BTreeMap<String, String> = stores::read_object(&store, &manifest_url)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut written = BTreeMap::new();
    for file in walk_files(dir) {
        let rel = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        let (digest, _) = crate::cache::files::digest_file(&file)?;
        if previous.get(&rel) != Some(&digest) {
            upload_file(&store, &dest.join(&rel), &file)?;
        }
        written.insert(rel, digest);
    }
    for old in previous.keys().filter(|p| !written.contains_key(*p)) {
        let (store, path) = (store.clone(), dest.join(old).object_path());
        let _ = stores::block_on(async move { store.delete(&path).await });
    }
    let body = serde_json::to_vec_pretty(&written)?;
    let (store, path) = (store.clone(), manifest_url.object_path());
    stores::block_on(async move { store.put(&path, PutPayload::from(body)).await })?
        .map_err(|e| stores::store_error(e, format_args!("writing {manifest_url}")))?;
    Ok(())
}

/// Copies the files of an artifact directory into `dest` (only those that
/// differ, each replaced atomically) and removes the files that node `node`
/// put there before and no longer produces (a manifest per node in `dest`
/// remembers them). For operators whose output is meant to land beside the
/// pipeline (`export`, `report`).
pub fn publish_files(dir: &Path, dest: &Path, node: &str) -> Result<()> {
    std::fs::create_dir_all(dest).context(|| format!("creating {}", dest.display()))?;
    let manifest_path = dest.join(format!(".dflow-export-{node}.json"));
    let previous: Vec<String> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut written = Vec::new();
    for file in walk_files(dir) {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            remove_tmp_files(parent);
        }
        let bytes = std::fs::read(&file)?;
        if std::fs::read(&target).ok().as_deref() != Some(&bytes[..]) {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_atomic(&target, &bytes)?;
        }
        written.push(rel.to_string_lossy().into_owned());
    }
    // Files this node exported before and no longer produces.
    for old in previous.iter().filter(|p| !written.contains(p)) {
        let _ = std::fs::remove_file(dest.join(old));
    }
    write_atomic(&manifest_path, &serde_json::to_vec_pretty(&written)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prefix_and_template() {
        let op = build(ExportParams {
            path: "out/data/{language}.parquet".into(),
            format: None,
        })
        .map_err(|_| ())
        .expect("valid");
        assert_eq!(op.prefix, PathBuf::from("out/data/"));
        assert_eq!(op.template, "{language}.parquet");
        assert_eq!(op.column.as_deref(), Some("language"));
        assert_eq!(op.format, ExportFormat::Parquet);
    }

    #[test]
    fn exports_go_to_stores_that_can_be_written() {
        let op = |path: &str| {
            build(ExportParams {
                path: path.into(),
                format: None,
            })
        };
        let s3 = op("s3://bucket/out/{language}.parquet")
            .map_err(|_| ())
            .expect("s3 export");
        assert_eq!(s3.prefix, PathBuf::from("s3://bucket/out/"));
        assert!(op("https://host/out.parquet").is_err());
        assert!(op("ftp://host/out.parquet").is_err());
        assert!(op("s3://user:secret@bucket/out.parquet").is_err());
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_safe("../x/y"), "%2E.%2Fx%2Fy");
        assert_eq!(file_safe(".."), "%2E.");
        assert_eq!(file_safe(""), "%empty");
        assert_eq!(file_safe("eng"), "eng");
        // Once "a/b" and "a_b" (and "." and "..") shared one file.
        let values = [
            "a/b", "a_b", "a%2Fb", ".", "..", "%2E", "", "%empty", "%null", "a\\b", "a\nb",
        ];
        let names: std::collections::BTreeSet<String> =
            values.iter().map(|v| file_safe(v)).collect();
        assert_eq!(names.len(), values.len(), "{names:?}");
        assert!(!names.contains(NULL_FILE_PART));
        assert!(
            names
                .iter()
                .all(|n| !n.contains('/') && !n.starts_with('.'))
        );
    }
}
