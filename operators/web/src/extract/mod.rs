//! `op: extract` — schema.org `FAQPage` questions and answers from web pages
//! (JSON-LD, microdata, RDFa) or from Open Web Index rows (their `faq`
//! column, else their `json-ld` blocks), one output partition per input
//! partition.
//!
//! A page is parsed only if its bytes mention `FAQPage` (or `QAPage` when
//! asked): most of a crawl costs one substring search. Pages that can only
//! carry JSON-LD (no `itemscope`, no `typeof`) are read by a single-pass
//! scanner ([`scan`]); the others get an html5ever DOM for microdata and
//! RDFa. What cannot be read
//! (a JSON-LD block that stays invalid after repair, a question without an
//! answer) goes to `rejected` with the page and the reason; the rest of the
//! page still counts.

pub mod graph;
pub mod jsonld;
pub mod microdata;
pub mod nquads;
pub mod rdfa;
pub mod scan;
pub mod text;

use dflow_engine::ports::{OUT, REJECTED};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, UInt32Builder,
};
use dflow_engine::datafusion::arrow::datatypes::DataType;
use dflow_engine::registry::Registry;
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use memchr::memmem;
use rayon::prelude::*;
use scraper::{ElementRef, Html, Node};
use serde::{Deserialize, Serialize};

use graph::{Graph, WalkOptions};
use text::{normalise_plain, strip_tags};

/// The syntax a question was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Markup {
    #[serde(rename = "json-ld")]
    JsonLd,
    #[serde(rename = "microdata")]
    Microdata,
    #[serde(rename = "rdfa")]
    Rdfa,
    /// The `faq` column of Open Web Index files (extracted upstream).
    #[serde(rename = "owi")]
    Owi,
}

impl Markup {
    pub fn as_str(self) -> &'static str {
        match self {
            Markup::JsonLd => "json-ld",
            Markup::Microdata => "microdata",
            Markup::Rdfa => "rdfa",
            Markup::Owi => "owi",
        }
    }
}

fn default_markups() -> Vec<Markup> {
    vec![Markup::JsonLd, Markup::Microdata, Markup::Rdfa]
}

/// Params of `op: extract`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractParams {
    /// Syntaxes read from HTML (default all three). Duplicate pairs found
    /// in several syntaxes on one page are kept once, from the first listed.
    #[serde(default = "default_markups")]
    pub markups: Vec<Markup>,
    /// Also read `QAPage` (question-and-answer forums). Off in WebFAQ.
    #[serde(default)]
    pub qa_page: bool,
    /// Take a question's first `suggestedAnswer` when it has no
    /// `acceptedAnswer`. Off in WebFAQ.
    #[serde(default)]
    pub suggested_answer: bool,
}

impl Default for ExtractParams {
    fn default() -> Self {
        Self {
            markups: default_markups(),
            qa_page: false,
            suggested_answer: false,
        }
    }
}

/// The page-level fields kept with every pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageMeta {
    pub title: Option<String>,
    pub description: Option<String>,
    pub keywords: Option<String>,
    pub html_lang: Option<String>,
}

/// One extracted pair, its text cleaned of markup.
#[derive(Clone, Debug, PartialEq)]
pub struct Faq {
    pub question: String,
    pub answer: String,
    pub markup: Markup,
}

/// Something on a page that could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub markup: Markup,
    pub question: Option<String>,
    pub reason: String,
}

/// Everything `extract` finds on one page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageFaqs {
    pub meta: PageMeta,
    pub faqs: Vec<Faq>,
    pub problems: Vec<Problem>,
}

/// Whether the page can carry what we look for: a byte search that spares
/// the parse of most pages.
fn mentions_faq(html: &str, qa_page: bool) -> bool {
    let b = html.as_bytes();
    let any = |needles: &[&str]| {
        needles
            .iter()
            .any(|n| memmem::find(b, n.as_bytes()).is_some())
    };
    any(&["FAQPage", "FaqPage", "faqpage", "FAQpage"])
        || (qa_page && any(&["QAPage", "QaPage", "qapage"]))
}

/// Which way a page is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// A DOM only when the page has microdata or RDFa attributes (what
    /// `extract` does).
    Auto,
    /// Always a DOM (to check the scanner against).
    Dom,
}

/// Extracts the FAQ pairs of one HTML page.
pub fn extract_page(html: &str, params: &ExtractParams) -> PageFaqs {
    extract_page_with(html, params, Reader::Auto)
}

