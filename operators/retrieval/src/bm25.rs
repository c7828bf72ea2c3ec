//! BM25 over tantivy indexes: one index directory per language, documents
//! added as pre-tokenized text (the [`crate::analysis`] analyzers), scored
//! with Lucene's BM25 at any `k1` and `b`.
//!
//! tantivy holds the postings, the term dictionary and the segments that let
//! a new release be added without rebuilding; scoring is done here, term at a
//! time over the postings, because tantivy's own BM25 has `k1 = 1.2`,
//! `b = 0.75` built in and a lossy one-byte document length. Each document
//! carries three fast fields: `ord` (its row in the caller's document
//! table), `len` (its exact token count) and `hash` (of its text, so
//! duplicates of a positive can be skipped).
//!
//! Statistics are index-wide: `N` and `avgdl` over every segment, a term's
//! document frequency summed over segments. So scores equal a single
//! index's over the same documents, however many releases they came in.
//!
//! Lucene's formula (8.0 and later, and `bm25s`' `lucene` method):
//! `score(q, d) = Σ_t∈q idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl))`
//! with `idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))`; a term repeated in
//! the query counts once per occurrence.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tantivy::index::InvertedIndexReader;
use tantivy::postings::TermInfo;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{Index, TantivyDocument, Term};

/// BM25's free parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    /// Pyserini's defaults, which WebFAQ used.
    fn default() -> Self {
        Self {
            k1: default_k1(),
            b: default_b(),
        }
    }
}

/// Pyserini's `k1` (the default of operators' params).
pub fn default_k1() -> f32 {
    0.9
}

/// Pyserini's `b` (the default of operators' params).
pub fn default_b() -> f32 {
    0.4
}

/// What went wrong with an index, as text for the caller's error type.
pub type IndexResult<T> = std::result::Result<T, String>;

fn err(what: &str) -> impl Fn(tantivy::TantivyError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

struct Fields {
    text: Field,
    ord: Field,
    len: Field,
    hash: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_index_option(IndexRecordOption::WithFreqs)
        .set_fieldnorms(false);
    let text = b.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    let fast = NumericOptions::default().set_fast();
    let ord = b.add_u64_field("ord", fast.clone());
    let len = b.add_u64_field("len", fast.clone());
    let hash = b.add_u64_field("hash", fast);
    (
        b.build(),
        Fields {
            text,
            ord,
            len,
            hash,
        },
    )
}

fn fields_of(schema: &Schema) -> IndexResult<Fields> {
    let get = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| format!("the index has no `{name}` field: not a dflow BM25 index"))
    };
    Ok(Fields {
        text: get("text")?,
        ord: get("ord")?,
        len: get("len")?,
        hash: get("hash")?,
    })
}

/// A document to index.
pub struct Doc {
    /// The caller's row number for this document.
    pub ord: u64,
    pub tokens: Vec<String>,
    /// A hash of the document's text.
    pub hash: u64,
}

/// A 64-bit hash of a text (for "same text as the positive").
pub fn text_hash(text: &str) -> u64 {
    let h = blake3::hash(text.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// Makes `dir` hold the index in `prior` (if any) plus `docs`, as one new
/// segment. `prior` is not modified: its files are hard-linked (copied
/// where links are not possible) and tantivy only ever adds files and
/// replaces its meta files by rename.
pub fn extend_index(dir: &Path, prior: Option<&Path>, docs: Vec<Doc>) -> IndexResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if let Some(prior) = prior {
        link_files(prior, dir)?;
    }
    let index = if prior.is_some() {
        Index::open_in_dir(dir).map_err(err("opening the earlier BM25 index"))?
    } else {
        Index::create_in_dir(dir, schema().0).map_err(err("creating a BM25 index"))?
    };
    if docs.is_empty() {
        return Ok(());
    }
    let f = fields_of(&index.schema())?;
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, 64 << 20)
        .map_err(err("opening the BM25 index writer"))?;
    // Segments stay as written: old ones are shared with earlier releases.
    writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    for d in docs {
        let mut doc = TantivyDocument::new();
        let len = d.tokens.len() as u64;
        let tokens = d
            .tokens
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect();
        doc.add_pre_tokenized_text(
            f.text,
            PreTokenizedString {
                text: String::new(),
                tokens,
            },
        );
        doc.add_u64(f.ord, d.ord);
        doc.add_u64(f.len, len);
        doc.add_u64(f.hash, d.hash);
        writer
            .add_document(doc)
            .map_err(err("adding a document to the BM25 index"))?;
    }
    writer.commit().map_err(err("committing the BM25 index"))?;
    writer
        .wait_merging_threads()
        .map_err(err("closing the BM25 index writer"))?;
    Ok(())
}

