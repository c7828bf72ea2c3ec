//! `op: clean` — WebFAQ's clean-ups and filters of question–answer pairs,
//! one output partition per input partition.
//!
//! Clean-ups first (prefixes such as `Q:`/`Answer:`, leading numbering,
//! quote pairs around the whole text, emojis), then the filters on the
//! cleaned text: empty question or answer, an answer holding `?`, an answer
//! of 10 or more lines breaks, a question under 10 characters, an answer
//! under 30. `id` is recomputed as md5 hex of `question + " " + answer`
//! after cleaning, as in the released dataset. Dropped rows go to
//! `rejected` as they came in, with the rule that dropped them.

use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use dflow_engine::registry::Registry;
use dflow_engine::{
    InputPort, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use crate::extract::pair_id;
use crate::filter::{filter_ports, write_split};
use dflow_engine::kit::columns::text as text_column;

fn yes() -> bool {
    true
}
fn ten() -> usize {
    10
}
fn thirty() -> usize {
    30
}

/// Params of `op: clean`; the defaults are WebFAQ's.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanParams {
    /// Drop pairs whose question has fewer characters than this.
    #[serde(default = "ten")]
    pub min_question_chars: usize,
    /// Drop pairs whose answer has fewer characters than this.
    #[serde(default = "thirty")]
    pub min_answer_chars: usize,
    /// Drop pairs whose answer has this many line breaks or more.
    #[serde(default = "ten")]
    pub max_answer_newlines: usize,
    /// Drop pairs whose answer contains `?` (usually a question list or a
    /// page fragment, not an answer).
    #[serde(default = "yes")]
    pub drop_answer_with_question_mark: bool,
    /// Strip `Q:`, `Question:`, `A:`, `Answer:` prefixes.
    #[serde(default = "yes")]
    pub strip_prefixes: bool,
    /// Strip leading numbering (`1.`, `2)`, `Q3:`, `#4 -`).
    #[serde(default = "yes")]
    pub strip_numbering: bool,
    /// Strip a pair of quotes around the whole text.
    #[serde(default = "yes")]
    pub strip_quotes: bool,
    /// Remove emojis.
    #[serde(default = "yes")]
    pub strip_emojis: bool,
}

impl Default for CleanParams {
    fn default() -> Self {
        Self {
            min_question_chars: 10,
            min_answer_chars: 30,
            max_answer_newlines: 10,
            drop_answer_with_question_mark: true,
            strip_prefixes: true,
            strip_numbering: true,
            strip_quotes: true,
            strip_emojis: true,
        }
    }
}

/// Which text is being cleaned: prefixes differ.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Question,
    Answer,
}

impl CleanParams {
    fn clean(&self, text: &str, side: Side) -> String {
        let mut s = if self.strip_emojis {
            remove_emojis(text)
        } else {
            text.to_string()
        };
        // Prefixes, numbering and quotes can nest (`1. Q: "Why?"`): strip
        // until nothing changes.
        loop {
            let before = s.len();
            let t = s.trim();
            let mut t = if self.strip_prefixes {
                strip_prefix(t, side)
            } else {
                t
            };
            if self.strip_numbering {
                t = strip_numbering(t);
            }
            if self.strip_quotes {
                t = strip_quotes(t);
            }
            s = t.trim().to_string();
            if s.len() == before {
                return s;
            }
        }
    }

    /// The cleaned pair, or the rule that drops it.
    pub fn apply(
        &self,
        question: &str,
        answer: &str,
    ) -> std::result::Result<(String, String), &'static str> {
        let q = self.clean(question, Side::Question);
        let a = self.clean(answer, Side::Answer);
        if q.is_empty() {
            return Err("empty_question");
        }
        if a.is_empty() {
            return Err("empty_answer");
        }
        if self.drop_answer_with_question_mark && a.contains('?') {
            return Err("answer_contains_question_mark");
        }
        if a.matches('\n').count() >= self.max_answer_newlines {
            return Err("answer_too_many_newlines");
        }
        if q.chars().count() < self.min_question_chars {
            return Err("question_too_short");
        }
        if a.chars().count() < self.min_answer_chars {
            return Err("answer_too_short");
        }
        Ok((q, a))
    }
}

