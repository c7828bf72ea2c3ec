//! File sources: `parquet`, `csv` and `jsonl`. Param `paths` is a list of
//! globs relative to the pipeline file; each matching file is a partition.

use crate::ports::OUT;
use std::collections::BTreeMap;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::json;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ResultExt};
use crate::operator::{
    InputPorts, Operator, Partitioning, PlanContext, PortType, SourcePartition, Task,
};
use crate::registry::{BuildError, Registry};
use crate::storage::{Location, is_url, list_matching};

fn default_true() -> bool {
    true
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_infer_rows() -> usize {
    1000
}

/// Params of `op: parquet`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetParams {
    /// Globs relative to the pipeline file; each file is a partition.
    pub paths: Vec<String>,
}

/// Params of `op: csv`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvParams {
    /// Globs relative to the pipeline file; each file is a partition.
    pub paths: Vec<String>,
    /// The first line holds column names (default true).
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// One ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Rows of the first file read to infer the schema (default 1000).
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
}

/// Params of `op: jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonlParams {
    /// Globs relative to the pipeline file; each file is a partition.
    pub paths: Vec<String>,
    /// Lines of the first file read to infer the schema (default 1000).
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
}

#[derive(Clone, Debug)]
enum Format {
    Parquet,
    Csv {
        header: bool,
        delimiter: u8,
        infer_rows: usize,
    },
    Jsonl {
        infer_rows: usize,
    },
}

/// A file source: reads the files matching `paths` in one format, a partition per file.
pub struct FileSource {
    paths: Vec<String>,
    format: Format,
}

fn check_paths(paths: &[String]) -> Result<(), BuildError> {
    if paths.is_empty() {
        return Err(BuildError::invalid("/paths", "`paths` is empty")
            .with_help("list at least one file or glob, e.g. `paths: [\"data/*.csv\"]`"));
    }
    for (i, p) in paths.iter().enumerate() {
        if let Err(e) = glob::Pattern::new(p) {
            return Err(BuildError::invalid(
                &format!("/paths/{i}"),
                format!("`{p}` is not a valid glob: {e}"),
            ));
        }
    }
    Ok(())
}

/// Registers the file sources `op: parquet`, `op: csv` and `op: jsonl`.
pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "parquet",
        "Parquet files (globs in `paths`), one partition per file",
        &["paths"],
        |p: ParquetParams, _| {
            check_paths(&p.paths)?;
            Ok(Arc::new(FileSource {
                paths: p.paths,
                format: Format::Parquet,
            }) as Arc<dyn Operator>)
        },
    );
    registry.register_with_selection(
        "csv",
        "CSV files (globs in `paths`), one partition per file",
        &["paths"],
        |p: CsvParams, _| {
            check_paths(&p.paths)?;
            let delimiter = match p.delimiter.as_bytes() {
                [b] if b.is_ascii() => *b,
                _ => {
                    return Err(BuildError::invalid(
                        "/delimiter",
                        format!("`{}` is not one ASCII character", p.delimiter),
                    ));
                }
            };
            Ok(Arc::new(FileSource {
                paths: p.paths,
                format: Format::Csv {
                    header: p.has_header,
                    delimiter,
                    infer_rows: p.infer_rows,
                },
            }) as Arc<dyn Operator>)
        },
    );
    registry.register_with_selection(
        "jsonl",
        "JSON lines files (globs in `paths`), one partition per file",
        &["paths"],
        |p: JsonlParams, _| {
            check_paths(&p.paths)?;
            Ok(Arc::new(FileSource {
                paths: p.paths,
                format: Format::Jsonl {
                    infer_rows: p.infer_rows,
                },
            }) as Arc<dyn Operator>)
        },
    );
}

/// Where a source's single path (a directory, a sidecar file) is: under the
/// source root when there is one and the path is relative, else as
/// [`Location::parse`] reads it.
pub fn resolve_source(ctx: &PlanContext, path: &str) -> Result<Location> {
    match &ctx.source_root {
        Some(root) if !is_url(path) && !Path::new(path).is_absolute() => Ok(Location::Object(
            root.join(path.trim_start_matches("./").trim_end_matches('/')),
        )),
        _ => Location::parse(path, &ctx.base_dir),
    }
}

/// The files of a source's `paths`: [`expand_globs`] against the pipeline's
/// directory, or, with a source root (`--source-root s3://bucket/prefix`),
/// relative paths resolve under that prefix and keep their relative names,
/// so partition names (and the lock file) are those of a local run.
pub fn expand_sources(ctx: &PlanContext, patterns: &[String]) -> Result<Vec<SourcePartition>> {
    let Some(root) = &ctx.source_root else {
        return expand_globs(&ctx.base_dir, patterns);
    };
    let mut files: BTreeMap<String, SourcePartition> = BTreeMap::new();
    for pattern in patterns {
        let relative = !is_url(pattern) && !Path::new(pattern).is_absolute();
        if !relative {
            for sp in expand_globs(&ctx.base_dir, std::slice::from_ref(pattern))? {
                files.insert(sp.name.clone(), sp);
            }
            continue;
        }
        let rel = pattern.trim_start_matches("./");
        let listed = list_matching(&root.join(rel))?;
        if listed.is_empty() && !pattern.contains(['*', '?', '[']) {
            return Err(Error::data(format!(
                "source file `{pattern}` does not exist under {root}"
            )));
        }
        let prefix = format!("{}/", root.key().trim_end_matches('/'));
        for file in listed {
            let key = file.url.key();
            let name = if root.key().is_empty() {
                key.to_string()
            } else {
                key.strip_prefix(&prefix).unwrap_or(key).to_string()
            };
            files.insert(
                name.clone(),
                SourcePartition {
                    name,
                    location: Location::Object(file.url),
                },
            );
        }
    }
    Ok(files.into_values().collect())
}