fn link_files(from: &Path, to: &Path) -> IndexResult<()> {
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".tantivy-") && name != ".managed.json" {
            continue; // lock files
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// One segment, with its per-document values in plain arrays.
struct Segment {
    postings: Arc<InvertedIndexReader>,
    ord: Vec<u64>,
    hash: Vec<u64>,
    /// `k1 · (1 − b + b · len / avgdl)` per document.
    norm: Vec<f32>,
}

/// A BM25 index opened for searching.
pub struct Searcher {
    segments: Vec<Segment>,
    text: Field,
    docs: u64,
}

/// A retrieved document.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub ord: u64,
    pub score: f32,
}

/// Per-thread scoring buffers.
#[derive(Default)]
pub struct Scratch {
    acc: Vec<Vec<f32>>,
    touched: Vec<Vec<u32>>,
}

/// What a query is searched for besides its top k.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exclude {
    /// Skip this document, and report its score (the positive).
    pub ord: Option<u64>,
    /// Skip documents whose text hash is this (copies of the positive).
    pub hash: Option<u64>,
}

impl Searcher {
    pub fn open(dir: &Path, params: Bm25Params) -> IndexResult<Self> {
        let index = Index::open_in_dir(dir).map_err(err("opening the BM25 index"))?;
        let f = fields_of(&index.schema())?;
        let reader = index.reader().map_err(err("reading the BM25 index"))?;
        let searcher = reader.searcher();
        let mut raw = Vec::new();
        let (mut docs, mut tokens) = (0u64, 0u64);
        for seg in searcher.segment_readers() {
            let ff = seg.fast_fields();
            let col = |name: &str| ff.u64(name).map_err(err("reading a fast field"));
            let (ord_c, len_c, hash_c) = (col("ord")?, col("len")?, col("hash")?);
            let n = seg.max_doc();
            let mut ord = Vec::with_capacity(n as usize);
            let mut len = Vec::with_capacity(n as usize);
            let mut hash = Vec::with_capacity(n as usize);
            for d in 0..n {
                ord.push(ord_c.first(d).unwrap_or(u64::MAX));
                let l = len_c.first(d).unwrap_or(0);
                tokens += l;
                len.push(l);
                hash.push(hash_c.first(d).unwrap_or(0));
            }
            docs += u64::from(n);
            let postings = seg
                .inverted_index(f.text)
                .map_err(err("reading the BM25 postings"))?;
            raw.push((postings, ord, len, hash));
        }
        let avgdl = if docs == 0 {
            1.0
        } else {
            (tokens as f64 / docs as f64) as f32
        };
        let Bm25Params { k1, b } = params;
        let segments = raw
            .into_iter()
            .map(|(postings, ord, len, hash)| Segment {
                postings,
                ord,
                hash,
                norm: len
                    .iter()
                    .map(|&l| k1 * (1.0 - b + b * l as f32 / avgdl.max(f32::MIN_POSITIVE)))
                    .collect(),
            })
            .collect();
        Ok(Self {
            segments,
            text: f.text,
            docs,
        })
    }

    pub fn docs(&self) -> u64 {
        self.docs
    }