fn strip_prefix(t: &str, side: Side) -> &str {
    let words: &[&str] = match side {
        Side::Question => &["question", "frage", "pregunta", "q"],
        Side::Answer => &["answer", "antwort", "respuesta", "a"],
    };
    for w in words {
        if t.len() > w.len() && t.is_char_boundary(w.len()) && t[..w.len()].eq_ignore_ascii_case(w)
        {
            let rest = t[w.len()..].trim_start_matches(' ');
            if let Some(r) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：')) {
                return r.trim_start();
            }
        }
    }
    t
}

/// `1.`, `1)`, `(1)`, `1 -`, `#1:`, `Q1.`: numbering at the very start,
/// followed by a separator (so `2024 prices` keeps its year).
fn strip_numbering(t: &str) -> &str {
    let mut s = t;
    if let Some(r) = s.strip_prefix('#').or_else(|| s.strip_prefix('(')) {
        s = r;
    } else if let Some(r) = s.strip_prefix(['Q', 'q'])
        && r.starts_with(|c: char| c.is_ascii_digit())
    {
        s = r;
    }
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 3 {
        return t;
    }
    let rest = &s[digits..];
    for sep in [". ", ") ", ": ", " - ", " – ", "- ", ".) "] {
        if let Some(r) = rest.strip_prefix(sep) {
            return r.trim_start();
        }
    }
    for sep in ['.', ')', ':'] {
        if let Some(r) = rest.strip_prefix(sep)
            && !r.starts_with(|c: char| c.is_ascii_digit())
        {
            return r.trim_start();
        }
    }
    t
}

fn strip_quotes(t: &str) -> &str {
    const PAIRS: [(char, char); 7] = [
        ('"', '"'),
        ('\'', '\''),
        ('“', '”'),
        ('„', '“'),
        ('«', '»'),
        ('‘', '’'),
        ('「', '」'),
    ];
    for (open, close) in PAIRS {
        if let Some(inner) = t.strip_prefix(open).and_then(|r| r.strip_suffix(close))
            // Only a pair around the whole text: `"a" and "b"` stays.
            && !inner.contains(open)
            && !inner.contains(close)
        {
            return inner;
        }
    }
    t
}

/// Emoji code points (pictographs, emoticons, transport, flags, dingbats,
/// skin tones, variation selector 16, tag characters).
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF
        | 0x2600..=0x27BF
        | 0x2B00..=0x2BFF
        | 0x231A..=0x231B
        | 0x23E9..=0x23F3
        | 0x23F8..=0x23FA
        | 0xFE0F
        | 0x20E3
        | 0xE0020..=0xE007F)
}

/// Removes emojis and the joiners between them; collapses the spaces they
/// leave.
pub fn remove_emojis(text: &str) -> String {
    if !text.chars().any(is_emoji) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if is_emoji(c) {
            continue;
        }
        // A zero-width joiner inside an emoji sequence goes with it; one in
        // Indic or Persian text stays.
        if c == '\u{200D}'
            && (i > 0 && is_emoji(chars[i - 1]) || chars.get(i + 1).is_some_and(|n| is_emoji(*n)))
        {
            continue;
        }
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out.trim().to_string()
}

pub struct Clean {
    params: CleanParams,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "clean",
        "WebFAQ clean-ups and filters of question-answer pairs; recomputes `id`",
        |p: CleanParams, _ctx| Ok(Arc::new(Clean { params: p }) as Arc<dyn Operator>),
    );
}

/// Replaces the columns named in `replace` of `batch`.
pub(crate) fn with_columns(
    batch: &RecordBatch,
    replace: &[(&str, ArrayRef)],
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let cols = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            replace
                .iter()
                .find(|(n, _)| n == f.name())
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| c.clone())
        })
        .collect();
    Ok(RecordBatch::try_new(schema, cols)?)
}

