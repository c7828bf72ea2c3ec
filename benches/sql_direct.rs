//! Baseline for `benches/sql_overhead.sh`: the same per-file query that a
//! per-partition `op: sql` node runs, done directly with DataFusion the way
//! datafusion-cli would (register the file, run the query, write Parquet).
//!
//!     cargo run --example sql_direct -- gen DIR FILES ROWS
//!     cargo run --example sql_direct -- direct DIR OUT_DIR "QUERY"

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

fn generate(dir: &str, files: usize, rows: usize) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("language", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ]));
    let langs = [
        "eng", "deu", "fra", "spa", "rus", "jpn", "zho", "ara", "hin", "tha",
    ];
    let mut seed: u64 = 1;
    for f in 0..files {
        let file = std::fs::File::create(format!("{dir}/part-{f:04}.parquet"))?;
        let mut w = ArrowWriter::try_new(file, schema.clone(), None)?;
        for chunk in 0..rows.div_ceil(65_536) {
            let n = (rows - chunk * 65_536).min(65_536);
            let mut ids = Vec::with_capacity(n);
            let mut ls = Vec::with_capacity(n);
            let mut qs = Vec::with_capacity(n);
            let mut ss = Vec::with_capacity(n);
            for i in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ids.push((f * rows + chunk * 65_536 + i) as i64);
                ls.push(langs[(seed >> 60) as usize % langs.len()]);
                qs.push(format!("How do I do thing number {} today?", seed >> 44));
                ss.push((seed >> 11) as f64 / (1u64 << 53) as f64);
            }
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(ls)),
                    Arc::new(StringArray::from(qs)),
                    Arc::new(Float64Array::from(ss)),
                ],
            )?;
            w.write(&batch)?;
        }
        w.close()?;
    }
    Ok(())
}

async fn direct(dir: &str, out: &str, query: &str) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let start = Instant::now();
    for (i, file) in files.iter().enumerate() {
        // One partition per session, as dflow's per-partition sql node.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.register_parquet(
            "t",
            file.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        let df = ctx.sql(query).await?;
        df.write_parquet(
            &format!("{out}/part-{i:04}.parquet"),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    }
    println!(
        "direct: {} files in {:.3} s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 5 => generate(&args[2], args[3].parse()?, args[4].parse()?),
        Some("direct") if args.len() == 5 => {
            tokio::runtime::Runtime::new()?.block_on(direct(&args[2], &args[3], &args[4]))
        }
        _ => {
            eprintln!("usage: sql_direct gen DIR FILES ROWS | direct DIR OUT QUERY");
            std::process::exit(2)
        }
    }
}