/// [`extract_page`], choosing how the page is read.
pub fn extract_page_with(html: &str, params: &ExtractParams, reader: Reader) -> PageFaqs {
    let mut page = PageFaqs::default();
    if !mentions_faq(html, params.qa_page) {
        return page;
    }
    let wants = |m: Markup| params.markups.contains(&m);
    let needs_dom = (wants(Markup::Microdata) && html.contains("itemscope"))
        || (wants(Markup::Rdfa) && html.contains("typeof"));
    let wants_dom = needs_dom || reader == Reader::Dom;
    let hazard = wants_dom.then(|| scan::dom_hazard(html)).flatten();
    if let Some(reason) = &hazard {
        // JSON-LD is still read, by the scanner; the DOM-only markups are
        // not.
        page.problems.push(Problem {
            markup: if wants(Markup::Microdata) {
                Markup::Microdata
            } else {
                Markup::Rdfa
            },
            question: None,
            reason: format!("page not parsed as a DOM: {reason}"),
        });
    }
    let (doc, scripts) = if wants_dom && hazard.is_none() {
        let doc = Html::parse_document(html);
        let mut scripts = Vec::new();
        page.meta = scan_head(&doc, &mut scripts);
        (Some(doc), scripts)
    } else {
        let s = scan::scan(html);
        page.meta = s.meta;
        (None, s.scripts)
    };
    let opts = WalkOptions {
        qa_page: params.qa_page,
        suggested_answer: params.suggested_answer,
    };
    let mut seen = HashSet::new();
    for &markup in &params.markups {
        let mut graph = Graph::default();
        match markup {
            Markup::JsonLd => {
                for (i, block) in scripts.iter().enumerate() {
                    match jsonld::parse_block(block) {
                        Ok(values) => jsonld::read_into(&values, &mut graph),
                        Err(reason) => page.problems.push(Problem {
                            markup,
                            question: None,
                            reason: format!("JSON-LD block {}: {reason}", i + 1),
                        }),
                    }
                }
            }
            Markup::Microdata => match &doc {
                Some(doc) => microdata::read(doc, &mut graph),
                None => continue,
            },
            Markup::Rdfa => match &doc {
                Some(doc) => rdfa::read(doc, &mut graph),
                None => continue,
            },
            _ => continue,
        }
        collect(&graph, opts, markup, &mut seen, &mut page);
    }
    page
}

/// The clean text of a question or answer that may hold HTML. Markup that
/// would make the HTML parser quadratic is stripped instead of parsed.
fn fragment_text(s: &str) -> String {
    if s.contains('<') && scan::dom_hazard(s).is_some() {
        return normalise_plain(&strip_tags(s));
    }
    text::fragment_text(s)
}

/// Adds a graph's pairs to the page, skipping pairs already seen.
fn collect(
    graph: &Graph,
    opts: WalkOptions,
    markup: Markup,
    seen: &mut HashSet<(String, String)>,
    page: &mut PageFaqs,
) {
    let (qas, skipped) = graph.faqs(opts);
    for qa in qas {
        let question = fragment_text(&qa.question);
        let answer = fragment_text(&qa.answer);
        if seen.insert((question.clone(), answer.clone())) {
            page.faqs.push(Faq {
                question,
                answer,
                markup,
            });
        }
    }
    page.problems.extend(skipped.into_iter().map(|s| Problem {
        markup,
        question: s.question.map(|q| fragment_text(&q)),
        reason: s.reason,
    }));
}

/// One pass over the document: title, meta description and keywords, the
/// root's `lang`, and the text of every JSON-LD script.
fn scan_head(doc: &Html, scripts: &mut Vec<String>) -> PageMeta {
    let root = doc.root_element();
    let mut meta = PageMeta {
        html_lang: root
            .value()
            .attr("lang")
            .or_else(|| root.value().attr("xml:lang"))
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()),
        ..PageMeta::default()
    };
    let mut og_description = None;
    for node in root.descendants() {
        let Node::Element(e) = node.value() else {
            continue;
        };
        match e.name() {
            "title" if meta.title.is_none() => {
                if let Some(el) = ElementRef::wrap(node) {
                    meta.title = non_empty(normalise_plain(&el.text().collect::<String>()));
                }
            }
            "meta" => {
                let content = e.attr("content").map(normalise_plain);
                let key = e.attr("name").or_else(|| e.attr("property")).unwrap_or("");
                if key.eq_ignore_ascii_case("description") && meta.description.is_none() {
                    meta.description = content.and_then(non_empty);
                } else if key.eq_ignore_ascii_case("og:description") {
                    og_description = content.and_then(non_empty);
                } else if key.eq_ignore_ascii_case("keywords") && meta.keywords.is_none() {
                    meta.keywords = content.and_then(non_empty);
                }
            }
            "script" => {
                let is_ld = e
                    .attr("type")
                    .is_some_and(|t| t.to_ascii_lowercase().contains("ld+json"));
                if is_ld && let Some(el) = ElementRef::wrap(node) {
                    scripts.push(el.text().collect());
                }
            }
            _ => {}
        }
    }
    if meta.description.is_none() {
        meta.description = og_description;
    }
    meta
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// md5 hex of `question + " " + answer`: WebFAQ's pair id.
pub fn pair_id(question: &str, answer: &str) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(question.as_bytes());
    h.update(b" ");
    h.update(answer.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Extract {
    params: ExtractParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "extract",
        "schema.org FAQPage question-answer pairs from pages (JSON-LD, microdata, RDFa) or OWI rows",
        |p: ExtractParams, _ctx| Ok(Arc::new(Extract { params: p }) as Arc<dyn Operator>),
    );
}

