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
    let decoded = match decode_content(&buf[body_start..], &encoding, max_body)? {
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

fn read_capped<'a>(mut r: impl Read, max: u64, what: &str) -> Result<Cow<'a, [u8]>, String> {
    let mut out = Vec::new();
    r.by_ref()
        .take(max)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what} content-encoding failed: {e}"))?;
    Ok(Cow::Owned(out))
}

/// Undoes `Content-Encoding` (gzip, deflate, br); a body that is not
/// encoded after all (identity) is handed back borrowed.
pub fn decode_content<'a>(
    body: &'a [u8],
    encoding: &str,
    max: u64,
) -> Result<Cow<'a, [u8]>, String> {
    match encoding {
        "" | "identity" | "none" => Ok(Cow::Borrowed(body)),
        "gzip" | "x-gzip" => {
            // Archives sometimes store the decoded body with the header kept.
            if !body.starts_with(&[0x1f, 0x8b]) {
                return Ok(Cow::Borrowed(body));
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
        let out = decode_content(&bomb, "gzip", 1000).expect("capped");
        assert_eq!(out.len(), 1000);
    }
}
