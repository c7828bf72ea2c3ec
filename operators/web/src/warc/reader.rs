//! Streaming WARC 1.0/1.1 record reader: uncompressed files, gzip per record
//! (multi-member, as Common Crawl writes them), whole-file gzip, and zstd
//! (per-record frames, with the dictionary of the WARC zstd convention when
//! the file carries one).
//!
//! Damage never stops the reader: a record that cannot be read is reported
//! as [`Item::Damaged`] with its offset and the reason, and reading resumes
//! at the next record (the next gzip member, or the next `WARC/` line).
//! A record cut short by the end of its file is kept, flagged
//! [`Truncation::Disconnect`] (as warcio and FastWARC keep it). Memory is
//! bounded by `max_record_bytes` plus [`MAX_HEADER_BYTES`] whatever the
//! file holds, and time is linear in the file size on any input.

use dflow_engine::storage::SourceFile;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::gzip::{Inflater, Member};

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// A zstd skippable frame holding a dictionary (the WARC zstd convention).
const ZSTD_DICT_MAGIC: [u8; 4] = [0x5d, 0x2a, 0x4d, 0x18];
/// Longest header line accepted before a record is declared damaged.
const MAX_LINE: usize = 64 * 1024;
/// Most bytes of WARC headers one record may have (Common Crawl's are
/// under 2 KiB): a record of endless `a: b` lines is damaged, not read.
pub const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Largest zstd dictionary accepted at the start of a `.warc.zst` file.
const MAX_ZSTD_DICT: u32 = 8 << 20;

/// A WARC record: its headers and (up to `max_record_bytes` of) its block.
#[derive(Debug)]
pub struct Record {
    /// Compressed offset of the gzip member holding the record (gzip files)
    /// or the byte offset of the record (uncompressed files).
    pub offset: u64,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub block: Vec<u8>,
    /// Why the block is shorter than the record says, if it is.
    pub truncated: Option<Truncation>,
    /// The headers held bytes that are not UTF-8 (replaced by U+FFFD).
    pub invalid_header_utf8: bool,
}

/// Why a record's block is incomplete, named as the `WARC-Truncated`
/// header names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// Longer than `max_record_bytes`: cut there, the rest skipped.
    Length,
    /// The file ended (or its compression broke) inside the block: what
    /// was read is kept.
    Disconnect,
}

impl Record {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub enum Item {
    Record(Record),
    /// A record that could not be read; `warc_type` and `url` are known
    /// when its headers were read before the damage.
    Damaged {
        offset: u64,
        reason: String,
        warc_type: Option<String>,
        url: Option<String>,
    },
}

/// Why a record could not be read, and whether the stream can go on.
struct Damage {
    reason: String,
    warc_type: Option<String>,
    url: Option<String>,
    /// The underlying byte stream failed (gzip error, I/O): resynchronise at
    /// the container level, not by scanning lines.
    stream_broken: bool,
}

impl Damage {
    fn record(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            warc_type: None,
            url: None,
            stream_broken: false,
        }
    }

    fn io(context: &str, e: io::Error) -> Self {
        let what = match e.kind() {
            io::ErrorKind::UnexpectedEof => "truncated".to_string(),
            _ => e.to_string(),
        };
        Self {
            reason: format!("{context}: {what}"),
            warc_type: None,
            url: None,
            stream_broken: true,
        }
    }
}

/// Counts bytes consumed from a `BufRead`.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt)
    }
}

/// Parses records from one decompressed byte stream.
struct RecordParser {
    max_record_bytes: u64,
    /// A `WARC/` line found while resynchronising, to start the next record.
    pending_version: Option<String>,
}

impl RecordParser {
    /// Reads one line (without the line ending); `None` at end of stream.
    fn line<R: BufRead>(r: &mut R) -> Result<Option<Vec<u8>>, Damage> {
        let mut buf = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Damage::io("reading a header line", e))?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE {
            return Err(Damage::record("header line longer than 64 KiB"));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(Some(buf))
    }

