//! The physical limit of reading a WARC.gz: inflating it (zlib-rs, through
//! flate2's multi-member decoder) and nothing else.
//!
//!     cargo run --example gunzip -- FILE.warc.gz

use std::io::Read;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: gunzip FILE")?;
    let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
    let file = std::io::BufReader::with_capacity(256 << 10, std::fs::File::open(&path)?);
    let start = Instant::now();
    let mut decoder = flate2::bufread::MultiGzDecoder::new(file);
    let mut buf = vec![0u8; 1 << 16];
    let mut out = 0u64;
    loop {
        let n = decoder.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "inflate only (zlib-rs): {:.0} MB out in {secs:.2} s = {:.1} MB/s (compressed)",
        out as f64 / 1e6,
        size / secs
    );
    Ok(())
}
