//! Reading and writing table partitions as Parquet.
//!
//! Writes are deterministic: the same rows in the same order give the same
//! bytes whatever batch sizes the operator produced them in (rows are
//! re-chunked to a fixed size and every writer setting is pinned), so content
//! digests are stable and early cut-off works.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result, ResultExt};

/// Rows per chunk handed to the Parquet writer and per row group multiple.
pub const CHUNK_ROWS: usize = 8192;

/// Pinned writer settings: changing any of them changes every digest, so it
/// is a cache format change.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by("dflow-cache-v1".to_string())
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(CHUNK_ROWS * 128))
        .set_write_batch_size(1024)
        .set_data_page_row_count_limit(CHUNK_ROWS)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// A table partition as an operator reads it: a Parquet file by its path.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartRef {
    /// The partition's name (see [`CachedPart::name`]).
    pub name: String,
    /// The Parquet file.
    pub path: PathBuf,
    /// BLAKE3 of the file's bytes.
    pub digest: String,
    /// Rows in the file.
    pub rows: u64,
}

/// Counts rows written by a node, for progress reporting.
#[derive(Debug, Default)]
pub struct RowCounter(AtomicU64);

impl RowCounter {
    /// Adds `n` written rows.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The rows written so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A table partition in the cache: the entry that holds it, its file in
/// that entry, its content digest and its rows. This is the one description
/// of a cached partition; the lock file stores it as is, and the two other
/// views are derived from it: [`PartRef`] (what an operator reads: the same
/// partition with the file's path resolved in a cache) and [`WrittenPart`]
/// (what a unit's writer reports before its entry has a place).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CachedPart {
    /// The partition's name (a source file's relative path, a partition
    /// name an operator chose, or `all`).
    pub name: String,
    /// The cache key of the entry that holds the file.
    pub key: String,
    /// The Parquet file, relative to the entry directory.
    pub file: PathBuf,
    /// BLAKE3 of the file's bytes.
    pub digest: String,
    /// Rows in the file.
    pub rows: u64,
}

impl CachedPart {
    /// The partition as an operator reads it, its entry found under
    /// `entry_dir`.
    pub fn at(&self, entry_dir: &Path) -> PartRef {
        PartRef {
            name: self.name.clone(),
            path: entry_dir.join(&self.file),
            digest: self.digest.clone(),
            rows: self.rows,
        }
    }
}

/// A `Write` that hashes what passes through it.
struct HashingWriter {
    inner: BufWriter<File>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A partition written by an operator.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WrittenPart {
    /// The partition's name.
    pub partition: String,
    /// Relative to the entry directory.
    pub file: PathBuf,
    /// BLAKE3 of the file's bytes.
    pub digest: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// Writes one table partition.
pub struct TableWriter {
    path: PathBuf,
    rel: PathBuf,
    partition: String,
    schema: SchemaRef,
    writer: ArrowWriter<HashingWriter>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
    counter: Arc<RowCounter>,
}

impl TableWriter {
    pub(crate) fn create(
        dir: &Path,
        rel: PathBuf,
        partition: String,
        schema: SchemaRef,
        counter: Arc<RowCounter>,
    ) -> Result<Self> {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::create(&path).context(|| format!("creating {}", path.display()))?;
        let sink = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(writer_properties()))?;
        Ok(Self {
            path,
            rel,
            partition,
            schema,
            writer,
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
            counter,
        })
    }

    /// The port's schema, which every written batch takes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends a batch. Its columns must have the port's types; field
    /// nullability and metadata are taken from the port's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.schema)?;
        let n = batch.num_rows();
        self.rows += n as u64;
        self.counter.add(n as u64);
        let mut offset = 0;
        // Complete the pending chunk first (the only rows ever copied).
        if self.pending_rows > 0 {
            let need = CHUNK_ROWS - self.pending_rows;
            if n < need {
                self.pending.push(batch);
                self.pending_rows += n;
                return Ok(());
            }
            self.pending.push(batch.slice(0, need));
            let chunk = concat_batches(&self.schema, &self.pending)?;
            self.writer.write(&chunk)?;
            self.pending.clear();
            self.pending_rows = 0;
            offset = need;
        }
        // Whole chunks straight from the batch, without copying.
        while n - offset >= CHUNK_ROWS {
            self.writer.write(&batch.slice(offset, CHUNK_ROWS))?;
            offset += CHUNK_ROWS;
        }
        if offset < n {
            self.pending.push(batch.slice(offset, n - offset));
            self.pending_rows = n - offset;
        }
        Ok(())
    }

