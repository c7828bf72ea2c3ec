//! A single-pass scanner for pages that can only carry JSON-LD (no
//! `itemscope`, no `typeof`): it finds the `<title>`, the `<meta>`
//! description and keywords, the root's `lang` and the text of every
//! `application/ld+json` script without building a DOM.
//!
//! It follows the HTML tokenizer where that matters here: comments are
//! skipped, attribute values may be quoted with `"` or `'` and hold `>`,
//! tag and attribute names are case-insensitive, `<script>`, `<style>`,
//! `<textarea>` and `<title>` contents run to their own end tag, and
//! character references in the title and attribute values are decoded. A
//! test checks that it gives the same result as the DOM path on every real
//! page.

use std::collections::HashSet;

use memchr::{memchr, memmem};

use super::PageMeta;
use super::text::normalise_plain;

/// What the scanner found.
#[derive(Debug, Default)]
pub struct Scan {
    pub meta: PageMeta,
    pub scripts: Vec<String>,
}

/// One start tag: its lower-cased name and attributes (names lower-cased,
/// values raw), and where it ends.
struct Tag<'a> {
    name: String,
    attrs: Vec<(String, &'a str)>,
    /// Attributes written in the tag, duplicates included.
    written: usize,
    end: usize,
}

/// Past this many attributes in a tag, duplicates are found with a set
/// rather than by looking through the earlier ones (linear, whatever a
/// page puts in one tag).
const SMALL_TAG: usize = 16;

impl Tag<'_> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Parses the start tag whose `<` is at `at`, if one starts there.
fn start_tag(html: &str, at: usize) -> Option<Tag<'_>> {
    let b = html.as_bytes();
    let mut i = at + 1;
    if !b.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = html[at + 1..i].to_ascii_lowercase();
    let mut attrs: Vec<(String, &str)> = Vec::new();
    let mut names: Option<HashSet<String>> = None;
    let mut written = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return Some(Tag {
                name,
                attrs,
                written,
                end: b.len(),
            });
        }
        if b[i] == b'>' {
            return Some(Tag {
                name,
                attrs,
                written,
                end: i + 1,
            });
        }
        let n0 = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'>' | b'=' | b'/') {
            i += 1;
        }
        let attr = html[n0..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = "";
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let v0 = i + 1;
                    let close = memchr(q, &b[v0..]).map_or(b.len(), |p| v0 + p);
                    value = &html[v0..close];
                    i = (close + 1).min(b.len());
                }
                _ => {
                    let v0 = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = &html[v0..i];
                }
            }
        }
        if attr.is_empty() {
            continue;
        }
        written += 1;
        let duplicate = match &mut names {
            Some(set) => !set.insert(attr.clone()),
            None => {
                let duplicate = attrs.iter().any(|(n, _)| *n == attr);
                if attrs.len() >= SMALL_TAG {
                    let mut set: HashSet<String> = attrs.iter().map(|(n, _)| n.clone()).collect();
                    set.insert(attr.clone());
                    names = Some(set);
                }
                duplicate
            }
        };
        if !duplicate {
            attrs.push((attr, value));
        }
    }
}

/// The position of the end tag `</name` at or after `from`
/// (case-insensitive), or the end of the text.
fn end_tag(html: &str, from: usize, name: &str) -> usize {
    let b = html.as_bytes();
    let finder = memmem::Finder::new(b"</");
    let mut at = from;
    while let Some(p) = finder.find(&b[at..]) {
        let s = at + p + 2;
        if b.len() >= s + name.len()
            && b[s..s + name.len()].eq_ignore_ascii_case(name.as_bytes())
            && b.get(s + name.len())
                .is_none_or(|c| c.is_ascii_whitespace() || matches!(c, b'>' | b'/'))
        {
            return at + p;
        }
        at = s;
    }
    b.len()
}

/// Decodes character references, if there are any, and normalises
/// whitespace as the DOM path does.
fn decode(s: &str) -> String {
    if s.contains('&') {
        // The HTML parser's decoder, on a fragment that is only text.
        let frag = scraper::Html::parse_fragment(&s.replace('<', "&lt;"));
        normalise_plain(&frag.root_element().text().collect::<String>())
    } else {
        normalise_plain(s)
    }
}

/// Most work html5ever may spend on attributes in one page, counted as
/// the sum over tags of (attributes written)²: its tokenizer checks every
/// attribute against all earlier ones in the tag. Real pages stay near
/// 10⁵; one tag with a million attributes would be 10¹².
const MAX_ATTRIBUTE_WORK: u64 = 50_000_000;