/// Which kind of table `pages` is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    Html,
    Owi,
}

fn input_kind(schema: &dflow_engine::datafusion::arrow::datatypes::Schema) -> Option<Input> {
    if schema
        .field_with_name("html")
        .is_ok_and(|f| f.data_type() == &DataType::Utf8)
    {
        Some(Input::Html)
    } else if schema.field_with_name("faq").is_ok() || schema.field_with_name("json_ld").is_ok() {
        Some(Input::Owi)
    } else {
        None
    }
}

impl Operator for Extract {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "pages".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::any_table("pages")])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let Some(PortType::Table(s)) = inputs.get("pages") {
            if input_kind(s).is_none() {
                return Err(Error::data(
                    "`pages` must be web pages (an `html` column, as `warc` and `html_dir` write) \
                     or Open Web Index rows (a `faq` or `json_ld` column, as `owi` writes)",
                ));
            }
            for col in ["url", "origin"] {
                if s.field_with_name(col).is_err() {
                    return Err(Error::data(format!("`pages` has no `{col}` column")));
                }
            }
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(dflow_schemas::faqs())),
            (
                REJECTED.to_string(),
                PortType::Table(dflow_schemas::extract_rejected()),
            ),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let input = task.table("pages")?.clone();
        let kind = input_kind(&input.schema)
            .ok_or_else(|| Error::internal("extract: input kind checked at compile time"))?;
        for batch in input.batches(task.batch_size()) {
            let batch = batch?;
            let urls = dflow_engine::kit::columns::text(&batch, "url")?;
            let origins = dflow_engine::kit::columns::text(&batch, "origin")?;
            let pages: Vec<PageFaqs> = match kind {
                Input::Html => {
                    let html = dflow_engine::kit::columns::text(&batch, "html")?;
                    (0..batch.num_rows())
                        .into_par_iter()
                        .map(|i| {
                            if html.is_null(i) {
                                PageFaqs::default()
                            } else {
                                extract_page(html.value(i), &self.params)
                            }
                        })
                        .collect()
                }
                Input::Owi => owi_pages(&batch, &self.params)?,
            };
            let (out, rejected) = build_batches(&pages, urls, origins)?;
            if out.num_rows() > 0 {
                task.outputs.write(OUT, &out)?;
            }
            if rejected.num_rows() > 0 {
                task.outputs.write(REJECTED, &rejected)?;
            }
        }
        Ok(())
    }
}