    /// The best `k` documents for the query terms `tokens` (best first,
    /// ties by lower ord), skipping what `exclude` names, and the score of
    /// `exclude.ord` (0 when it shares no term with the query).
    ///
    /// Term at a time: each term's postings are read a block (128
    /// documents) at a time into an accumulator per segment, then the
    /// touched documents go through a bounded heap.
    pub fn search(
        &self,
        tokens: &[String],
        k: usize,
        exclude: Exclude,
        scratch: &mut Scratch,
    ) -> IndexResult<(Vec<Hit>, f32)> {
        let io = |e: std::io::Error| format!("reading the BM25 index: {e}");
        let mut counts: BTreeMap<&str, f32> = BTreeMap::new();
        for t in tokens {
            *counts.entry(t.as_str()).or_default() += 1.0;
        }
        // Each term looked up once per segment: its document frequency over
        // the whole index gives the weight, its postings the scores.
        let mut terms: Vec<(f32, Vec<Option<TermInfo>>)> = Vec::with_capacity(counts.len());
        for (t, n) in counts {
            let term = Term::from_field_text(self.text, t);
            let infos = self
                .segments
                .iter()
                .map(|s| s.postings.get_term_info(&term).map_err(io))
                .collect::<IndexResult<Vec<_>>>()?;
            let df: u64 = infos.iter().flatten().map(|i| u64::from(i.doc_freq)).sum();
            if df > 0 {
                terms.push((n * idf(self.docs, df), infos));
            }
        }
        scratch.acc.resize_with(self.segments.len(), Vec::new);
        scratch.touched.resize_with(self.segments.len(), Vec::new);
        let mut top = TopK::new(k);
        let mut excluded_score = 0.0f32;
        for (si, seg) in self.segments.iter().enumerate() {
            let acc = &mut scratch.acc[si];
            let touched = &mut scratch.touched[si];
            acc.resize(seg.norm.len(), 0.0);
            touched.clear();
            for (w, infos) in &terms {
                let Some(info) = &infos[si] else { continue };
                let mut block = seg
                    .postings
                    .read_block_postings_from_terminfo(info, IndexRecordOption::WithFreqs)
                    .map_err(io)?;
                loop {
                    let len = block.block_len();
                    if len == 0 {
                        break;
                    }
                    for (&doc, &tf) in block.docs().iter().zip(block.freqs()).take(len) {
                        let d = doc as usize;
                        let tf = tf as f32;
                        if acc[d] == 0.0 {
                            touched.push(doc);
                        }
                        acc[d] += w * tf / (tf + seg.norm[d]);
                    }
                    block.advance();
                }
            }
            for &doc in touched.iter() {
                let d = doc as usize;
                let score = std::mem::take(&mut acc[d]);
                let ord = seg.ord[d];
                if exclude.ord == Some(ord) {
                    excluded_score = score;
                } else if exclude.hash != Some(seg.hash[d]) {
                    top.offer(Hit { ord, score });
                }
            }
        }
        Ok((top.into_sorted(), excluded_score))
    }
}

/// The best `k` hits seen so far: candidates at or above the current
/// floor are buffered, and every `k` more of them the buffer is cut back to
/// the best `k` (a linear-time selection), which raises the floor. Cheaper
/// than a heap when many documents arrive in no order of score.
struct TopK {
    k: usize,
    buf: Vec<Hit>,
    /// The k-th best score once known; lower scores cannot enter (an equal
    /// one still can, by a lower ord).
    floor: f32,
}

/// Best first: higher score, then lower ord.
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.ord.cmp(&b.ord))
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            buf: Vec::with_capacity(2 * k.min(1 << 16)),
            floor: f32::NEG_INFINITY,
        }
    }

    fn offer(&mut self, hit: Hit) {
        if self.k == 0 || hit.score < self.floor {
            return;
        }
        self.buf.push(hit);
        if self.buf.len() >= 2 * self.k {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, best_first);
            self.buf.truncate(self.k);
        }
        if self.buf.len() == self.k {
            self.floor = self
                .buf
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
        }
    }

    fn into_sorted(mut self) -> Vec<Hit> {
        self.cut();
        self.buf.sort_unstable_by(best_first);
        self.buf
    }
}

