//! `extract` throughput on real FAQ pages, beside plain HTML tokenisation of
//! the same bytes (html5ever's tokenizer with a sink that drops every token:
//! the floor for anything that must read the HTML) and full DOM parsing
//! (html5ever's tree builder via scraper). One core.
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/extract_pages ../shared/data/faq-pages [ROUNDS]
//!
//! `benches/extract.sh` runs it beside Python extruct on the same pages.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dflow_op_web::charset::decode_html;
use dflow_op_web::extract::{ExtractParams, Reader, extract_page, extract_page_with};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Token, TokenSink, TokenSinkResult, Tokenizer};

struct CountingSink(Cell<usize>);

impl TokenSink for CountingSink {
    type Handle = ();
    fn process_token(&self, _token: Token, _line: u64) -> TokenSinkResult<()> {
        self.0.set(self.0.get() + 1);
        TokenSinkResult::Continue
    }
}

fn tokenize(html: &str) -> usize {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tok = Tokenizer::new(CountingSink(Cell::new(0)), Default::default());
    let _ = tok.feed(&input);
    tok.end();
    tok.sink.0.get()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/faq-pages".into()),
    );
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    let pages: Vec<String> = paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| decode_html(&b, None).text.into_owned())
        .collect();
    let bytes: usize = pages.iter().map(String::len).sum();
    let params = ExtractParams::default();
    let report = |name: &str, f: &dyn Fn(&str) -> usize| {
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            n = pages.iter().map(|p| f(p)).sum::<usize>();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:<12} {:>4} pages {:>6.1} MB  best of {rounds}: {:.3} s  {:>7.0} pages/s  {:>6.1} MB/s  ({n} items)",
            pages.len(),
            bytes as f64 / 1e6,
            best,
            pages.len() as f64 / best,
            bytes as f64 / 1e6 / best
        );
    };
    report("tokenize", &tokenize);
    report("parse", &|p| {
        scraper::Html::parse_document(p).tree.nodes().count()
    });
    report("extract", &|p| extract_page(p, &params).faqs.len());
    report("extract-dom", &|p| {
        extract_page_with(p, &params, Reader::Dom).faqs.len()
    });
}