impl Operator for Clean {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "faqs".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::table(
            "faqs",
            (*dflow_schemas::faqs()).clone(),
        )])
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        filter_ports(inputs, "faqs", |s| Arc::new(s.clone()))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let input = task.table("faqs")?.clone();
        for batch in input.batches(task.batch_size()) {
            let batch = batch?;
            let (qs, as_) = (
                text_column(&batch, "question")?,
                text_column(&batch, "answer")?,
            );
            let mut reasons = Vec::with_capacity(batch.num_rows());
            let (mut ids, mut qo, mut ao) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..batch.num_rows() {
                let q = if qs.is_null(i) { "" } else { qs.value(i) };
                let a = if as_.is_null(i) { "" } else { as_.value(i) };
                match self.params.apply(q, a) {
                    Ok((q, a)) => {
                        ids.push(pair_id(&q, &a));
                        qo.push(q);
                        ao.push(a);
                        reasons.push(None);
                    }
                    Err(rule) => {
                        // Placeholders keep the columns aligned; these rows
                        // are filtered out of `out`.
                        ids.push(String::new());
                        qo.push(String::new());
                        ao.push(String::new());
                        reasons.push(Some(rule.to_string()));
                    }
                }
            }
            let cleaned = with_columns(
                &batch,
                &[
                    ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
                    ("question", Arc::new(StringArray::from(qo))),
                    ("answer", Arc::new(StringArray::from(ao))),
                ],
            )?;
            write_split(task.outputs, &cleaned, &batch, &reasons)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> CleanParams {
        CleanParams::default()
    }

    #[test]
    fn prefixes_numbering_quotes_and_emojis_go() {
        let params = p();
        assert_eq!(
            params.clean("Q: 1. \"How do I book?\" 🚀", Side::Question),
            "How do I book?"
        );
        assert_eq!(
            params.clean("Answer: You book online.", Side::Answer),
            "You book online."
        );
        assert_eq!(
            params.clean("3) Where is it?", Side::Question),
            "Where is it?"
        );
        assert_eq!(
            params.clean("Q12. Where is it?", Side::Question),
            "Where is it?"
        );
        assert_eq!(params.clean("«Où est-ce ?»", Side::Question), "Où est-ce ?");
        assert_eq!(params.clean("Ready 👍🏽 now 👨‍👩‍👧", Side::Answer), "Ready now");
    }

    #[test]
    fn what_is_not_a_prefix_stays() {
        let params = p();
        assert_eq!(
            params.clean("2024 prices: what changed?", Side::Question),
            "2024 prices: what changed?"
        );
        assert_eq!(
            params.clean("1.5 kg or more?", Side::Question),
            "1.5 kg or more?"
        );
        assert_eq!(
            params.clean("Quality: how good?", Side::Question),
            "Quality: how good?"
        );
        assert_eq!(
            params.clean("\"A\" or \"B\"?", Side::Question),
            "\"A\" or \"B\"?"
        );
        // Joiners in Devanagari text are not emoji joiners.
        assert_eq!(remove_emojis("क्‍ष"), "क्‍ष");
    }

    #[test]
    fn filters_name_their_rule() {
        let params = p();
        let long = "This answer is long enough to pass the filter.";
        assert!(params.apply("What is the price?", long).is_ok());
        assert_eq!(params.apply("", long), Err("empty_question"));
        assert_eq!(
            params.apply("What is the price?", "  "),
            Err("empty_answer")
        );
        assert_eq!(params.apply("Short?", long), Err("question_too_short"));
        assert_eq!(
            params.apply("What is the price?", "Ten euros."),
            Err("answer_too_short")
        );
        assert_eq!(
            params.apply(
                "What is the price?",
                "Did you ask about the price? It is ten euros."
            ),
            Err("answer_contains_question_mark")
        );
        let lines = format!("{long}{}", "\nline".repeat(10));
        assert_eq!(
            params.apply("What is the price?", &lines),
            Err("answer_too_many_newlines")
        );
        let nine = format!("{long}{}", "\nline".repeat(9));
        assert!(params.apply("What is the price?", &nine).is_ok());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        // 9 characters, 27 bytes.
        assert_eq!(
            p().apply("日本語の質問です？", "x".repeat(30).as_str()),
            Err("question_too_short")
        );
    }
}
