//! Character sets of web pages: the HTTP header, then `<meta charset>` or
//! `http-equiv`, then detection; always decoded to UTF-8.

use std::borrow::Cow;

use encoding_rs::Encoding;

/// Where the charset came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharsetSource {
    Header,
    Meta,
    Detected,
}

/// The page as UTF-8 and the charset label as found (or the detected name).
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Borrowed from the page when its bytes already are that UTF-8 (a
    /// valid UTF-8 page, or ASCII in any ASCII-compatible charset): the
    /// caller copies it once, where it keeps it.
    pub text: Cow<'a, str>,
    pub charset: String,
    pub source: CharsetSource,
    /// Bytes that were not valid in the charset (replaced by U+FFFD).
    pub had_errors: bool,
}

/// `charset=` of a Content-Type value.
pub fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']))
    })
}

/// The charset declared by `<meta charset>` or `<meta http-equiv
/// content="...; charset=...">` in the first 4 KiB (the HTML standard's
/// prescan looks at 1,024 bytes; real pages put it later).
pub fn meta_charset(html: &[u8]) -> Option<String> {
    let head = &html[..html.len().min(4096)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut from = 0;
    while let Some(i) = find(&lower[from..], b"<meta") {
        let start = from + i;
        let end = lower[start..]
            .iter()
            .position(|&b| b == b'>')
            .map(|e| start + e)
            .unwrap_or(lower.len());
        let tag = &lower[start..end];
        if let Some(j) = find(tag, b"charset") {
            let rest = &tag[j + 7..];
            let rest = rest.trim_ascii_start();
            if let Some(rest) = rest.strip_prefix(b"=") {
                let rest = rest.trim_ascii_start();
                let rest = rest
                    .strip_prefix(b"\"")
                    .or_else(|| rest.strip_prefix(b"'"))
                    .unwrap_or(rest);
                let value: Vec<u8> = rest
                    .iter()
                    .take_while(|&&b| !matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                    .copied()
                    .collect();
                if !value.is_empty() {
                    return Some(String::from_utf8_lossy(&value).into_owned());
                }
            }
        }
        from = end.max(start + 1);
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes of a page that charset detection looks at.
const DETECT_BYTES: usize = 64 * 1024;

/// The page as UTF-8 if it is valid UTF-8 (SIMD validation: most of the
/// web is UTF-8, and std's validator crawls through non-ASCII text).
fn utf8(body: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(body).ok()
}

/// Decodes an HTML payload to UTF-8, borrowing it where it already is.
pub fn decode_html<'a>(body: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    // A byte-order mark wins over everything (as browsers do).
    if let Some((enc, bom)) = Encoding::for_bom(body) {
        let (text, errors) = enc.decode_without_bom_handling(&body[bom..]);
        return Decoded {
            text,
            charset: enc.name().to_string(),
            source: CharsetSource::Header,
            had_errors: errors,
        };
    }
    let declared = content_type
        .and_then(charset_param)
        .map(|c| (c.to_string(), CharsetSource::Header))
        .or_else(|| meta_charset(body).map(|c| (c, CharsetSource::Meta)));
    if let Some((label, source)) = declared
        && let Some(enc) = Encoding::for_label(label.as_bytes())
    {
        if enc != encoding_rs::UTF_8 {
            let (text, errors) = enc.decode_without_bom_handling(body);
            return Decoded {
                text,
                charset: label,
                source,
                had_errors: errors,
            };
        }
        // A page declared UTF-8 that is not (a common lie) is detected.
        if let Some(text) = utf8(body) {
            return Decoded {
                text: Cow::Borrowed(text),
                charset: label,
                source,
                had_errors: false,
            };
        }
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &body[..body.len().min(DETECT_BYTES)];
    detector.feed(sample, sample.len() == body.len());
    let enc = detector.guess(None, chardetng::Utf8Detection::Allow);
    if enc == encoding_rs::UTF_8
        && let Some(text) = utf8(body)
    {
        return Decoded {
            text: Cow::Borrowed(text),
            charset: enc.name().to_string(),
            source: CharsetSource::Detected,
            had_errors: false,
        };
    }
    let (text, errors) = enc.decode_without_bom_handling(body);
    Decoded {
        text,
        charset: enc.name().to_string(),
        source: CharsetSource::Detected,
        had_errors: errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_meta_then_detection() {
        let latin1 = b"<html><head><meta charset=\"iso-8859-1\"></head><body>Caf\xe9</body></html>";
        let d = decode_html(latin1, Some("text/html"));
        assert_eq!(d.source, CharsetSource::Meta);
        assert!(d.text.contains("Café"));

        let d = decode_html("Größe".as_bytes(), Some("text/html; charset=UTF-8"));
        assert_eq!(
            (d.source, d.text.as_ref()),
            (CharsetSource::Header, "Größe")
        );

        let meta = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\">\xcf\xf0\xe8\xe2\xe5\xf2";
        let d = decode_html(meta, None);
        assert_eq!(d.charset, "windows-1251");
        assert!(d.text.ends_with("Привет"));

        // Undeclared Shift_JIS is detected.
        let (sjis, _, _) = encoding_rs::SHIFT_JIS
            .encode("<p>配送にはどのくらいかかりますか？ご注文は三日以内に届きます。</p>");
        let d = decode_html(&sjis, Some("text/html"));
        assert_eq!(d.source, CharsetSource::Detected);
        assert!(d.text.contains("配送"), "{}", d.text);
    }
}