/// Lucene's BM25 idf.
pub fn idf(docs: u64, df: u64) -> f32 {
    let (n, df) = (docs as f64, df as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// Lucene's BM25, written out directly over token lists, in f64.
    fn reference(corpus: &[Vec<String>], query: &[String], p: Bm25Params) -> Vec<f64> {
        let n = corpus.len() as f64;
        let avgdl = corpus.iter().map(Vec::len).sum::<usize>() as f64 / n;
        corpus
            .iter()
            .map(|d| {
                query
                    .iter()
                    .map(|t| {
                        let df = corpus.iter().filter(|c| c.contains(t)).count() as f64;
                        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                        let tf = d.iter().filter(|x| *x == t).count() as f64;
                        let norm = f64::from(p.k1)
                            * (1.0 - f64::from(p.b) + f64::from(p.b) * d.len() as f64 / avgdl);
                        idf * tf / (tf + norm)
                    })
                    .sum()
            })
            .collect()
    }

    const CORPUS: &[&str] = &[
        "how long does delivery take to germany",
        "delivery is free above fifty euros",
        "you can return any item within thirty days of delivery delivery",
        "our bakery opens at seven every morning",
        "the sourdough bread is baked every morning with rye and wheat",
        "gift cards can be used online and in the shop",
        "we deliver cakes on weekends only",
        "returns of cakes are not possible",
        "",
    ];

    fn build(dir: &Path, parts: &[&[&str]]) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        let mut prior: Option<std::path::PathBuf> = None;
        for (i, part) in parts.iter().enumerate() {
            let d = dir.join(format!("u{i}"));
            let docs = part
                .iter()
                .map(|t| {
                    all.push(toks(t));
                    Doc {
                        ord: all.len() as u64 - 1,
                        tokens: toks(t),
                        hash: text_hash(t),
                    }
                })
                .collect();
            extend_index(&d, prior.as_deref(), docs).expect("bm25");
            prior = Some(d);
        }
        all
    }

    fn check_against_reference(parts: &[&[&str]]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus = build(dir.path(), parts);
        let last = dir.path().join(format!("u{}", parts.len() - 1));
        for p in [Bm25Params::default(), Bm25Params { k1: 1.5, b: 0.75 }] {
            let s = Searcher::open(&last, p).expect("bm25");
            assert_eq!(s.docs(), corpus.len() as u64);
            for q in [
                "delivery",
                "delivery of cakes cakes",
                "every morning bread",
                "nothing",
            ] {
                let q = toks(q);
                let expect = reference(&corpus, &q, p);
                let (hits, _) = s
                    .search(
                        &q,
                        corpus.len(),
                        Exclude::default(),
                        &mut Scratch::default(),
                    )
                    .expect("bm25");
                for h in &hits {
                    let want = expect[h.ord as usize];
                    assert!(
                        (f64::from(h.score) - want).abs() < 1e-5,
                        "{q:?} doc {}: {} vs {want}",
                        h.ord,
                        h.score
                    );
                }
                // Every document with a positive score is returned, best first.
                let positive = expect.iter().filter(|s| **s > 0.0).count();
                assert_eq!(hits.len(), positive, "{q:?}");
                assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            }
        }
    }

    #[test]
    fn scores_equal_lucene_bm25_formula() {
        check_against_reference(&[CORPUS]);
    }

    #[test]
    fn segments_added_later_score_as_one_index() {
        let (a, b) = CORPUS.split_at(5);
        check_against_reference(&[a, b]);
        let (b1, b2) = b.split_at(2);
        check_against_reference(&[a, b1, b2]);
    }

    #[test]
    fn extending_leaves_the_earlier_index_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = CORPUS.split_at(5);
        build(dir.path(), &[a, b]);
        let first = Searcher::open(&dir.path().join("u0"), Bm25Params::default()).expect("bm25");
        assert_eq!(first.docs(), 5);
        let both = Searcher::open(&dir.path().join("u1"), Bm25Params::default()).expect("bm25");
        assert_eq!(both.docs(), CORPUS.len() as u64);
    }

    #[test]
    fn top_k_excludes_the_positive_and_its_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts: &[&str] = &[
            "free delivery",
            "free delivery",
            "delivery takes two days",
            "free gifts",
        ];
        build(dir.path(), &[parts]);
        let s = Searcher::open(&dir.path().join("u0"), Bm25Params::default()).expect("bm25");
        let q = toks("free delivery");
        let exclude = Exclude {
            ord: Some(0),
            hash: Some(text_hash("free delivery")),
        };
        let (hits, positive) = s
            .search(&q, 2, exclude, &mut Scratch::default())
            .expect("bm25");
        assert!(positive > 0.0);
        let ords: Vec<u64> = hits.iter().map(|h| h.ord).collect();
        assert_eq!(ords.len(), 2);
        assert!(!ords.contains(&0) && !ords.contains(&1), "{ords:?}");
        // k = 0 still reports the positive's score.
        let (none, p2) = s
            .search(&q, 0, exclude, &mut Scratch::default())
            .expect("bm25");
        assert!(none.is_empty());
        assert_eq!(p2, positive);
    }

    #[test]
    fn idf_matches_lucene() {
        assert!((idf(10, 1) - (1.0f64 + 9.5 / 1.5).ln() as f32).abs() < 1e-6);
        // A term in every document still has a small positive idf.
        assert!(idf(10, 10) > 0.0);
    }
}
