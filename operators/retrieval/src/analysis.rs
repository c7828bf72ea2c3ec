//! Text analysis for BM25: one analyzer per language.
//!
//! Words are split by Unicode's word boundaries (UAX #29, so combining marks
//! stay in their word: Hindi, Tamil and Thai are not cut at every vowel
//! sign), lower-cased, and stemmed with the Snowball stemmers tantivy ships
//! for 18 languages. Chinese, Japanese, Korean and the Southeast Asian
//! scripts written without spaces get overlapping bigrams of grapheme
//! clusters (as Lucene's `CJKAnalyzer` does), so a query matches without a
//! dictionary segmenter. `whitespace` splits on whitespace and lower-cases,
//! nothing else: the tokenisation `bm25s` comparisons use.

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    Language, LowerCaser, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use unicode_segmentation::UnicodeSegmentation;

/// Which analyzer a BM25 index uses.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AnalyzerChoice {
    /// By the language of the rows: a stemmer where tantivy has one,
    /// character bigrams for CJK and Thai-like scripts, Unicode words
    /// otherwise.
    #[default]
    Auto,
    /// Unicode words, lower-cased, no stemming, in every language.
    Word,
    /// Whitespace-separated tokens, lower-cased (as `bm25s` with a
    /// whitespace splitter).
    Whitespace,
}

/// The analyzer of one language.
pub struct Analyzer {
    kind: Kind,
    text: TextAnalyzer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Words,
    Bigrams,
    Whitespace,
}

/// The Snowball stemmer for an ISO 639-3 (or 639-1) code, if tantivy has one.
fn stemmer_language(lang: &str) -> Option<Language> {
    Some(match lang {
        "ara" | "ar" => Language::Arabic,
        "dan" | "da" => Language::Danish,
        "nld" | "nl" => Language::Dutch,
        "eng" | "en" => Language::English,
        "fin" | "fi" => Language::Finnish,
        "fra" | "fr" => Language::French,
        "deu" | "de" => Language::German,
        "ell" | "el" => Language::Greek,
        "hun" | "hu" => Language::Hungarian,
        "ita" | "it" => Language::Italian,
        "nor" | "nob" | "nno" | "no" | "nb" | "nn" => Language::Norwegian,
        "por" | "pt" => Language::Portuguese,
        "ron" | "ro" => Language::Romanian,
        "rus" | "ru" => Language::Russian,
        "spa" | "es" => Language::Spanish,
        "swe" | "sv" => Language::Swedish,
        "tam" | "ta" => Language::Tamil,
        "tur" | "tr" => Language::Turkish,
        _ => return None,
    })
}

/// Languages written without spaces between words.
fn unspaced(lang: &str) -> bool {
    matches!(
        lang,
        "zho"
            | "zh"
            | "jpn"
            | "ja"
            | "kor"
            | "ko"
            | "tha"
            | "th"
            | "lao"
            | "lo"
            | "khm"
            | "km"
            | "mya"
            | "my"
            | "bod"
            | "bo"
    )
}

/// Characters of the scripts that are bigrammed: Han, Hiragana, Katakana,
/// Hangul, Thai, Lao, Khmer, Myanmar, Tibetan.
fn is_bigram_char(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x0F00..=0x0FFF    // Tibetan
        | 0x1000..=0x109F    // Myanmar
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FA1F  // CJK extensions B–F, compatibility supplement
    )
}

impl Analyzer {
    pub fn new(choice: AnalyzerChoice, lang: &str) -> Self {
        let lang = lang.to_ascii_lowercase();
        match choice {
            AnalyzerChoice::Whitespace => Self {
                kind: Kind::Whitespace,
                text: Self::words(None).text,
            },
            AnalyzerChoice::Word => Self::words(None),
            AnalyzerChoice::Auto if unspaced(&lang) => Self {
                kind: Kind::Bigrams,
                text: Self::words(None).text,
            },
            AnalyzerChoice::Auto => Self::words(stemmer_language(&lang)),
        }
    }

    fn words(stemmer: Option<Language>) -> Self {
        let text = match stemmer {
            Some(l) => TextAnalyzer::builder(UnicodeWords::default())
                .filter(LowerCaser)
                .filter(Stemmer::new(l))
                .build(),
            None => TextAnalyzer::builder(UnicodeWords::default())
                .filter(LowerCaser)
                .build(),
        };
        Self {
            kind: Kind::Words,
            text,
        }
    }

    /// A short name for reports (`words`, `bigrams`, `whitespace`).
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Words => "words",
            Kind::Bigrams => "bigrams",
            Kind::Whitespace => "whitespace",
        }
    }

    /// The terms of `text`, in order, repeated as often as they occur.
    pub fn tokens(&mut self, text: &str) -> Vec<String> {
        match self.kind {
            Kind::Bigrams => return bigram_tokens(text),
            // Python's `str.lower().split()`: Unicode whitespace and the
            // information separators; tantivy's whitespace tokenizer splits
            // on ASCII whitespace only.
            Kind::Whitespace => {
                return text
                    .split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase)
                    .collect();
            }
            Kind::Words => {}
        }
        let mut out = Vec::new();
        let mut stream = self.text.token_stream(text);
        while let Some(t) = stream.next() {
            out.push(t.text.clone());
        }
        out
    }
}

