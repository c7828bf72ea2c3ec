//! `extract` on the real FAQ pages in `../shared/data/faq-pages` (197 pages,
//! 30 sites): the questions found per page and markup equal the counts in
//! `faq_counts.json` (made by Python `extruct`, `scripts/faq_counts.py`),
//! except where a careful reading of the markup gives another number than
//! extruct does; those pages are listed in `CAREFUL_READING` with the
//! reason. Each messy case of `SOURCES.md` has a named test. Runs whenever
//! the shared data is present; CI always has it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dflow_op_web::charset::decode_html;
use dflow_op_web::extract::{
    ExtractParams, Markup, PageFaqs, Reader, extract_page, extract_page_with,
};

fn shared(rel: &str) -> Option<PathBuf> {
    dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), rel)
}

fn page(rel: &str, params: &ExtractParams) -> Option<PageFaqs> {
    let path = shared(&format!("faq-pages/{rel}"))?;
    let bytes = std::fs::read(&path).expect("read page");
    Some(extract_page(&decode_html(&bytes, None).text, params))
}

fn only(markup: Markup) -> ExtractParams {
    ExtractParams {
        markups: vec![markup],
        ..ExtractParams::default()
    }
}

/// Pages whose count differs from extruct's, with the count a careful
/// reading gives and why.
const CAREFUL_READING: &[(&str, &str, usize, &str)] = &[
    (
        "karaarslan-bike/faq.de.html",
        "json-ld",
        10,
        "extruct drops every JSON-LD block of a page when one is invalid; the FAQ block lacks one `{` and is repaired",
    ),
    ("karaarslan-bike/faq.en.html", "json-ld", 10, "as faq.de"),
    ("karaarslan-bike/faq.fr.html", "json-ld", 10, "as faq.de"),
    ("karaarslan-bike/faq.tr.html", "json-ld", 10, "as faq.de"),
    (
        "schema.org/docs-faq.html",
        "microdata",
        19,
        "20 Question items, one (Q8) without an Answer `text`; lxml (extruct) loses the FAQPage scope at the unclosed <body> tag, html5ever keeps it",
    ),
    (
        "jmp.chat/faq.rdfa-first.php.html",
        "rdfa",
        16,
        "16 `typeof=Question` with name and answer text; extruct (pyRdfa on lxml) loses the half after an unbalanced </div>",
    ),
    (
        "jmp.chat/faq.rdfa-last.php.html",
        "rdfa",
        17,
        "17 `typeof=Question`; as rdfa-first",
    ),
];