/// Most work html5ever may spend on nesting in one page, counted as the
/// sum over start tags of the depth they open at: its tree builder scans
/// the stack of open elements at each one. 100,000 nested `<div>`s took it
/// 35 s; real pages stay under 10⁶.
const MAX_NESTING_WORK: u64 = 50_000_000;

/// Elements that are void or whose end tag the parser implies: they do
/// not deepen the tree they open in for long, so they do not count.
fn is_shallow(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "source"
            | "track"
            | "wbr"
            | "param"
            | "keygen"
            | "p"
            | "li"
            | "dt"
            | "dd"
            | "option"
            | "optgroup"
            | "tr"
            | "td"
            | "th"
            | "tbody"
            | "thead"
            | "tfoot"
            | "rb"
            | "rt"
            | "rp"
            | "colgroup"
            | "caption"
    )
}

/// Why `html` must not be given to the DOM parser, if it must not: the
/// parser's attribute handling is quadratic per tag and its tree building
/// quadratic in depth. One linear pass. The depth is estimated from above:
/// an end tag lowers it only when an element of its name is open (a stray
/// end tag does not), and raw-text contents (scripts, styles) are skipped
/// as the parser skips them.
pub fn dom_hazard(html: &str) -> Option<String> {
    // Below this size neither budget can be reached (an attribute takes at
    // least 2 bytes, a level of nesting 3: (14,000 / 2)² < 5·10⁷), so the
    // HTML answers of a JSON-LD page, nearly all short, cost no pass.
    if html.len() < 14_000 {
        return None;
    }
    let b = html.as_bytes();
    let mut attribute_work = 0u64;
    let mut nesting_work = 0u64;
    let mut depth = 0u64;
    let mut open: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut i = 0;
    while let Some(p) = memchr(b'<', &b[i..]) {
        let at = i + p;
        if b.get(at + 1) == Some(&b'/') {
            let name_end = b[at + 2..]
                .iter()
                .position(|c| c.is_ascii_whitespace() || matches!(c, b'>' | b'/'))
                .map_or(b.len(), |n| at + 2 + n);
            let name = html[at + 2..name_end].to_ascii_lowercase();
            if let Some(n) = open.get_mut(&name).filter(|n| **n > 0) {
                *n -= 1;
                depth -= 1;
            }
            i = name_end.max(at + 2);
            continue;
        }
        let Some(tag) = start_tag(html, at) else {
            i = at + 1;
            continue;
        };
        i = tag.end.max(at + 1);
        let n = tag.written as u64;
        attribute_work += n * n;
        if attribute_work > MAX_ATTRIBUTE_WORK {
            return Some(format!(
                "too many attributes to parse safely (a <{}> tag has {n})",
                tag.name.chars().take(20).collect::<String>()
            ));
        }
        if matches!(
            tag.name.as_str(),
            "script" | "style" | "textarea" | "title" | "xmp" | "iframe" | "noembed" | "noframes"
        ) {
            i = end_tag(html, i, &tag.name);
            continue;
        }
        if !is_shallow(&tag.name) && !html[at..tag.end].ends_with("/>") {
            *open.entry(tag.name).or_default() += 1;
            depth += 1;
            nesting_work += depth;
            if nesting_work > MAX_NESTING_WORK {
                return Some(format!(
                    "elements nested too deep to parse safely ({depth} levels)"
                ));
            }
        }
    }
    None
}

