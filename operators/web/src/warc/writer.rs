//! WARC 1.1 writer: one gzip member per record (as Common Crawl writes them,
//! so any record can be read from its offset), files rolled at a size limit.
//!
//! The crawler writes what it fetched through this; the files are read back
//! by [`super::reader::WarcReader`] like any other WARC.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

/// One record to write: its type, target, extra headers and block.
pub struct RecordOut<'a> {
    pub warc_type: &'a str,
    pub target_uri: Option<&'a str>,
    pub date_ms: i64,
    /// Further `WARC-*` headers (`WARC-IP-Address`, `WARC-Truncated`, ...).
    pub headers: Vec<(&'a str, String)>,
    pub content_type: &'a str,
    pub block: &'a [u8],
}

/// Where a record landed: the file and the offsets of its gzip member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub file: String,
    pub offset: u64,
    pub end: u64,
    pub record_id: String,
}

/// Writes records into `<dir>/<prefix>-NNNNN.warc.gz`, starting a new file
/// when the current one passes `max_file_bytes`.
pub struct WarcWriter {
    dir: PathBuf,
    prefix: String,
    max_file_bytes: u64,
    index: u32,
    file: Option<(File, String, u64)>,
    counter: u64,
    software: String,
}

impl WarcWriter {
    /// Files are numbered from `first_index` (a resumed crawl starts after
    /// the files it already has).
    pub fn new(dir: &Path, prefix: &str, max_file_bytes: u64, first_index: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            max_file_bytes: max_file_bytes.max(1),
            index: first_index,
            file: None,
            counter: 0,
            software: format!("dflow/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The file name of number `index`.
    pub fn file_name(prefix: &str, index: u32) -> String {
        format!("{prefix}-{index:05}.warc.gz")
    }

    /// Writes one record as one gzip member and flushes it to disk.
    pub fn write(&mut self, rec: &RecordOut<'_>) -> io::Result<Written> {
        let mut w = self.write_group(std::slice::from_ref(rec))?;
        w.pop().ok_or_else(|| io::Error::other("no record written"))
    }

    /// Writes records that belong together (a request and its response)
    /// into the same file, one gzip member each, then flushes.
    pub fn write_group(&mut self, recs: &[RecordOut<'_>]) -> io::Result<Vec<Written>> {
        if self
            .file
            .as_ref()
            .is_none_or(|f| f.2 >= self.max_file_bytes)
        {
            self.open_next()?;
        }
        let mut members = Vec::with_capacity(recs.len());
        for rec in recs {
            let record_id = match rec.headers.iter().find(|(k, _)| *k == "WARC-Record-ID") {
                Some((_, id)) => id.clone(),
                None => self.record_id(rec.target_uri, rec.date_ms),
            };
            members.push((encode_member(rec, &record_id)?, record_id));
        }
        let Some((file, name, len)) = self.file.as_mut() else {
            return Err(io::Error::other("no WARC file open"));
        };
        let mut out = Vec::with_capacity(members.len());
        for (member, record_id) in members {
            let offset = *len;
            file.write_all(&member)?;
            *len += member.len() as u64;
            out.push(Written {
                file: name.clone(),
                offset,
                end: *len,
                record_id,
            });
        }
        file.flush()?;
        Ok(out)
    }

    /// A fresh record id (for `WARC-Concurrent-To` links between records
    /// written in one group).
    pub fn new_record_id(&mut self, target_uri: &str) -> String {
        self.record_id(Some(target_uri), 0)
    }

    /// Ends the current file (synced to disk).
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some((file, _, _)) = self.file.take() {
            file.sync_all()?;
        }
        Ok(())
    }

    fn open_next(&mut self) -> io::Result<()> {
        self.finish()?;
        let name = Self::file_name(&self.prefix, self.index);
        self.index += 1;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join(&name))?;
        self.file = Some((file, name.clone(), 0));
        let info = format!(
            "software: {}\r\nformat: WARC File Format 1.1\r\nconformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n",
            self.software
        );
        let rec = RecordOut {
            warc_type: "warcinfo",
            target_uri: None,
            date_ms: now_ms(),
            headers: vec![("WARC-Filename", name)],
            content_type: "application/warc-fields",
            block: info.as_bytes(),
        };
        self.write(&rec).map(|_| ())
    }

    /// A record id unique to this writer: a UUID-shaped hash of the file,
    /// a counter, the target and the time.
    fn record_id(&mut self, target_uri: Option<&str>, date_ms: i64) -> String {
        self.counter += 1;
        let mut h = blake3::Hasher::new();
        h.update(self.dir.as_os_str().as_encoded_bytes());
        h.update(&self.index.to_le_bytes());
        h.update(&self.counter.to_le_bytes());
        h.update(target_uri.unwrap_or("").as_bytes());
        h.update(&date_ms.to_le_bytes());
        h.update(&now_ns().to_le_bytes());
        let b = h.finalize();
        let x = b.as_bytes();
        let hex: String = x[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "<urn:uuid:{}-{}-4{}-{}-{}>",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

fn encode_member(rec: &RecordOut<'_>, record_id: &str) -> io::Result<Vec<u8>> {
    let mut head = String::with_capacity(512);
    head.push_str("WARC/1.1\r\n");
    head.push_str(&format!("WARC-Type: {}\r\n", rec.warc_type));
    head.push_str(&format!("WARC-Record-ID: {record_id}\r\n"));
    let extra = rec.headers.iter().filter(|(k, _)| *k != "WARC-Record-ID");
    head.push_str(&format!("WARC-Date: {}\r\n", format_warc_date(rec.date_ms)));
    if let Some(uri) = rec.target_uri {
        head.push_str(&format!("WARC-Target-URI: {}\r\n", header_safe(uri)));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {}\r\n", header_safe(v)));
    }
    head.push_str(&format!("Content-Type: {}\r\n", rec.content_type));
    head.push_str(&format!("Content-Length: {}\r\n\r\n", rec.block.len()));
    let mut gz = GzEncoder::new(
        Vec::with_capacity(rec.block.len() / 3 + 256),
        Compression::new(6),
    );
    gz.write_all(head.as_bytes())?;
    gz.write_all(rec.block)?;
    gz.write_all(b"\r\n\r\n")?;
    gz.finish()
}

/// A header value on one line (a URL from the web may hold anything).
fn header_safe(v: &str) -> String {
    v.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Unix milliseconds as a WARC date (`2026-11-29T13:05:07Z`; UTC, seconds).
pub fn format_warc_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::parse_warc_date;
    use super::super::reader::{Item, WarcReader};
    use super::*;

    #[test]
    fn dates_round_trip() {
        for ms in [0, 951_868_801_000, 1_709_251_199_000, 1_800_000_000_000] {
            assert_eq!(parse_warc_date(&format_warc_date(ms)), Some(ms));
        }
        assert_eq!(format_warc_date(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn written_records_read_back_with_offsets_and_rolling() {
        let dir = tempfile::tempdir().expect("test input");
        let mut w = WarcWriter::new(dir.path(), "t", 600, 3);
        let body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>hi</html>";
        let mut written = Vec::new();
        for i in 0..3 {
            let uri = format!("http://a.example/{i}\r\nX-Injected: 1");
            written.push(
                w.write(&RecordOut {
                    warc_type: "response",
                    target_uri: Some(&uri),
                    date_ms: 1_000,
                    headers: vec![("WARC-IP-Address", "192.0.2.1".into())],
                    content_type: "application/http; msgtype=response",
                    block: body,
                })
                .expect("test input"),
            );
        }
        w.finish().expect("test input");
        // The first file passed 600 bytes after its warcinfo and one record.
        assert_eq!(written[0].file, "t-00003.warc.gz");
        assert!(written.iter().any(|x| x.file == "t-00004.warc.gz"));
        let mut seen = Vec::new();
        for name in ["t-00003.warc.gz", "t-00004.warc.gz", "t-00005.warc.gz"] {
            let path = dir.path().join(name);
            if !path.exists() {
                continue;
            }
            WarcReader::open(&path, 1 << 20)
                .expect("test input")
                .for_each(|item| match item {
                    Item::Record(r) => {
                        if r.header("WARC-Type") == Some("response") {
                            assert_eq!(r.block, body);
                            assert!(r.header("X-Injected").is_none());
                            seen.push((name.to_string(), r.offset));
                        }
                    }
                    Item::Damaged { reason, .. } => panic!("{reason}"),
                })
                .expect("test input");
        }
        let expect: Vec<_> = written.iter().map(|x| (x.file.clone(), x.offset)).collect();
        assert_eq!(seen, expect);
        assert_ne!(written[0].record_id, written[1].record_id);
    }
}
