//! The schema.org item graph every markup is read into, and the walk from
//! `FAQPage` to its questions and answers.
//!
//! JSON-LD, microdata and RDFa each build a [`Graph`]: items with types and
//! properties whose values are text, nested items or `@id` references. Types
//! and property names are reduced to their schema.org local names
//! (`https://schema.org/FAQPage`, `schema:FAQPage` and `FAQPage` are one
//! type), so one walk serves the three syntaxes.

use std::collections::HashMap;

/// A property value.
#[derive(Clone, Debug)]
pub enum Value {
    /// Text as found (may hold HTML, for JSON-LD).
    Text(String),
    /// An item of the same graph.
    Item(usize),
    /// A reference to an item by `@id`.
    Ref(String),
}

/// One schema.org item.
#[derive(Clone, Debug, Default)]
pub struct Item {
    pub types: Vec<String>,
    pub id: Option<String>,
    pub props: Vec<(String, Value)>,
}

impl Item {
    pub fn has_type(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }

    pub fn values<'a>(&'a self, prop: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.props
            .iter()
            .filter(move |(p, _)| p == prop)
            .map(|(_, v)| v)
    }
}

/// The items of one markup syntax on one page.
#[derive(Debug, Default)]
pub struct Graph {
    pub items: Vec<Item>,
}

/// The local name of a schema.org type or property IRI (or CURIE).
pub fn local_name(iri: &str) -> &str {
    let s = iri.trim();
    for prefix in [
        "http://schema.org/",
        "https://schema.org/",
        "http://www.schema.org/",
        "https://www.schema.org/",
        "schema:",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.trim_matches('/');
        }
    }
    s
}

/// What the walk looks for, beyond `FAQPage` and `acceptedAnswer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkOptions {
    /// Also read `QAPage` (Q&A forums), as WebFAQ does not by default.
    pub qa_page: bool,
    /// Use the first `suggestedAnswer` of a question with no accepted one.
    pub suggested_answer: bool,
}

/// A question and its answer as found in the markup (text not yet cleaned).
#[derive(Clone, Debug, PartialEq)]
pub struct RawQa {
    pub question: String,
    pub answer: String,
}

/// A question the walk had to skip, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub question: Option<String>,
    pub reason: String,
}

impl Graph {
    pub fn add(&mut self, item: Item) -> usize {
        self.items.push(item);
        self.items.len() - 1
    }

    fn ids(&self) -> HashMap<&str, usize> {
        let mut ids = HashMap::new();
        for (i, item) in self.items.iter().enumerate() {
            if let Some(id) = &item.id {
                // The first definition wins; later mentions with content are
                // usually the same node repeated.
                ids.entry(id.as_str()).or_insert(i);
            }
        }
        ids
    }

    fn resolve<'a>(&'a self, v: &'a Value, ids: &HashMap<&str, usize>) -> Option<&'a Item> {
        match v {
            Value::Item(i) => self.items.get(*i),
            Value::Ref(id) => ids.get(id.as_str()).and_then(|i| self.items.get(*i)),
            Value::Text(_) => None,
        }
    }

    /// The first text of `prop`, following one level of item nesting for
    /// values given as items (`"acceptedAnswer": {"text": ...}`).
    fn text<'a>(&'a self, item: &'a Item, prop: &'a str) -> Option<&'a str> {
        item.values(prop).find_map(|v| match v {
            Value::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
            _ => None,
        })
    }

    fn answer_text<'a>(
        &'a self,
        q: &'a Item,
        prop: &'a str,
        ids: &HashMap<&str, usize>,
    ) -> Option<&'a str> {
        q.values(prop).find_map(|v| match v {
            Value::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
            other => self
                .resolve(other, ids)
                .and_then(|a| self.text(a, "text").or_else(|| self.text(a, "name"))),
        })
    }

    /// Questions and answers of every `FAQPage` (and `QAPage` if asked) in
    /// the graph, in document order, and the questions skipped with reasons.
    pub fn faqs(&self, opts: WalkOptions) -> (Vec<RawQa>, Vec<Skipped>) {
        let ids = self.ids();
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for page in &self.items {
            let is_faq = page.has_type("FAQPage") || (opts.qa_page && page.has_type("QAPage"));
            if !is_faq {
                continue;
            }
            for v in page.values("mainEntity") {
                let Some(q) = self.resolve(v, &ids) else {
                    if let Value::Ref(id) = v {
                        skipped.push(Skipped {
                            question: None,
                            reason: format!(
                                "mainEntity refers to `{id}`, which is not on the page"
                            ),
                        });
                    }
                    continue;
                };
                if !q.types.is_empty() && !q.has_type("Question") {
                    continue;
                }
                let Some(question) = self.text(q, "name").or_else(|| self.text(q, "text")) else {
                    skipped.push(Skipped {
                        question: None,
                        reason: "Question without a name".into(),
                    });
                    continue;
                };
                let answer = self.answer_text(q, "acceptedAnswer", &ids).or_else(|| {
                    opts.suggested_answer
                        .then(|| self.answer_text(q, "suggestedAnswer", &ids))
                        .flatten()
                });
                match answer {
                    Some(answer) => out.push(RawQa {
                        question: question.to_string(),
                        answer: answer.to_string(),
                    }),
                    None => skipped.push(Skipped {
                        question: Some(question.to_string()),
                        reason: "Question without an acceptedAnswer text".into(),
                    }),
                }
            }
        }
        (out, skipped)
    }
}