/// Scans `html` once.
pub fn scan(html: &str) -> Scan {
    let b = html.as_bytes();
    let mut out = Scan::default();
    let mut og_description = None;
    let mut seen_html = false;
    let mut i = 0;
    while let Some(p) = memchr(b'<', &b[i..]) {
        let at = i + p;
        if b[at..].starts_with(b"<!--") {
            i = memmem::find(&b[at + 4..], b"-->").map_or(b.len(), |e| at + 4 + e + 3);
            continue;
        }
        let Some(tag) = start_tag(html, at) else {
            i = at + 1;
            continue;
        };
        i = tag.end;
        match tag.name.as_str() {
            "html" if !seen_html => {
                seen_html = true;
                out.meta.html_lang = tag
                    .attr("lang")
                    .or_else(|| tag.attr("xml:lang"))
                    .map(|l| decode(l.trim()))
                    .filter(|l| !l.is_empty());
            }
            "meta" => {
                let key = tag
                    .attr("name")
                    .or_else(|| tag.attr("property"))
                    .unwrap_or("");
                let content = || tag.attr("content").map(decode).filter(|c| !c.is_empty());
                if key.eq_ignore_ascii_case("description") && out.meta.description.is_none() {
                    out.meta.description = content();
                } else if key.eq_ignore_ascii_case("og:description") {
                    og_description = content();
                } else if key.eq_ignore_ascii_case("keywords") && out.meta.keywords.is_none() {
                    out.meta.keywords = content();
                }
            }
            name @ ("script" | "style" | "textarea" | "title" | "xmp" | "iframe" | "noembed"
            | "noframes") => {
                let end = end_tag(html, i, name);
                let body = &html[i.min(end)..end];
                if name == "script"
                    && tag
                        .attr("type")
                        .is_some_and(|t| t.to_ascii_lowercase().contains("ld+json"))
                {
                    out.scripts.push(body.to_string());
                } else if name == "title" && out.meta.title.is_none() {
                    out.meta.title = Some(decode(body)).filter(|t| !t.is_empty());
                }
                i = end;
            }
            _ => {}
        }
    }
    if out.meta.description.is_none() {
        out.meta.description = og_description;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_head_fields_and_json_ld() {
        let html = r#"<!DOCTYPE html><HTML Lang="pt-BR"><head>
            <title>Perguntas &amp; respostas</title>
            <meta name="description" content="Tudo sobre &quot;nós&quot;">
            <meta property=og:description content=ignored>
            <meta name='keywords' content='a, b'>
            <!-- <script type="application/ld+json">{"commented": true}</script> -->
            <script>var s = "<script type='application/ld+json'>";</script>
            <script type="application/ld+json" data-x="a>b">{"@type":"FAQPage"}</SCRIPT >
            </head><body><div title="<script type=application/ld+json>">x</div>
            <script type=application/ld+json>[1]</script></body></html>"#;
        let s = scan(html);
        assert_eq!(s.meta.html_lang.as_deref(), Some("pt-BR"));
        assert_eq!(s.meta.title.as_deref(), Some("Perguntas & respostas"));
        assert_eq!(s.meta.description.as_deref(), Some("Tudo sobre \"nós\""));
        assert_eq!(s.meta.keywords.as_deref(), Some("a, b"));
        assert_eq!(s.scripts, [r#"{"@type":"FAQPage"}"#, "[1]"]);
    }

    #[test]
    fn a_tag_with_a_million_attributes_is_scanned_in_linear_time() {
        // Each attribute was once compared with every earlier one: 10^12
        // steps here.
        let attrs: String = (0..1_000_000).map(|i| format!(" a{i}=1")).collect();
        let html = format!("<title{attrs}>T</title><script type=application/ld+json>[1]</script>");
        let s = scan(&html);
        assert_eq!(s.meta.title.as_deref(), Some("T"));
        assert_eq!(s.scripts, ["[1]"]);
        assert!(dom_hazard(&html).is_some_and(|r| r.contains("<title>")));
        assert_eq!(dom_hazard("<div a=1 b=2 a=3><p class=x>"), None);
    }

    #[test]
    fn deep_nesting_is_a_hazard_and_long_flat_pages_are_not() {
        let deep = "<div>".repeat(100_000);
        assert!(dom_hazard(&deep).is_some_and(|r| r.contains("nested too deep")));
        let flat = "<div><p>x<br><img src=a></div>".repeat(200_000);
        assert_eq!(dom_hazard(&flat), None);
        let unclosed = "<ul><li>x<p>y<td>z".repeat(20_000);
        assert_eq!(dom_hazard(&unclosed).map(|_| ()), Some(()), "ul nests");
        assert_eq!(dom_hazard(&"<li>x<p>y<td>z".repeat(200_000)), None);
        // End tags that close nothing, or sit in a script, do not hide depth.
        assert!(dom_hazard(&"<div></span>".repeat(100_000)).is_some());
        assert!(dom_hazard(&"<div><script></div></script>".repeat(100_000)).is_some());
    }

    #[test]
    fn og_description_is_the_fallback() {
        let s = scan(r#"<meta property="og:description" content="OG">"#);
        assert_eq!(s.meta.description.as_deref(), Some("OG"));
    }

    #[test]
    fn unterminated_things_end_at_the_end() {
        let s = scan("<title>T<script type=application/ld+json>{");
        assert_eq!(
            s.meta.title.as_deref(),
            Some("T<script type=application/ld+json>{")
        );
        let s = scan("<script type=application/ld+json>{\"a\":1}");
        assert_eq!(s.scripts, ["{\"a\":1}"]);
        assert!(
            scan("<!-- never closed <title>x</title>")
                .meta
                .title
                .is_none()
        );
        assert!(scan("<").scripts.is_empty());
    }
}