    /// The next record; `Ok(None)` at a clean end of stream.
    fn next<R: BufRead>(&mut self, r: &mut R, offset: u64) -> Result<Option<Record>, Damage> {
        let version = match self.pending_version.take() {
            Some(v) => v,
            None => loop {
                match Self::line(r)? {
                    None => return Ok(None),
                    Some(l) if l.is_empty() => continue,
                    Some(l) => {
                        let text = String::from_utf8_lossy(&l).into_owned();
                        if !text.starts_with("WARC/") {
                            return Err(Damage::record(format!(
                                "bad WARC header: expected `WARC/1.x`, found `{}`",
                                text.chars().take(40).collect::<String>()
                            )));
                        }
                        break text;
                    }
                }
            },
        };
        let mut headers = Vec::new();
        let mut invalid_utf8 = false;
        let mut header_bytes = 0;
        loop {
            let Some(l) = Self::line(r)? else {
                return Err(Damage {
                    reason: "record cut off in its headers".into(),
                    warc_type: None,
                    url: None,
                    stream_broken: true,
                });
            };
            if l.is_empty() {
                break;
            }
            header_bytes += l.len() + 2;
            if header_bytes > MAX_HEADER_BYTES {
                return Err(Damage::record(format!(
                    "WARC headers longer than {} KiB",
                    MAX_HEADER_BYTES / 1024
                )));
            }
            let text = match String::from_utf8(l) {
                Ok(t) => t,
                Err(e) => {
                    invalid_utf8 = true;
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            match text.split_once(':') {
                Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
                None if text.starts_with([' ', '\t']) => {
                    // Folded continuation line (WARC 1.0 allows it).
                    if let Some(last) = headers.last_mut() {
                        last.1.push(' ');
                        last.1.push_str(text.trim());
                    }
                }
                None => {
                    return Err(Damage::record(format!(
                        "bad WARC header line `{}`",
                        text.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        self.read_block(r, offset, version, headers, invalid_utf8)
    }

    /// `damage`, naming the record its headers describe.
    fn damage_of(headers: &[(String, String)], mut damage: Damage) -> Damage {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        damage.warc_type = header("WARC-Type").map(str::to_string);
        damage.url = header("WARC-Target-URI").map(|u| u.trim_matches(['<', '>']).to_string());
        damage
    }

    fn read_block<R: BufRead>(
        &mut self,
        r: &mut R,
        offset: u64,
        version: String,
        headers: Vec<(String, String)>,
        invalid_utf8: bool,
    ) -> Result<Option<Record>, Damage> {
        let damaged = |d| Err(Self::damage_of(&headers, d));
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.as_str());
        let Some(length) = length else {
            return damaged(Damage::record("WARC record without Content-Length"));
        };
        let Ok(length) = length.parse::<u64>() else {
            return damaged(Damage::record(format!("invalid Content-Length `{length}`")));
        };
        let keep = length.min(self.max_record_bytes);
        // The declared length, capped: read in place (a gzip member
        // inflates straight into it).
        let mut block = vec![0u8; keep as usize];
        let mut got = 0;
        let mut broken = false;
        while got < block.len() {
            match r.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        let truncated = if broken || (got as u64) < keep {
            // Cut off by the end of the file (or broken compression): what
            // was read is the record, as warcio and FastWARC return it. The
            // stream cannot go on.
            block.truncate(got);
            Some(Truncation::Disconnect)
        } else if length > keep {
            let skipped = io::copy(&mut r.by_ref().take(length - keep), &mut io::sink());
            Some(match skipped {
                Ok(n) if n == length - keep => Truncation::Length,
                _ => Truncation::Disconnect,
            })
        } else {
            None
        };
        if truncated != Some(Truncation::Disconnect) {
            // A record ends with CRLF CRLF; anything else means
            // Content-Length was wrong.
            let mut tail = [0u8; 4];
            let mut filled = 0;
            while filled < 4 {
                let n = match r.read(&mut tail[filled..]) {
                    Ok(n) => n,
                    Err(e) => return damaged(Damage::io("reading the record end", e)),
                };
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let tail = &tail[..filled];
            let ok_end =
                tail == b"\r\n\r\n" || tail.is_empty() || tail == b"\n\n" || tail == b"\r\n";
            if !ok_end {
                return damaged(Damage::record(format!(
                    "wrong Content-Length {length}: the record does not end where it says"
                )));
            }
        }
        Ok(Some(Record {
            offset,
            version,
            headers,
            block,
            truncated,
            invalid_header_utf8: invalid_utf8,
        }))
    }

    /// Skips to the next line that starts a record.
    fn resync<R: BufRead>(&mut self, r: &mut R) -> Result<(), Damage> {
        loop {
            let mut buf = Vec::new();
            let n = r
                .by_ref()
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut buf)
                .map_err(|e| Damage::io("resynchronising", e))?;
            if n == 0 {
                return Ok(());
            }
            if buf.starts_with(b"WARC/1.") {
                let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                self.pending_version = Some(text);
                return Ok(());
            }
        }
    }
}

/// Skips the blank lines between records, so that an offset taken next is
/// the record's own. A read error is left for the record parser to report.
fn skip_blank_lines<R: BufRead>(r: &mut R) {
    while let Ok(buf) = r.fill_buf() {
        match buf.first() {
            Some(b'\r' | b'\n') => r.consume(1),
            _ => break,
        }
    }
}

/// How a file's bytes are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Plain,
    Gzip,
    Zstd,
}

/// Iterates over the records of one WARC file.
pub struct WarcReader {
    file: BufReader<SourceFile>,
    framing: Framing,
    parser: RecordParser,
    done: bool,
    /// Gzip files: one inflate state for every member.
    inflater: Inflater,
    /// Gzip files: compressed bytes that resynchronisation may still read
    /// a second time. A broken member makes the reader look for the next
    /// member from one byte after the broken one's start, which rereads
    /// what the broken member consumed; crafted input could make that
    /// quadratic. Once this allowance (the file's size) is spent, reading
    /// resumes where the broken member stopped instead.
    reread_allowance: u64,
    pub damaged: usize,
}

impl WarcReader {
    pub fn open(path: &Path, max_record_bytes: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Self::new(SourceFile::Local(file, size), max_record_bytes)
    }

    /// Reads `file`, local or an object in a store.
    pub fn new(file: SourceFile, max_record_bytes: u64) -> io::Result<Self> {
        let size = file.size();
        let mut file = BufReader::with_capacity(256 * 1024, file);
        let head = file.fill_buf()?;
        let framing = if head.starts_with(&GZIP_MAGIC[..2]) {
            Framing::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) || head.starts_with(&ZSTD_DICT_MAGIC) {
            Framing::Zstd
        } else {
            Framing::Plain
        };
        Ok(Self {
            file,
            framing,
            parser: RecordParser {
                max_record_bytes,
                pending_version: None,
            },
            done: false,
            inflater: Inflater::default(),
            reread_allowance: size,
            damaged: 0,
        })
    }

    /// Reads every record, calling `f` for each record or damage report.
    ///
    /// The reading loop behind it is not generic: it is compiled once, in
    /// this (optimised) crate, whatever crate calls it. Generic over `f`, it
    /// would be compiled at the caller's opt-level, and a benchmark built at
    /// opt-level 0 read at half speed.
    pub fn for_each(mut self, mut f: impl FnMut(Item)) -> io::Result<()> {
        self.read_all(&mut f)
    }

    fn read_all(&mut self, f: &mut dyn FnMut(Item)) -> io::Result<()> {
        match self.framing {
            Framing::Gzip => self.read_gzip(f),
            Framing::Plain => {
                let (parser, damaged) = (&mut self.parser, &mut self.damaged);
                read_stream(&mut self.file, parser, damaged, f);
                Ok(())
            }
            Framing::Zstd => self.read_zstd(f),
        }
    }

    /// A `.warc.zst` file: zstd frames (one per record, or one for the
    /// file), after an optional skippable frame holding their dictionary.
    /// Offsets are positions in the decompressed stream.
    fn read_zstd(&mut self, f: &mut dyn FnMut(Item)) -> io::Result<()> {
        let mut dictionary = Vec::new();
        if self.file.fill_buf()?.starts_with(&ZSTD_DICT_MAGIC) {
            let mut head = [0u8; 8];
            self.file.read_exact(&mut head)?;
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if len > MAX_ZSTD_DICT {
                self.damaged += 1;
                f(Item::Damaged {
                    offset: 0,
                    reason: format!("zstd dictionary of {len} bytes (at most {MAX_ZSTD_DICT})"),
                    warc_type: None,
                    url: None,
                });
                return Ok(());
            }
            dictionary = vec![0; len as usize];
            self.file.read_exact(&mut dictionary)?;
            // The dictionary may itself be zstd-compressed.
            if dictionary.starts_with(&ZSTD_MAGIC) {
                dictionary = zstd::stream::decode_all(&dictionary[..]).map_err(|e| {
                    io::Error::new(e.kind(), format!("decompressing the zstd dictionary: {e}"))
                })?;
            }
        }
        let decoder = zstd::stream::read::Decoder::with_dictionary(&mut self.file, &dictionary)?;
        let mut stream = BufReader::with_capacity(256 * 1024, decoder);
        let (parser, damaged) = (&mut self.parser, &mut self.damaged);
        read_stream(&mut stream, parser, damaged, f);
        Ok(())
    }

    fn read_gzip(&mut self, f: &mut dyn FnMut(Item)) -> io::Result<()> {
        while !self.done {
            let member_start = self.file.stream_position()?;
            if self.file.fill_buf()?.is_empty() {
                break;
            }
            if !self.file.fill_buf()?.starts_with(&GZIP_MAGIC[..2]) {
                self.damaged += 1;
                f(Item::Damaged {
                    offset: member_start,
                    reason: "garbage between gzip members".into(),
                    warc_type: None,
                    url: None,
                });
                self.skip_to_next_member(member_start + 1)?;
                continue;
            }
            let broken = {
                let mut r = Counting {
                    inner: Member::new(&mut self.file, &mut self.inflater),
                    pos: 0,
                };
                let mut broken = false;
                let mut first = true;
                loop {
                    skip_blank_lines(&mut r);
                    // The member offset for its first record (Common Crawl
                    // style); later records of a multi-record member get
                    // their uncompressed offset within it added.
                    let offset = if first {
                        member_start
                    } else {
                        member_start + r.pos
                    };
                    first = false;
                    match self.parser.next(&mut r, offset) {
                        Ok(Some(rec)) => {
                            let cut = rec.truncated == Some(Truncation::Disconnect);
                            f(Item::Record(rec));
                            if cut {
                                broken = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(d) => {
                            self.damaged += 1;
                            f(Item::Damaged {
                                offset,
                                reason: d.reason,
                                warc_type: d.warc_type,
                                url: d.url,
                            });
                            if d.stream_broken {
                                broken = true;
                                break;
                            }
                            if self.parser.resync(&mut r).is_err() {
                                broken = true;
                                break;
                            }
                        }
                    }
                }
                broken
            };
            self.parser.pending_version = None;
            if broken {
                // Drop whatever the decoder left mid-member and look for the
                // next member after this one's start: the decoder may have
                // read into the next member before it failed.
                let stopped = self.file.stream_position()?;
                let reread = stopped.saturating_sub(member_start + 1);
                let from = if reread <= self.reread_allowance {
                    self.reread_allowance -= reread;
                    member_start + 1
                } else {
                    stopped.max(member_start + 1)
                };
                self.skip_to_next_member(from)?;
            }
        }
        Ok(())
    }

    /// Positions the file at the next gzip magic at or after `from`.
    fn skip_to_next_member(&mut self, from: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(from))?;
        loop {
            let buf = self.file.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                return Ok(());
            }
            if let Some(i) = buf.windows(3).position(|w| w == GZIP_MAGIC) {
                self.file.consume(i);
                return Ok(());
            }
            // Keep the last two bytes: the magic may straddle buffers.
            let n = buf.len().saturating_sub(2).max(1);
            self.file.consume(n);
        }
    }
}

/// Reads the records of one uncompressed byte stream (a plain file, or a
/// decompressed zstd one) until its end or until it breaks.
fn read_stream<R: BufRead>(
    src: &mut R,
    parser: &mut RecordParser,
    damaged: &mut usize,
    f: &mut dyn FnMut(Item),
) {
    let mut r = Counting { inner: src, pos: 0 };
    loop {
        skip_blank_lines(&mut r);
        let offset = r.pos;
        match parser.next(&mut r, offset) {
            Ok(Some(rec)) => {
                let cut = rec.truncated == Some(Truncation::Disconnect);
                f(Item::Record(rec));
                if cut {
                    return;
                }
            }
            Ok(None) => return,
            Err(d) => {
                *damaged += 1;
                f(Item::Damaged {
                    offset,
                    reason: d.reason,
                    warc_type: d.warc_type,
                    url: d.url,
                });
                if d.stream_broken || parser.resync(&mut r).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(kind: &str, body: &str) -> Vec<u8> {
        format!(
            "WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Target-URI: http://a.example/\r\nContent-Length: {}\r\n\r\n{body}\r\n\r\n",
            body.len()
        )
        .into_bytes()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    fn read(bytes: &[u8]) -> (Vec<Record>, Vec<(u64, String)>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.warc");
        std::fs::write(&p, bytes).expect("write");
        let mut recs = Vec::new();
        let mut bad = Vec::new();
        WarcReader::open(&p, 1 << 20)
            .expect("open")
            .for_each(|i| match i {
                Item::Record(r) => recs.push(r),
                Item::Damaged { offset, reason, .. } => bad.push((offset, reason)),
            })
            .expect("read");
        (recs, bad)
    }

    #[test]
    fn reads_plain_member_and_whole_file_gzip() {
        let mut plain = record("warcinfo", "x");
        plain.extend(record("response", "HTTP/1.1 200 OK\r\n\r\nhi"));
        let (recs, bad) = read(&plain);
        assert_eq!((recs.len(), bad.len()), (2, 0));
        assert_eq!(recs[1].header("warc-type"), Some("response"));
        assert_eq!(recs[1].offset, record("warcinfo", "x").len() as u64);

        let mut members = gz(&record("warcinfo", "x"));
        let second = members.len() as u64;
        members.extend(gz(&record("response", "abc")));
        let (recs, bad) = read(&members);
        assert_eq!((recs.len(), bad.len()), (2, 0));
        assert_eq!(recs[1].offset, second);

        let (recs, bad) = read(&gz(&plain));
        assert_eq!((recs.len(), bad.len()), (2, 0));
    }

    #[test]
    fn damage_is_reported_and_skipped() {
        // Truncated member between two good ones.
        let mut bytes = gz(&record("response", "one"));
        let broken = gz(&record("response", "two two two two"));
        bytes.extend_from_slice(&broken[..broken.len() / 2]);
        bytes.extend(b"garbage!");
        bytes.extend(gz(&record("response", "three")));
        let (recs, bad) = read(&bytes);
        assert_eq!(recs.len(), 2, "{bad:?}");
        assert!(!bad.is_empty());

        // Wrong Content-Length in a plain file: the next record still reads.
        let mut plain =
            b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n".to_vec();
        plain.extend(record("response", "ok"));
        let (recs, bad) = read(&plain);
        assert_eq!(recs.len(), 1);
        assert!(bad[0].1.contains("wrong Content-Length"), "{bad:?}");
    }

    #[test]
    fn a_record_cut_off_by_the_end_of_its_file_is_kept_flagged() {
        // A body that compresses little, so that a cut in the gzip member
        // falls inside it.
        let body: String = (0..4000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        let full = record("response", &body);
        let body_at = full.len() - body.len() - 4;
        let member = gz(&full);
        for bytes in [
            full[..full.len() - 10].to_vec(),
            member[..member.len() * 3 / 4].to_vec(),
        ] {
            let (recs, bad) = read(&bytes);
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].truncated, Some(Truncation::Disconnect));
            assert_eq!(recs[0].header("WARC-Target-URI"), Some("http://a.example/"));
            assert!(full[body_at..].starts_with(&recs[0].block));
        }
    }

    #[test]
    fn damage_after_the_headers_names_the_url() {
        let bytes =
            b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: <http://b.example/x>\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.warc");
        std::fs::write(&p, bytes).expect("write");
        let mut urls = Vec::new();
        WarcReader::open(&p, 1 << 20)
            .expect("open")
            .for_each(|i| {
                if let Item::Damaged { url, .. } = i {
                    urls.push(url)
                }
            })
            .expect("read");
        assert_eq!(urls, [Some("http://b.example/x".to_string())]);
    }

    #[test]
    fn endless_headers_are_damage_with_bounded_memory() {
        // Once: every `a:b` line kept, without limit.
        let mut bomb = b"WARC/1.0\r\nWARC-Type: response\r\n".to_vec();
        for _ in 0..200_000 {
            bomb.extend_from_slice(b"a:b\r\n");
        }
        // Folded continuation lines grow one header the same way.
        bomb.extend_from_slice(b"X: y\r\n");
        for _ in 0..200_000 {
            bomb.extend_from_slice(b" more\r\n");
        }
        bomb.extend_from_slice(b"Content-Length: 2\r\n\r\nok\r\n\r\n");
        bomb.extend(record("response", "next"));
        for bytes in [bomb.clone(), gz(&bomb)] {
            let (recs, bad) = read(&bytes);
            assert!(bad[0].1.contains("WARC headers longer than"), "{bad:?}");
            // The reader finds the next record after the damage.
            assert_eq!(recs.len(), 1, "{bad:?}");
            assert_eq!(recs[0].block, b"next");
        }
    }

    #[test]
    fn resynchronising_after_broken_members_is_linear() {
        // Many gzip headers, each starting a stored deflate block that runs
        // to one shared, long tail ending in a bad CRC: every candidate
        // member reads the whole tail before it fails. Retrying each one
        // (as the reader once did) reads candidates x tail bytes.
        let candidates = 2000usize;
        let header_len = 15;
        let end = candidates * header_len;
        let mut file = Vec::new();
        for i in 0..candidates {
            let len = (end - (i * header_len + header_len)) as u16;
            file.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0]);
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&(!len).to_le_bytes());
        }
        let block = vec![b'x'; 65_535];
        for _ in 0..64 {
            file.push(0);
            file.extend_from_slice(&65_535u16.to_le_bytes());
            file.extend_from_slice(&0u16.to_le_bytes());
            file.extend_from_slice(&block);
        }
        file.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        file.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
        let (recs, bad) = read(&file);
        assert!(recs.is_empty());
        // Each candidate tried is one damage report; a linear reader gives
        // up rereading after about the file's size.
        assert!(
            !bad.is_empty() && bad.len() < 10,
            "{} candidates tried",
            bad.len()
        );
    }

    #[test]
    fn zstd_files_with_and_without_a_dictionary() {
        let mut plain = record("warcinfo", "x");
        plain.extend(record("response", "HTTP/1.1 200 OK\r\n\r\nhi"));
        // One frame per record, as the WARC zstd convention writes them.
        let frames = |dict: &[u8]| -> Vec<u8> {
            let mut out = Vec::new();
            for r in [
                record("warcinfo", "x"),
                record("response", "HTTP/1.1 200 OK\r\n\r\nhi"),
            ] {
                let mut e = zstd::stream::write::Encoder::with_dictionary(Vec::new(), 3, dict)
                    .expect("encoder");
                e.write_all(&r).expect("zstd");
                out.extend(e.finish().expect("zstd"));
            }
            out
        };
        let (recs, bad) = read(&frames(&[]));
        assert_eq!((recs.len(), bad.len()), (2, 0), "{bad:?}");
        assert_eq!(recs[1].header("warc-type"), Some("response"));
        assert_eq!(recs[1].offset, record("warcinfo", "x").len() as u64);
        // A raw-content dictionary in a skippable frame first.
        let dict = b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Target-URI: http://".repeat(4);
        let mut with_dict = ZSTD_DICT_MAGIC.to_vec();
        with_dict.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        with_dict.extend_from_slice(&dict);
        with_dict.extend(frames(&dict));
        let (recs, bad) = read(&with_dict);
        assert_eq!((recs.len(), bad.len()), (2, 0), "{bad:?}");
        assert_eq!(recs[1].block, b"HTTP/1.1 200 OK\r\n\r\nhi");
    }

    #[test]
    fn oversized_records_are_cut_not_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.warc");
        let body = "x".repeat(10_000);
        let mut bytes = record("response", &body);
        bytes.extend(record("response", "next"));
        std::fs::write(&p, bytes).expect("write");
        let mut recs = Vec::new();
        WarcReader::open(&p, 100)
            .expect("open")
            .for_each(|i| {
                if let Item::Record(r) = i {
                    recs.push(r)
                }
            })
            .expect("read");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].truncated, Some(Truncation::Length));
        assert_eq!(recs[0].block.len(), 100);
        assert_eq!(recs[1].truncated, None);
    }
}