/// OWI rows: the `faq` list when present, else the page's JSON-LD blocks.
fn owi_pages(batch: &RecordBatch, params: &ExtractParams) -> Result<Vec<PageFaqs>> {
    let opt_str = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let (title, description, keywords) = (
        opt_str("title"),
        opt_str("description"),
        opt_str("keywords"),
    );
    let faq = batch
        .column_by_name("faq")
        .and_then(|c| c.as_list_opt::<i32>());
    let json_ld = batch
        .column_by_name("json_ld")
        .and_then(|c| c.as_list_opt::<i32>());
    let text_at = |col: Option<&StringArray>, i: usize| {
        col.filter(|c| c.is_valid(i))
            .map(|c| normalise_plain(c.value(i)))
            .and_then(non_empty)
    };
    let opts = WalkOptions {
        qa_page: params.qa_page,
        suggested_answer: params.suggested_answer,
    };
    let mut pages = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut page = PageFaqs {
            meta: PageMeta {
                title: text_at(title, i),
                description: text_at(description, i),
                keywords: text_at(keywords, i),
                html_lang: None,
            },
            ..PageFaqs::default()
        };
        let mut seen = HashSet::new();
        if let Some(list) = faq.filter(|l| l.is_valid(i) && !l.value(i).is_empty()) {
            let items = list.value(i);
            let items = items.as_struct();
            let questions = items
                .column_by_name("question")
                .and_then(|c| c.as_string_opt::<i32>());
            let answers = items
                .column_by_name("answer")
                .and_then(|c| c.as_string_opt::<i32>());
            if let (Some(q), Some(a)) = (questions, answers) {
                for j in 0..items.len() {
                    if !items.is_valid(j) || q.is_null(j) || a.is_null(j) {
                        page.problems.push(Problem {
                            markup: Markup::Owi,
                            question: q.is_valid(j).then(|| q.value(j).to_string()),
                            reason: "faq item without a question or an answer".into(),
                        });
                        continue;
                    }
                    let (question, answer) = (fragment_text(q.value(j)), fragment_text(a.value(j)));
                    if seen.insert((question.clone(), answer.clone())) {
                        page.faqs.push(Faq {
                            question,
                            answer,
                            markup: Markup::Owi,
                        });
                    }
                }
            }
        } else if let Some(list) = json_ld.filter(|l| l.is_valid(i)) {
            let blocks = list.value(i);
            let blocks = blocks.as_string::<i32>();
            let mut graph = Graph::default();
            for (b, block) in blocks.iter().enumerate() {
                let Some(block) = block else { continue };
                match jsonld::parse_block(block) {
                    Ok(values) => jsonld::read_into(&values, &mut graph),
                    Err(reason) => page.problems.push(Problem {
                        markup: Markup::JsonLd,
                        question: None,
                        reason: format!("JSON-LD block {}: {reason}", b + 1),
                    }),
                }
            }
            collect(&graph, opts, Markup::JsonLd, &mut seen, &mut page);
        }
        pages.push(page);
    }
    Ok(pages)
}