/// A tantivy tokenizer over Unicode word boundaries (words with at least
/// one letter or digit; punctuation and spaces dropped).
#[derive(Clone, Default)]
pub struct UnicodeWords {
    tokens: Vec<Token>,
}

pub struct UnicodeWordStream<'a> {
    tokens: &'a mut Vec<Token>,
    /// One past the current token (0 before the first `advance`).
    next: usize,
}

impl Tokenizer for UnicodeWords {
    type TokenStream<'a> = UnicodeWordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> UnicodeWordStream<'a> {
        self.tokens.clear();
        for (position, (offset, word)) in text.unicode_word_indices().enumerate() {
            self.tokens.push(Token {
                offset_from: offset,
                offset_to: offset + word.len(),
                position,
                text: word.to_string(),
                position_length: 1,
            });
        }
        if self.tokens.is_empty() {
            // `token()` must return something even on an empty stream.
            self.tokens.push(Token::default());
            return UnicodeWordStream {
                next: 1,
                tokens: &mut self.tokens,
            };
        }
        UnicodeWordStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl TokenStream for UnicodeWordStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        let i = self.next.saturating_sub(1);
        &mut self.tokens[i]
    }
}

/// Unspaced scripts: runs of bigrammed graphemes give their overlapping
/// bigrams (a lone grapheme stays a unigram); words of other scripts in
/// between are kept whole, lower-cased.
fn bigram_tokens(text: &str) -> Vec<String> {
    fn flush(run: &mut Vec<&str>, out: &mut Vec<String>) {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|w| w.concat())),
        }
        run.clear();
    }
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for segment in text.split_word_bounds() {
        let first = segment.chars().next().unwrap_or(' ');
        if is_bigram_char(first) {
            run.extend(segment.graphemes(true));
        } else {
            flush(&mut run, &mut out);
            if segment.chars().any(char::is_alphanumeric) {
                out.push(segment.to_lowercase());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(choice: AnalyzerChoice, lang: &str, text: &str) -> Vec<String> {
        Analyzer::new(choice, lang).tokens(text)
    }

    #[test]
    fn english_is_stemmed_and_lowercased() {
        assert_eq!(
            toks(AnalyzerChoice::Auto, "eng", "Running Shoes, cheaply!"),
            ["run", "shoe", "cheapli"]
        );
    }

    #[test]
    fn german_and_russian_stemmers() {
        assert_eq!(toks(AnalyzerChoice::Auto, "deu", "Häuser"), ["haus"]);
        assert_eq!(toks(AnalyzerChoice::Auto, "rus", "доставки"), ["доставк"]);
    }

    #[test]
    fn languages_without_stemmer_get_words() {
        let a = Analyzer::new(AnalyzerChoice::Auto, "pol");
        assert_eq!(a.describe(), "words");
        assert_eq!(
            toks(AnalyzerChoice::Auto, "pol", "Jak długo trwa dostawa?"),
            ["jak", "długo", "trwa", "dostawa"]
        );
    }

    #[test]
    fn cjk_becomes_bigrams_latin_stays_whole() {
        assert_eq!(
            toks(AnalyzerChoice::Auto, "zho", "配送时间 iPhone 是"),
            ["配送", "送时", "时间", "iphone", "是"]
        );
        // Japanese mixing kana and Latin in one word.
        assert_eq!(
            toks(AnalyzerChoice::Auto, "jpn", "返品はOK"),
            ["返品", "品は", "ok"]
        );
        // Thai tone marks stay on their consonant.
        assert_eq!(
            toks(AnalyzerChoice::Auto, "tha", "ส่งฟรี"),
            ["ส่ง", "งฟ", "ฟรี"]
        );
        // Korean: bigrams within each spaced word.
        assert_eq!(
            toks(AnalyzerChoice::Auto, "kor", "배송 기간"),
            ["배송", "기간"]
        );
    }

    #[test]
    fn devanagari_words_keep_their_vowel_signs() {
        assert_eq!(
            toks(AnalyzerChoice::Auto, "hin", "डिलीवरी कितने दिन?"),
            ["डिलीवरी", "कितने", "दिन"]
        );
    }

    #[test]
    fn whitespace_keeps_punctuation() {
        assert_eq!(
            toks(AnalyzerChoice::Whitespace, "eng", "What's the  Time?"),
            ["what's", "the", "time?"]
        );
        // Unicode spaces split too, as in Python's `str.split()`.
        assert_eq!(
            toks(AnalyzerChoice::Whitespace, "ell", "ΟΔΟΣ\u{a0}Α\u{2003}β"),
            ["οδος", "α", "β"]
        );
    }
}