/// Files matching `patterns` (relative to `base`, or URLs of objects in a
/// store: `s3://bucket/crawl/*.warc.gz`), sorted, each once; a pattern
/// without wildcards must name an existing file.
pub fn expand_globs(base: &Path, patterns: &[String]) -> Result<Vec<SourcePartition>> {
    let mut files: BTreeMap<String, SourcePartition> = BTreeMap::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        if let Location::Object(url) = Location::parse(pattern, base)? {
            let listed = list_matching(&url)?;
            for file in listed {
                let name = file.url.to_string();
                files.insert(
                    name.clone(),
                    SourcePartition {
                        name,
                        location: Location::Object(file.url),
                    },
                );
            }
            continue;
        }
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let full_str = full.to_string_lossy();
        let matches =
            glob::glob(&full_str).map_err(|e| Error::config(format!("{pattern}: {e}")))?;
        let mut n = 0;
        for m in matches {
            let path = m.map_err(|e| Error::data(format!("listing {pattern}: {e}")))?;
            if !path.is_file() {
                continue;
            }
            n += 1;
            let name = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(name.clone(), SourcePartition::local(name, path));
        }
        if n == 0 && !is_glob {
            return Err(Error::data(format!(
                "source file `{pattern}` does not exist (paths are relative to the pipeline file)"
            )));
        }
    }
    Ok(files.into_values().collect())
}

impl FileSource {
    fn infer_schema(&self, source: &SourcePartition) -> Result<Schema> {
        let open = || source.open();
        let path = &source.location;
        match &self.format {
            Format::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(open()?)
                    .context(|| format!("{} is not a readable Parquet file", path))?;
                Ok(builder.schema().as_ref().clone())
            }
            Format::Csv {
                header,
                delimiter,
                infer_rows,
            } => {
                let format = csv::reader::Format::default()
                    .with_header(*header)
                    .with_delimiter(*delimiter);
                let (schema, _) = format
                    .infer_schema(open()?, Some(*infer_rows))
                    .context(|| format!("inferring the columns of {}", path))?;
                Ok(schema)
            }
            Format::Jsonl { infer_rows } => {
                let mut reader = BufReader::new(open()?);
                let (schema, _) =
                    json::reader::infer_json_schema_from_seekable(&mut reader, Some(*infer_rows))
                        .context(|| format!("inferring the columns of {}", path))?;
                reader.rewind()?;
                Ok(schema)
            }
        }
    }
}

impl Operator for FileSource {
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
        let files = self.list_partitions(ctx)?;
        let Some(first) = files.first() else {
            return Err(Error::data(format!(
                "no file matches {}",
                self.paths.join(", ")
            )));
        };
        let schema = self.infer_schema(first)?;
        Ok(BTreeMap::from([(OUT.to_string(), PortType::table(schema))]))
    }

    fn list_partitions(&self, ctx: &PlanContext) -> Result<Vec<SourcePartition>> {
        expand_sources(ctx, &self.paths)
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let Some(source) = task.source else {
            return Err(Error::internal("source unit without a file"));
        };
        let schema: SchemaRef = task.outputs.table(OUT)?.schema().clone();
        let batch_size = task.batch_size();
        let file = source.open()?;
        let name = source.location.to_string();
        match &self.format {
            Format::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .context(|| format!("{name} is not a readable Parquet file"))?;
                let found = builder.schema().clone();
                let same = found.fields().len() == schema.fields().len()
                    && found
                        .fields()
                        .iter()
                        .zip(schema.fields())
                        .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
                if !same {
                    return Err(Error::data(format!(
                        "{name} has columns ({}) but the source's first file has ({})",
                        describe(&found),
                        describe(&schema)
                    )));
                }
                let reader = builder
                    .with_batch_size(batch_size)
                    .build()
                    .context(|| format!("reading {name}"))?;
                for batch in reader {
                    let batch = batch.context(|| format!("reading {name}"))?;
                    task.outputs.write(OUT, &batch)?;
                }
            }
            Format::Csv {
                header, delimiter, ..
            } => {
                let reader = csv::ReaderBuilder::new(schema)
                    .with_header(*header)
                    .with_delimiter(*delimiter)
                    .with_batch_size(batch_size)
                    .build(file)?;
                for batch in reader {
                    let batch = batch.context(|| format!("reading {name}"))?;
                    task.outputs.write(OUT, &batch)?;
                }
            }
            Format::Jsonl { .. } => {
                let reader = json::ReaderBuilder::new(schema)
                    .with_batch_size(batch_size)
                    .build(BufReader::new(file))?;
                for batch in reader {
                    let batch = batch.context(|| format!("reading {name}"))?;
                    task.outputs.write(OUT, &batch)?;
                }
            }
        }
        Ok(())
    }
}

fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
