//! Operator state as small Parquet files (a fold's seen ids, a global
//! operator's results to reuse), written into a unit's state directory.

use std::fs::File;
use std::path::Path;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::{Error, Result, ResultExt};

/// Writes batches to one Parquet file.
pub fn write_parquet(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let file = File::create(path).context(|| format!("creating {}", path.display()))?;
    let mut w = ArrowWriter::try_new(file, schema, None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    crate::table::open_parquet(path, 8192)?
        .map(|b| b.map_err(Error::from))
        .collect()
}