/// The `out` and `rejected` batches of the pages of one input batch (page
/// `i` is row `i` of `urls` and `origins`).
fn build_batches(
    pages: &[PageFaqs],
    urls: &StringArray,
    origins: &StringArray,
) -> Result<(RecordBatch, RecordBatch)> {
    let mut id = StringBuilder::new();
    let mut url = StringBuilder::new();
    let mut origin = StringBuilder::new();
    let mut question = StringBuilder::new();
    let mut answer = StringBuilder::new();
    let mut title = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut keywords = StringBuilder::new();
    let mut html_lang = StringBuilder::new();
    let mut markup = StringBuilder::new();
    let mut position = UInt32Builder::new();
    let mut r_url = StringBuilder::new();
    let mut r_origin = StringBuilder::new();
    let mut r_markup = StringBuilder::new();
    let mut r_question = StringBuilder::new();
    let mut r_reason = StringBuilder::new();
    for (row, page) in pages.iter().enumerate() {
        let (u, o) = (urls.value(row), origins.value(row));
        for (pos, f) in page.faqs.iter().enumerate() {
            id.append_value(pair_id(&f.question, &f.answer));
            url.append_value(u);
            origin.append_value(o);
            question.append_value(&f.question);
            answer.append_value(&f.answer);
            title.append_option(page.meta.title.as_deref());
            description.append_option(page.meta.description.as_deref());
            keywords.append_option(page.meta.keywords.as_deref());
            html_lang.append_option(page.meta.html_lang.as_deref());
            markup.append_value(f.markup.as_str());
            position.append_value(u32::try_from(pos).unwrap_or(u32::MAX));
        }
        for p in &page.problems {
            r_url.append_value(u);
            r_origin.append_value(o);
            r_markup.append_value(p.markup.as_str());
            r_question.append_option(p.question.as_deref());
            r_reason.append_value(&p.reason);
        }
    }
    let out: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(url.finish()),
        Arc::new(origin.finish()),
        Arc::new(question.finish()),
        Arc::new(answer.finish()),
        Arc::new(title.finish()),
        Arc::new(description.finish()),
        Arc::new(keywords.finish()),
        Arc::new(html_lang.finish()),
        Arc::new(markup.finish()),
        Arc::new(position.finish()),
    ];
    let rejected: Vec<ArrayRef> = vec![
        Arc::new(r_url.finish()),
        Arc::new(r_origin.finish()),
        Arc::new(r_markup.finish()),
        Arc::new(r_question.finish()),
        Arc::new(r_reason.finish()),
    ];
    Ok((
        RecordBatch::try_new(dflow_schemas::faqs(), out)?,
        RecordBatch::try_new(dflow_schemas::extract_rejected(), rejected)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_that_would_make_the_dom_parser_quadratic_is_not_parsed() {
        // html5ever checks each attribute against the earlier ones of its
        // tag: this page took it about 10^11 steps.
        let attrs: String = (0..300_000).map(|i| format!(" a{i}")).collect();
        let answer = format!("<p{attrs}>Yes.</p>");
        let json = serde_json::json!({
            "@type": "FAQPage",
            "mainEntity": [{"@type": "Question", "name": "Q?",
                "acceptedAnswer": {"@type": "Answer", "text": answer}}]
        });
        let html = format!(
            r#"<html><body><div itemscope itemtype="https://schema.org/FAQPage"{attrs}></div>
            <script type="application/ld+json">{json}</script></body></html>"#
        );
        let started = std::time::Instant::now();
        let page = extract_page(&html, &ExtractParams::default());
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert_eq!(page.faqs.len(), 1, "{:?}", page.problems);
        assert_eq!(page.faqs[0].answer, "Yes.");
        assert!(
            page.problems
                .iter()
                .any(|p| p.reason.contains("not parsed as a DOM")),
            "{:?}",
            page.problems
        );
    }

    #[test]
    fn a_page_nested_too_deep_for_the_dom_parser_keeps_its_json_ld() {
        // html5ever took 35 s over 100,000 nested elements.
        let json = r#"{"@type": "FAQPage", "mainEntity": [{"@type": "Question", "name": "Q?",
            "acceptedAnswer": {"@type": "Answer", "text": "Yes."}}]}"#;
        let html = format!(
            r#"<html><body itemscope itemtype="https://schema.org/FAQPage">{}<script type="application/ld+json">{json}</script></body></html>"#,
            "<div>".repeat(100_000)
        );
        let started = std::time::Instant::now();
        let page = extract_page(&html, &ExtractParams::default());
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert_eq!(page.faqs.len(), 1, "{:?}", page.problems);
        assert!(
            page.problems
                .iter()
                .any(|p| p.reason.contains("nested too deep")),
            "{:?}",
            page.problems
        );
    }

    #[test]
    fn pages_without_faq_markup_are_not_parsed() {
        let page = extract_page("<html><title>x</title></html>", &ExtractParams::default());
        assert_eq!(page, PageFaqs::default());
    }

    #[test]
    fn metadata_and_markups_together_without_duplicates() {
        let html = r#"<!doctype html><html lang="de"><head><title> Hilfe  </title>
          <meta name="Description" content="Fragen und Antworten">
          <meta name="keywords" content="a, b">
          <script type="application/ld+json">{"@context":"https://schema.org","@type":"FAQPage",
            "mainEntity":[{"@type":"Question","name":"Wie lange?","acceptedAnswer":{"@type":"Answer","text":"<p>Zwei Tage.</p>"}}]}</script>
          <script type="application/ld+json">{"broken": </script>
          </head><body><div itemscope itemtype="https://schema.org/FAQPage">
            <div itemprop="mainEntity" itemscope itemtype="https://schema.org/Question">
              <h3 itemprop="name">Wie lange?</h3>
              <div itemprop="acceptedAnswer" itemscope itemtype="https://schema.org/Answer"><p itemprop="text">Zwei Tage.</p></div>
            </div>
            <div itemprop="mainEntity" itemscope itemtype="https://schema.org/Question">
              <h3 itemprop="name">Wo?</h3>
              <div itemprop="acceptedAnswer" itemscope itemtype="https://schema.org/Answer"><p itemprop="text">Hier.</p></div>
            </div></div></body></html>"#;
        let page = extract_page(html, &ExtractParams::default());
        assert_eq!(
            page.meta,
            PageMeta {
                title: Some("Hilfe".into()),
                description: Some("Fragen und Antworten".into()),
                keywords: Some("a, b".into()),
                html_lang: Some("de".into()),
            }
        );
        let got: Vec<_> = page
            .faqs
            .iter()
            .map(|f| (f.question.as_str(), f.answer.as_str(), f.markup))
            .collect();
        assert_eq!(
            got,
            [
                ("Wie lange?", "Zwei Tage.", Markup::JsonLd),
                ("Wo?", "Hier.", Markup::Microdata)
            ]
        );
        assert_eq!(page.problems.len(), 1);
        assert!(
            page.problems[0]
                .reason
                .starts_with("JSON-LD block 2: invalid JSON")
        );
    }

    #[test]
    fn ids_are_md5_of_question_space_answer() {
        // python3 -c 'import hashlib;print(hashlib.md5("What? Yes.".encode()).hexdigest())'
        assert_eq!(pair_id("What?", "Yes."), "206e6755538c677659272086c43eb91b");
        assert_eq!(
            pair_id("Wie lange?", "Zwei Tage."),
            "3e6dec1476f1775b683c614e20653e51"
        );
    }
}