    /// Flushes, closes and fsyncs the file; returns its digest.
    pub(crate) fn finish(mut self) -> Result<WrittenPart> {
        if !self.pending.is_empty() {
            let all = concat_batches(&self.schema, &self.pending)?;
            self.writer.write(&all)?;
        }
        // Writes the footer and hands back the sink.
        let mut sink = self.writer.into_inner()?;
        sink.flush()?;
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?;
        file.sync_all()
            .context(|| format!("syncing {}", self.path.display()))?;
        Ok(WrittenPart {
            partition: self.partition,
            file: self.rel,
            digest: sink.hasher.finalize().to_hex().to_string(),
            rows: self.rows,
            bytes: sink.bytes,
        })
    }
}

/// Gives a batch the exact schema of a port (same columns and types; takes the
/// port's nullability and metadata).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let got = batch.schema();
    let same_shape = got.fields().len() == schema.fields().len()
        && got
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same_shape {
        return Err(Error::internal(format!(
            "operator produced columns ({}) but its port declares ({})",
            describe(&got),
            describe(schema)
        )));
    }
    Ok(RecordBatch::try_new(
        schema.clone(),
        batch.columns().to_vec(),
    )?)
}

fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Streams the batches of several partitions, one file after the other.
pub struct PartReader {
    parts: std::vec::IntoIter<PartRef>,
    schema: SchemaRef,
    batch_size: usize,
    current: Option<ParquetRecordBatchReader>,
}

impl PartReader {
    /// Reads `parts` in order, in batches of up to `batch_size` rows; `schema` is theirs.
    pub fn new(parts: Vec<PartRef>, schema: SchemaRef, batch_size: usize) -> Self {
        Self {
            parts: parts.into_iter(),
            schema,
            batch_size,
            current: None,
        }
    }

    /// The schema of the partitions, as given to `new`.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Iterator for PartReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(reader) = &mut self.current {
                match reader.next() {
                    Some(batch) => return Some(batch.map_err(Error::from)),
                    None => self.current = None,
                }
            }
            let part = self.parts.next()?;
            match open_parquet(&part.path, self.batch_size) {
                Ok(reader) => self.current = Some(reader),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Opens a Parquet file for streaming reads, with the file named in errors.
pub fn open_parquet(path: &Path, batch_size: usize) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).context(|| format!("opening {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .context(|| format!("reading Parquet footer of {}", path.display()))?
        .with_batch_size(batch_size)
        .build()
        .context(|| format!("reading {}", path.display()))
}

/// Reads a whole partition into memory (tests and small tables).
pub fn read_all(parts: &[PartRef], schema: SchemaRef) -> Result<Vec<RecordBatch>> {
    PartReader::new(parts.to_vec(), schema, CHUNK_ROWS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(schema: &SchemaRef, start: i64, n: i64) -> RecordBatch {
        let ids: Vec<i64> = (start..start + n).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("valid batch")
    }

    fn write_in(dir: &Path, name: &str, sizes: &[i64]) -> WrittenPart {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut w = TableWriter::create(
            dir,
            PathBuf::from(name),
            "p".into(),
            schema.clone(),
            Arc::default(),
        )
        .expect("writer");
        let mut start = 0;
        for &n in sizes {
            w.write(&batch(&schema, start, n)).expect("write");
            start += n;
        }
        w.finish().expect("finish")
    }

    #[test]
    fn digest_ignores_batch_boundaries_and_matches_file_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write_in(dir.path(), "a.parquet", &[20_000]);
        let b = write_in(dir.path(), "b.parquet", &[1, 8191, 5000, 3, 6805]);
        assert_eq!(a.rows, 20_000);
        assert_eq!(a.digest, b.digest);
        let bytes = std::fs::read(dir.path().join("a.parquet")).expect("read");
        assert_eq!(blake3::hash(&bytes).to_hex().to_string(), a.digest);
        assert_eq!(bytes.len() as u64, a.bytes);
        let c = write_in(dir.path(), "c.parquet", &[19_999]);
        assert_ne!(a.digest, c.digest);
    }
}
