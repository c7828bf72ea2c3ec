//! WARC read + HTTP decode + charset decode throughput of dflow's reader (the
//! work of `op: warc` minus writing Parquet).
//!
//!     cargo run --example warc_read -- FILE.warc.gz [--no-charset]
//!
//! FILE may be an object store URL (`s3://bucket/key`, credentials and
//! endpoint from the environment): read with ranged GETs, as `op: warc` does.
//!
//! `--no-charset` stops after the HTTP layer (the work FastWARC does), to
//! compare like with like.

use std::time::Instant;

use dflow_engine::storage::{Location, SourceFile};
use dflow_op_web::charset::decode_html;
use dflow_op_web::warc::http::parse_response;
use dflow_op_web::warc::reader::{Item, WarcReader};

/// The allocator of the `dflow` binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: warc_read FILE [--no-charset]")?;
    let charset = std::env::args().nth(2).as_deref() != Some("--no-charset");
    let start = Instant::now();
    let file = SourceFile::open(&Location::parse(&path, std::path::Path::new("."))?)?;
    let size = file.size() as f64 / 1e6;
    let (mut records, mut pages, mut damaged, mut bytes) = (0u64, 0u64, 0u64, 0usize);
    WarcReader::new(file, 16 << 20)?.for_each(|item| match item {
        Item::Record(r) => {
            records += 1;
            if r.header("WARC-Type") == Some("response")
                && let Ok(resp) = parse_response(r.block, 16 << 20)
            {
                if charset {
                    let ct = resp.header("Content-Type").map(str::to_string);
                    bytes += decode_html(resp.body(), ct.as_deref()).text.len();
                } else {
                    bytes += resp.body().len();
                }
                pages += 1;
            }
        }
        Item::Damaged { .. } => damaged += 1,
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "dflow{}: {records} records ({pages} responses decoded, {damaged} damaged, {:.0} MB {}) in {secs:.2} s = {:.1} MB/s (compressed)",
        if charset { "" } else { " --no-charset" },
        bytes as f64 / 1e6,
        if charset { "text" } else { "payload" },
        size / secs
    );
    Ok(())
}
