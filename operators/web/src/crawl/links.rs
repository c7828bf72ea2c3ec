//! The links a crawl may follow from a page: `<a href>` and the
//! `<link rel="alternate" hreflang>` translations of the page (how
//! multilingual sites point at their other locales), resolved against
//! `<base href>` or the page URL, without fragments, http(s) only, and not
//! to files that are plainly not HTML.

use scraper::{Html, Selector};

const NOT_HTML: &[&str] = &[
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".bmp", ".pdf", ".zip", ".gz",
    ".tgz", ".rar", ".7z", ".css", ".js", ".json", ".xml", ".rss", ".mp3", ".mp4", ".webm", ".avi",
    ".mov", ".woff", ".woff2", ".ttf", ".eot", ".exe", ".dmg", ".doc", ".docx", ".xls", ".xlsx",
    ".ppt", ".pptx", ".csv",
];

/// A link target, and whether it is a declared translation of the page
/// (`<link rel="alternate" hreflang>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub url: url::Url,
    pub alternate: bool,
}

/// Absolute link targets of `html` (a page at `page`), deduplicated, in
/// document order.
pub fn extract(html: &str, page: &url::Url) -> Vec<Link> {
    let doc = Html::parse_document(html);
    let (Ok(base_sel), Ok(link_sel)) = (
        Selector::parse("base[href]"),
        Selector::parse("a[href], area[href], link[rel~=alternate][hreflang][href]"),
    ) else {
        return Vec::new();
    };
    let base = doc
        .select(&base_sel)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page.join(h.trim()).ok())
        .unwrap_or_else(|| page.clone());
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for el in doc.select(&link_sel) {
        let Some(href) = el.value().attr("href") else {
            continue;
        };
        let Ok(mut u) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            continue;
        }
        u.set_fragment(None);
        let path = u.path().to_ascii_lowercase();
        if NOT_HTML.iter().any(|ext| path.ends_with(ext)) {
            continue;
        }
        if seen.insert(u.as_str().to_string()) {
            out.push(Link {
                url: u,
                alternate: el.value().name() == "link",
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_filters_and_dedups() {
        let page = url::Url::parse("https://a.example/de/faq/index.html").expect("test input");
        let html = r#"<html><head>
            <link rel="alternate" hreflang="fr" href="/fr/faq/">
            <link rel="stylesheet" href="/s.css">
            </head><body>
            <a href="help.html#top">help</a><a href="help.html">again</a>
            <a href="mailto:x@a.example">mail</a><a href="javascript:void(0)">js</a>
            <a href="/logo.PNG">logo</a><a href=" https://b.example/x ">other</a>
            <a href="//c.example/y">protocol-relative</a><a href="http://[::1">broken</a>
            </body></html>"#;
        let links = extract(html, &page);
        let got: Vec<String> = links.iter().map(|l| l.url.to_string()).collect();
        assert_eq!(
            got,
            [
                "https://a.example/fr/faq/",
                "https://a.example/de/faq/help.html",
                "https://b.example/x",
                "https://c.example/y",
            ]
        );
        let alternates: Vec<bool> = links.iter().map(|l| l.alternate).collect();
        assert_eq!(alternates, [true, false, false, false]);
    }

    #[test]
    fn base_href_wins() {
        let page = url::Url::parse("https://a.example/x/y").expect("test input");
        let html = r#"<head><base href="https://a.example/root/"></head><a href="z">z</a>"#;
        assert_eq!(
            extract(html, &page)[0].url.as_str(),
            "https://a.example/root/z"
        );
    }
}
