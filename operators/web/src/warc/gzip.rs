//! One gzip member at a time, with the inflate state and the output buffer
//! reused from member to member.
//!
//! Common Crawl's WARC files hold one record per gzip member: a fresh
//! decoder per member allocates and zeroes a 32 KiB window and its tables
//! tens of thousands of times per file. [`Inflater`] keeps one raw-deflate
//! state and resets it; [`Member`] parses the gzip header (RFC 1952),
//! inflates, and checks the CRC-32 and length in the trailer.

use std::io::{self, BufRead, Read};

use flate2::{Crc, Decompress, FlushDecompress, Status};

const OUT_BUF: usize = 64 * 1024;
/// Longest gzip FNAME or FCOMMENT field read.
const MAX_NAME_BYTES: u64 = 64 * 1024;

/// The reusable state: a raw-deflate decoder and its output buffer.
pub struct Inflater {
    z: Decompress,
    buf: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Self {
            z: Decompress::new(false),
            buf: vec![0; OUT_BUF],
        }
    }
}

/// The decompressed bytes of the member starting at `src`'s position;
/// reading stops at its end (the next member is left in `src`).
pub struct Member<'a, R: BufRead> {
    src: &'a mut R,
    inf: &'a mut Inflater,
    start: usize,
    end: usize,
    crc: Crc,
    header_read: bool,
    done: bool,
}

impl<'a, R: BufRead> Member<'a, R> {
    pub fn new(src: &'a mut R, inf: &'a mut Inflater) -> Self {
        inf.z.reset(false);
        Self {
            src,
            inf,
            start: 0,
            end: 0,
            crc: Crc::new(),
            header_read: false,
            done: false,
        }
    }

