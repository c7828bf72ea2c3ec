//! RDFa (Lite, plus `prefix` and CURIEs) read into a [`Graph`]: `vocab`
//! sets the vocabulary of terms below it, `prefix` declares CURIE prefixes,
//! `typeof` starts an item (a property of the enclosing item when the same
//! element has `property`), `property` adds a value to the enclosing item:
//! the `content` attribute, else a link target, else the element's text.

use std::collections::HashMap;
use std::rc::Rc;

use scraper::{ElementRef, Html};

use super::graph::{Graph, Item, Value, local_name};
use super::text::element_text;

const MAX_DEPTH: usize = 256;

#[derive(Clone, Default)]
struct Context {
    vocab: Option<Rc<str>>,
    prefixes: Rc<HashMap<String, String>>,
    subject: Option<usize>,
}

impl Context {
    /// A term, CURIE or IRI as a schema.org local name (or the full IRI for
    /// other vocabularies).
    fn expand(&self, term: &str) -> String {
        if term.starts_with("http://") || term.starts_with("https://") {
            return local_name(term).to_string();
        }
        if let Some((prefix, local)) = term.split_once(':') {
            if let Some(iri) = self.prefixes.get(prefix) {
                return local_name(&format!("{iri}{local}")).to_string();
            }
            return local_name(term).to_string();
        }
        match &self.vocab {
            Some(v) => local_name(&format!("{v}{term}")).to_string(),
            None => term.to_string(),
        }
    }
}

/// Reads every RDFa item of `doc` into `graph`.
pub fn read(doc: &Html, graph: &mut Graph) {
    walk(doc.root_element(), &Context::default(), graph, 0);
}

fn walk(el: ElementRef<'_>, parent: &Context, graph: &mut Graph, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let v = el.value();
    let mut ctx = parent.clone();
    if let Some(vocab) = v.attr("vocab") {
        ctx.vocab = Some(Rc::from(vocab.trim()));
    }
    if let Some(decl) = v.attr("prefix") {
        let mut map = (*ctx.prefixes).clone();
        let mut words = decl.split_whitespace();
        while let (Some(name), Some(iri)) = (words.next(), words.next()) {
            map.insert(name.trim_end_matches(':').to_string(), iri.to_string());
        }
        ctx.prefixes = Rc::new(map);
    }
    let props: Vec<String> = v
        .attr("property")
        .unwrap_or("")
        .split_whitespace()
        .map(|p| ctx.expand(p))
        .collect();
    if let Some(types) = v.attr("typeof") {
        let item = Item {
            types: types.split_whitespace().map(|t| ctx.expand(t)).collect(),
            id: v
                .attr("resource")
                .or_else(|| v.attr("about"))
                .map(str::to_string),
            props: Vec::new(),
        };
        let idx = graph.add(item);
        if let Some(subject) = parent.subject {
            for p in &props {
                graph.items[subject]
                    .props
                    .push((p.clone(), Value::Item(idx)));
            }
        }
        ctx.subject = Some(idx);
    } else if let Some(subject) = parent.subject
        && !props.is_empty()
    {
        let value = match v.attr("content") {
            Some(c) => Value::Text(c.to_string()),
            None => match v.attr("resource") {
                Some(r) => Value::Ref(r.to_string()),
                None => match v.attr("href").or_else(|| v.attr("src")) {
                    Some(link) => Value::Text(link.to_string()),
                    None => Value::Text(element_text(el)),
                },
            },
        };
        for p in props {
            graph.items[subject].props.push((p, value.clone()));
        }
    }
    for child in el.children().filter_map(ElementRef::wrap) {
        walk(child, &ctx, graph, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qas(html: &str) -> Vec<(String, String)> {
        let mut g = Graph::default();
        read(&Html::parse_document(html), &mut g);
        g.pairs()
    }

    #[test]
    fn vocab_and_typeof() {
        let html = r#"<body vocab="https://schema.org/" typeof="FAQPage">
          <div property="mainEntity" typeof="Question">
            <h2 property="name">Is it free?</h2>
            <div property="acceptedAnswer" typeof="Answer">
              <div property="text"><p>Yes, <a href="/x">mostly</a>.</p><ul><li>a</li><li>b</li></ul></div>
            </div>
          </div></body>"#;
        assert_eq!(
            qas(html),
            [("Is it free?".into(), "Yes, mostly.\na\nb".into())]
        );
    }

    #[test]
    fn prefixes_and_curies() {
        let html = r#"<div prefix="s: http://schema.org/" typeof="s:FAQPage">
          <div property="s:mainEntity" typeof="s:Question">
            <span property="s:name">Q?</span>
            <div property="s:acceptedAnswer" typeof="s:Answer"><span property="s:text" content="A."></span></div>
          </div></div>"#;
        assert_eq!(qas(html), [("Q?".into(), "A.".into())]);
    }

    #[test]
    fn other_vocabularies_are_not_schema_org() {
        let html = r#"<div vocab="http://example.org/" typeof="FAQPage"></div>"#;
        let doc = Html::parse_document(html);
        let mut g = Graph::default();
        read(&doc, &mut g);
        assert_eq!(g.items[0].types, ["http://example.org/FAQPage"]);
    }
}