#[test]
fn every_page_gives_the_expected_count_per_markup() {
    if shared("faq-pages").is_none() {
        return;
    }
    let mut expected: BTreeMap<String, BTreeMap<String, usize>> =
        serde_json::from_str(include_str!("faq_counts.json")).expect("expectations parse");
    for (file, markup, n, _why) in CAREFUL_READING {
        expected
            .entry(file.to_string())
            .or_default()
            .insert(markup.to_string(), *n);
    }
    assert_eq!(expected.len(), 197, "faq_counts.json covers every page");
    let mut mismatches = Vec::new();
    let mut total = 0;
    for (file, counts) in &expected {
        for markup in [Markup::JsonLd, Markup::Microdata, Markup::Rdfa] {
            let got = page(file, &only(markup)).expect("page exists").faqs.len();
            let want = counts.get(markup.as_str()).copied().unwrap_or(0);
            total += got;
            if got != want {
                mismatches.push(format!(
                    "{file} {}: got {got}, expected {want}",
                    markup.as_str()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(total > 5000, "{total}");
}

#[test]
fn the_scanner_reads_every_page_as_the_dom_does() {
    let Some(root) = shared("faq-pages") else {
        return;
    };
    let expected: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(include_str!("faq_counts.json")).expect("expectations parse");
    let params = ExtractParams::default();
    for file in expected.keys() {
        let bytes = std::fs::read(root.join(file)).expect("read page");
        let html = decode_html(&bytes, None).text;
        assert_eq!(
            extract_page_with(&html, &params, Reader::Auto),
            extract_page_with(&html, &params, Reader::Dom),
            "{file}"
        );
    }
}

#[test]
fn invalid_json_ld_is_repaired_or_rejected_and_the_page_still_counts() {
    let Some(p) = page("karaarslan-bike/faq.de.html", &ExtractParams::default()) else {
        return;
    };
    assert_eq!(p.faqs.len(), 10);
    // The template leftover survives extraction (clean leaves it too: it is
    // real page text).
    assert!(p.faqs.iter().any(|f| f.question.contains("[SEHIR]")));
    // Lines that stay broken are rejected with the reason.
    let broken = "<script type=\"application/ld+json\">{\"@type\": \"FAQPage\", \"mainEntity\": [}</script>\
                  <script type=\"application/ld+json\">{\"@type\":\"FAQPage\",\"mainEntity\":{\"@type\":\"Question\",\"name\":\"Q?\",\"acceptedAnswer\":{\"text\":\"A\"}}}</script>";
    let p = extract_page(broken, &ExtractParams::default());
    assert_eq!(p.faqs.len(), 1);
    assert_eq!(p.problems.len(), 1);
    assert!(
        p.problems[0]
            .reason
            .starts_with("JSON-LD block 1: invalid JSON at line 1"),
        "{:?}",
        p.problems
    );
}

#[test]
fn graph_containers() {
    for (file, n) in [
        ("negaflow/index.en.html", 10),
        ("jobslist.dev/faq.en.html", 16),
    ] {
        let Some(p) = page(file, &ExtractParams::default()) else {
            return;
        };
        assert_eq!(p.faqs.len(), n, "{file}");
    }
}

#[test]
fn type_arrays() {
    let Some(p) = page(
        "italiaanse-percolator/vergelijking.html",
        &ExtractParams::default(),
    ) else {
        return;
    };
    assert!(!p.faqs.is_empty());
}

#[test]
fn several_faqpage_blocks_on_one_page() {
    let Some(split) = page(
        "orion-private-wealth/faq.en.html",
        &ExtractParams::default(),
    ) else {
        return;
    };
    let one = page(
        "orion-private-wealth/faq.de.html",
        &ExtractParams::default(),
    )
    .expect("page");
    // 4 blocks of 7+7+6+6 on one locale, one block of 26 on the other.
    assert_eq!(split.faqs.len(), 26);
    assert_eq!(one.faqs.len(), 26);
    assert!(split.problems.is_empty(), "{:?}", split.problems);
}

#[test]
fn broken_html_around_microdata() {
    let Some(p) = page("schema.org/docs-faq.html", &ExtractParams::default()) else {
        return;
    };
    assert_eq!(p.faqs.len(), 19);
    assert!(p.faqs.iter().all(|f| f.markup == Markup::Microdata));
    assert!(p.faqs.iter().all(|f| !f.answer.contains('<')));
    // The twentieth question has an Answer item with no `text`: rejected,
    // named.
    assert_eq!(p.problems.len(), 1);
    assert_eq!(
        p.problems[0].question.as_deref(),
        Some("Q: How do I mark up my site using this schema?")
    );
    assert_eq!(
        p.problems[0].reason,
        "Question without an acceptedAnswer text"
    );
}

#[test]
fn html_rich_rdfa_answers_become_clean_text() {
    let Some(p) = page(
        "jmp.chat/faq.rdfa-first.php.html",
        &ExtractParams::default(),
    ) else {
        return;
    };
    assert!(!p.faqs.is_empty());
    for f in &p.faqs {
        assert_eq!(f.markup, Markup::Rdfa);
        assert!(
            !f.answer.contains('<') && !f.answer.contains("&amp;"),
            "{}",
            f.answer
        );
        assert!(!f.answer.contains("  "), "{:?}", f.answer);
    }
    // Lists in answers stay one item per line.
    assert!(p.faqs.iter().any(|f| f.answer.lines().count() > 2));
}

#[test]
fn qa_page_and_suggested_answers_when_asked() {
    // schema.org's Q&A example is a bare Question (no FAQPage or QAPage
    // around it): no FAQ pair under any params.
    let Some(default) = page("schema.org/examples-eg-0186.txt", &ExtractParams::default()) else {
        return;
    };
    assert!(default.faqs.is_empty());
    let params = ExtractParams {
        qa_page: true,
        suggested_answer: true,
        ..ExtractParams::default()
    };
    assert!(
        page("schema.org/examples-eg-0186.txt", &params)
            .expect("page")
            .faqs
            .is_empty()
    );
    // Wrapped in a QAPage, it counts once asked; a question with only a
    // suggested answer needs `suggested_answer`.
    let qa = r#"<div itemscope itemtype="https://schema.org/QAPage">
      <div itemprop="mainEntity" itemscope itemtype="https://schema.org/Question">
        <h1 itemprop="name">What is attr_accessor in Ruby?</h1>
        <div itemprop="suggestedAnswer" itemscope itemtype="https://schema.org/Answer">
          <div itemprop="text">A shortcut that defines a getter and a setter.</div></div></div></div>"#;
    assert!(extract_page(qa, &ExtractParams::default()).faqs.is_empty());
    let only_qa = ExtractParams {
        qa_page: true,
        ..ExtractParams::default()
    };
    assert!(extract_page(qa, &only_qa).faqs.is_empty());
    assert_eq!(extract_page(qa, &params).faqs.len(), 1);
}

#[test]
fn the_web_data_commons_nquads_sample() {
    let Some(path) = shared("faq-nquads/webfaq-FAQPage_sample.nq.gz") else {
        return;
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open")),
        &mut text,
    )
    .expect("gunzip");
    let (pages, errors) = dflow_op_web::extract::nquads::read(&text);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pages.len(), 13);
    let expected: BTreeMap<String, usize> =
        serde_json::from_str(include_str!("nquads_counts.json")).expect("expectations parse");
    let got: BTreeMap<String, usize> = pages
        .iter()
        .map(|(url, g)| (url.clone(), g.faqs(Default::default()).0.len()))
        .collect();
    assert_eq!(got, expected);
}