    fn read_header(&mut self) -> io::Result<()> {
        let mut fixed = [0u8; 10];
        self.src.read_exact(&mut fixed)?;
        if fixed[0] != 0x1f || fixed[1] != 0x8b {
            return Err(bad("not a gzip member"));
        }
        if fixed[2] != 8 {
            return Err(bad("gzip member not deflate-compressed"));
        }
        let flags = fixed[3];
        if flags & 0xe0 != 0 {
            return Err(bad("reserved gzip header flags set"));
        }
        if flags & 0x04 != 0 {
            let mut len = [0u8; 2];
            self.src.read_exact(&mut len)?;
            let mut extra = self.src.by_ref().take(u64::from(u16::from_le_bytes(len)));
            io::copy(&mut extra, &mut io::sink())?;
        }
        for flag in [0x08u8, 0x10] {
            // File name, comment: zero-terminated, and capped: a member
            // whose name never ends is damage, not a reason to read the
            // rest of the file into memory.
            if flags & flag != 0 {
                let mut skipped = Vec::new();
                let mut field = self.src.by_ref().take(MAX_NAME_BYTES);
                field.read_until(0, &mut skipped)?;
                if skipped.last() != Some(&0) {
                    return Err(if skipped.len() as u64 >= MAX_NAME_BYTES {
                        bad("gzip file name or comment longer than 64 KiB")
                    } else {
                        io::ErrorKind::UnexpectedEof.into()
                    });
                }
            }
        }
        if flags & 0x02 != 0 {
            let mut hcrc = [0u8; 2];
            self.src.read_exact(&mut hcrc)?;
        }
        self.header_read = true;
        Ok(())
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        self.src.read_exact(&mut trailer)?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != self.crc.sum() || len != self.crc.amount() {
            return Err(bad("gzip member CRC or length mismatch"));
        }
        Ok(())
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One inflate call from `src` into `out`, the CRC updated: the bytes
/// produced, and whether the deflate stream ended.
fn inflate_step<R: BufRead>(
    src: &mut R,
    z: &mut Decompress,
    crc: &mut Crc,
    out: &mut [u8],
) -> io::Result<(usize, bool)> {
    let input = src.fill_buf()?;
    if input.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (in0, out0) = (z.total_in(), z.total_out());
    let status = z
        .decompress(input, out, FlushDecompress::None)
        .map_err(|e| bad(&format!("corrupt deflate stream: {e}")))?;
    let consumed = (z.total_in() - in0) as usize;
    let produced = (z.total_out() - out0) as usize;
    src.consume(consumed);
    crc.update(&out[..produced]);
    match status {
        Status::StreamEnd => Ok((produced, true)),
        Status::Ok | Status::BufError if consumed == 0 && produced == 0 => {
            Err(bad("corrupt deflate stream: no progress"))
        }
        _ => Ok((produced, false)),
    }
}

impl<R: BufRead> BufRead for Member<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if !self.header_read {
            self.read_header()?;
        }
        while self.start == self.end && !self.done {
            let (produced, end) =
                inflate_step(self.src, &mut self.inf.z, &mut self.crc, &mut self.inf.buf)?;
            self.start = 0;
            self.end = produced;
            if end {
                self.done = true;
                self.read_trailer()?;
            }
        }
        Ok(&self.inf.buf[self.start..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.start = (self.start + amt).min(self.end);
    }
}

impl<R: BufRead> Member<'_, R> {
    /// Inflates straight into `out` (the buffer is empty): a record block
    /// is written once, not inflated into the buffer and copied out.
    fn inflate_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let (produced, end) = inflate_step(self.src, &mut self.inf.z, &mut self.crc, out)?;
            if end {
                self.done = true;
                self.read_trailer()?;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

impl<R: BufRead> Read for Member<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.header_read && self.start == self.end && !self.done && out.len() >= OUT_BUF / 4 {
            return self.inflate_into(out);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8], name: bool) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if name {
            b = b.filename("x.warc").comment("c").extra(vec![1, 2, 3]);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn members_one_after_another_with_one_state() {
        let a: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut file = gz(&a, true);
        file.extend(gz(b"second member", false));
        let mut src = io::BufReader::with_capacity(1000, &file[..]);
        let mut inf = Inflater::default();
        let mut out = Vec::new();
        Member::new(&mut src, &mut inf)
            .read_to_end(&mut out)
            .expect("first");
        assert_eq!(out, a);
        out.clear();
        Member::new(&mut src, &mut inf)
            .read_to_end(&mut out)
            .expect("second");
        assert_eq!(out, b"second member");
        assert!(src.fill_buf().expect("eof").is_empty());
    }

    #[test]
    fn large_reads_inflate_in_place_and_check_the_trailer() {
        let a: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let file = gz(&a, false);
        // Reads of 100 KB bypass the internal buffer (inflate_into).
        let read_all = |file: &[u8]| -> io::Result<Vec<u8>> {
            let mut src = io::BufReader::with_capacity(4096, file);
            let mut inf = Inflater::default();
            let mut m = Member::new(&mut src, &mut inf);
            let mut out = Vec::new();
            let mut chunk = vec![0u8; 100_000];
            // The first read parses the header through the buffer.
            loop {
                let n = m.read(&mut chunk)?;
                if n == 0 {
                    return Ok(out);
                }
                out.extend_from_slice(&chunk[..n]);
            }
        };
        assert_eq!(read_all(&file).expect("inflates"), a);
        let mut bad_crc = file.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let e = read_all(&bad_crc).expect_err("CRC checked on the direct path");
        assert!(e.to_string().contains("CRC"), "{e}");
    }

    #[test]
    fn an_endless_file_name_is_damage_not_a_whole_file_read() {
        let mut member = vec![0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 0xff];
        member.extend(std::iter::repeat_n(b'n', 1 << 20));
        let mut src = io::BufReader::with_capacity(4096, &member[..]);
        let mut inf = Inflater::default();
        let e = Member::new(&mut src, &mut inf)
            .read_to_end(&mut Vec::new())
            .expect_err("capped");
        assert!(e.to_string().contains("64 KiB"), "{e}");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let good = gz(b"hello world, hello world", false);
        let mut inf = Inflater::default();
        // Cut in the trailer, cut in the data, a flipped data byte.
        let cut = &good[..good.len() - 3];
        let mut src = cut;
        let e = Member::new(&mut src, &mut inf)
            .read_to_end(&mut Vec::new())
            .expect_err("cut trailer");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut src = &good[..12];
        assert!(
            Member::new(&mut src, &mut inf)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
        let mut flipped = good.clone();
        flipped[12] ^= 0x55;
        let mut src = &flipped[..];
        assert!(
            Member::new(&mut src, &mut inf)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
        let mut src = &b"PK\x03\x04 not gzip"[..];
        assert!(
            Member::new(&mut src, &mut inf)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }
}