#[cfg(test)]
impl Graph {
    /// The (question, answer) pairs under default options, for tests.
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        self.faqs(WalkOptions::default())
            .0
            .into_iter()
            .map(|q| (q.question, q.answer))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn local_names_ignore_the_schema_org_spelling() {
        assert_eq!(local_name("https://schema.org/FAQPage"), "FAQPage");
        assert_eq!(local_name("http://schema.org/Question/"), "Question");
        assert_eq!(local_name("schema:name"), "name");
        assert_eq!(local_name("Answer"), "Answer");
    }

    #[test]
    fn walks_nested_and_referenced_questions() {
        let mut g = Graph::default();
        let a = g.add(Item {
            types: vec!["Answer".into()],
            props: vec![("text".into(), text("Yes."))],
            ..Item::default()
        });
        let q1 = g.add(Item {
            types: vec!["Question".into()],
            props: vec![
                ("name".into(), text("Q1?")),
                ("acceptedAnswer".into(), Value::Item(a)),
            ],
            ..Item::default()
        });
        g.add(Item {
            types: vec!["Question".into()],
            id: Some("#q2".into()),
            props: vec![
                ("name".into(), text("Q2?")),
                ("acceptedAnswer".into(), text("Plain.")),
            ],
        });
        let no_answer = g.add(Item {
            types: vec!["Question".into()],
            props: vec![("name".into(), text("Q3?"))],
            ..Item::default()
        });
        g.add(Item {
            types: vec!["WebPage".into(), "FAQPage".into()],
            props: vec![
                ("mainEntity".into(), Value::Item(q1)),
                ("mainEntity".into(), Value::Ref("#q2".into())),
                ("mainEntity".into(), Value::Item(no_answer)),
                ("mainEntity".into(), Value::Ref("#missing".into())),
            ],
            ..Item::default()
        });
        let (qas, skipped) = g.faqs(WalkOptions::default());
        assert_eq!(
            qas.iter()
                .map(|q| (q.question.as_str(), q.answer.as_str()))
                .collect::<Vec<_>>(),
            [("Q1?", "Yes."), ("Q2?", "Plain.")]
        );
        assert_eq!(skipped.len(), 2);
        assert!(skipped[1].reason.contains("#missing"));
    }

    #[test]
    fn qa_pages_and_suggested_answers_only_when_asked() {
        let mut g = Graph::default();
        let a = g.add(Item {
            types: vec!["Answer".into()],
            props: vec![("text".into(), text("Maybe."))],
            ..Item::default()
        });
        let q = g.add(Item {
            types: vec!["Question".into()],
            props: vec![
                ("name".into(), text("Q?")),
                ("suggestedAnswer".into(), Value::Item(a)),
            ],
            ..Item::default()
        });
        g.add(Item {
            types: vec!["QAPage".into()],
            props: vec![("mainEntity".into(), Value::Item(q))],
            ..Item::default()
        });
        assert!(g.faqs(WalkOptions::default()).0.is_empty());
        let opts = WalkOptions {
            qa_page: true,
            suggested_answer: true,
        };
        assert_eq!(g.faqs(opts).0.len(), 1);
    }
}
