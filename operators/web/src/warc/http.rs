//! HTTP responses inside WARC `response` records: status line, headers,
//! chunked transfer-encoding and gzip/deflate/br content-encoding undone.

use std::borrow::Cow;
use std::io::Read;

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The decoded body is `buf[body_start..]`: a plain body stays where it
    /// was in the record block, uncopied.
    buf: Vec<u8>,
    body_start: usize,
    /// The body is cut: its compressed stream ended early or it decoded
    /// past the size cap. The part that decoded is kept.
    pub truncated: bool,
}

impl Response {
    /// The body, transfer- and content-encodings undone.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start..]
    }

    /// The body, owned.
    pub fn into_body(mut self) -> Vec<u8> {
        self.buf.drain(..self.body_start);
        self.buf
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the HTTP message of a response record, taking the record block: a
/// plain body is the block with its head cut off, not a copy. `max_body`
/// caps the decoded body (a decompression bomb stops there).
pub fn parse_response(block: Vec<u8>, max_body: u64) -> Result<Response, String> {
    let head_end = find(&block, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(&block, b"\n\n").map(|i| (i, i + 2)))
        .ok_or("no end of HTTP headers")?;
    let head = String::from_utf8_lossy(&block[..head_end.0]);
    let mut lines = head.lines();
    let status_line = lines.next().ok_or("empty HTTP response")?;
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/") {
        return Err(format!(
            "not an HTTP status line: `{}`",
            status_line.chars().take(40).collect::<String>()
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad HTTP status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let encoding = header("Content-Encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let dechunked = if chunked {
        dechunk(&block[head_end.1..])
    } else {
        None
    };
    let (buf, body_start) = match dechunked {
        Some(body) => (body, 0),
        None => (block, head_end.1),
    };
    let decoded = decode_body(&buf[body_start..], &encoding, max_body)?;
    let truncated = decoded.truncated;
    let decoded = match decoded.body {
        Cow::Borrowed(_) => None,
        Cow::Owned(body) => Some(body),
    };
    let (buf, body_start) = match decoded {
        Some(body) => (body, 0),
        None => (buf, body_start),
    };
    Ok(Response {
        status,
        headers,
        buf,
        body_start,
        truncated,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Undoes chunked transfer-encoding; `None` if the framing is not chunked
/// after all (archives often store de-chunked bodies with the header kept).
pub fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    loop {
        let line_end = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size {
            // Cut off: keep what there is.
            out.extend_from_slice(raw);
            return Some(out);
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size..];
        raw = raw.strip_prefix(b"\r\n").unwrap_or(raw);
        if raw.is_empty() {
            return Some(out);
        }
    }
}

/// A body with its `Content-Encoding` undone.
pub struct Decoded<'a> {
    pub body: Cow<'a, [u8]>,
    /// The decoded body is shorter than the page: the compressed stream
    /// ended early (a record cut at its size cap) or decoded past `max`.
    /// What did decode is kept.
    pub truncated: bool,
}

/// Reads up to `max` decoded bytes. A stream that breaks after some output
/// (a body cut short in the archive) keeps that output, flagged truncated;
/// one that gives nothing is an error.
fn read_capped<'a>(mut r: impl Read, max: u64, what: &str) -> Result<Decoded<'a>, String> {
    let mut out = Vec::new();
    let read = r.by_ref().take(max.saturating_add(1)).read_to_end(&mut out);
    let mut truncated = match read {
        Ok(_) => false,
        Err(_) if !out.is_empty() => true,
        Err(e) => return Err(format!("{what} content-encoding failed: {e}")),
    };
    if out.len() as u64 > max {
        out.truncate(max as usize);
        truncated = true;
    }
    Ok(Decoded {
        body: Cow::Owned(out),
        truncated,
    })
}

/// Undoes `Content-Encoding` (gzip, deflate, br); a body that is not
/// encoded after all (identity) is handed back borrowed.
pub fn decode_content<'a>(
    body: &'a [u8],
    encoding: &str,
    max: u64,
) -> Result<Cow<'a, [u8]>, String> {
    decode_body(body, encoding, max).map(|d| d.body)
}

/// [`decode_content`], saying whether the body was cut.
pub fn decode_body<'a>(body: &'a [u8], encoding: &str, max: u64) -> Result<Decoded<'a>, String> {
    let plain = |body: &'a [u8]| {
        Ok(Decoded {
            body: Cow::Borrowed(body),
            truncated: false,
        })
    };
    match encoding {
        "" | "identity" | "none" => plain(body),
        "gzip" | "x-gzip" => {
            // Archives sometimes store the decoded body with the header kept.
            if !body.starts_with(&[0x1f, 0x8b]) {
                return plain(body);
            }
            read_capped(flate2::read::MultiGzDecoder::new(body), max, "gzip")
        }
        "deflate" => {
            // Servers send both zlib-wrapped and raw deflate under this name.
            if body.first().is_some_and(|b| b & 0x0f == 8)
                && let Ok(v) = read_capped(flate2::read::ZlibDecoder::new(body), max, "deflate")
            {
                return Ok(v);
            }
            read_capped(flate2::read::DeflateDecoder::new(body), max, "deflate")
        }
        "br" => read_capped(brotli::Decompressor::new(body, 4096), max, "br"),
        other => Err(format!("unsupported content-encoding `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_status_headers_and_chunks() {
        let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = parse_response(block.to_vec(), 1 << 20).expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body(), b"hello world");
    }

    #[test]
    fn undoes_gzip_deflate_and_brotli() {
        let text = b"<html>bonjour</html>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text).expect("gz");
        let gz = gz.finish().expect("gz");
        assert_eq!(
            decode_content(&gz, "gzip", 1 << 20).expect("gzip").as_ref(),
            text
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).expect("zlib");
        assert_eq!(
            decode_content(&z.finish().expect("zlib"), "deflate", 1 << 20)
                .expect("deflate")
                .as_ref(),
            text
        );
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(text).expect("br");
        }
        assert_eq!(
            decode_content(&br, "br", 1 << 20).expect("br").as_ref(),
            text
        );
        assert!(decode_content(b"xx", "zstd-ish", 10).is_err());
        // A bomb stops at the cap.
        let big = vec![b'a'; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&big).expect("gz");
        let bomb = gz.finish().expect("gz");
        let out = decode_body(&bomb, "gzip", 1000).expect("capped");
        assert_eq!((out.body.len(), out.truncated), (1000, true));
    }

    #[test]
    fn a_compressed_body_cut_short_keeps_what_decoded() {
        // A page cut by the archive's record cap: once rejected whole.
        let page: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("<p>line {i}</p>").into_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&page).expect("gz");
        let gz = gz.finish().expect("gz");
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&page).expect("br");
        }
        for (encoding, full) in [("gzip", gz), ("br", br)] {
            let cut = &full[..full.len() / 2];
            let out = decode_body(cut, encoding, 1 << 20).expect(encoding);
            assert!(out.truncated, "{encoding}");
            assert!(
                out.body.len() > page.len() / 4,
                "{encoding}: {}",
                out.body.len()
            );
            assert!(page.starts_with(&out.body), "{encoding}");
            let head = b"HTTP/1.1 200 OK\r\nContent-Encoding: ".to_vec();
            let block = [
                head,
                encoding.as_bytes().to_vec(),
                b"\r\n\r\n".to_vec(),
                cut.to_vec(),
            ]
            .concat();
            let r = parse_response(block, 1 << 20).expect("kept");
            assert!(r.truncated && page.starts_with(r.body()), "{encoding}");
        }
        // Nothing decoded at all is still an error.
        assert!(decode_body(&[0x1f, 0x8b, 8, 0, 0], "gzip", 100).is_err());
    }
}
