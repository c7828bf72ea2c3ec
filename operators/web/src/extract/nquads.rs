//! N-Quads (the Web Data Commons schema.org dumps WebFAQ 1 read) into one
//! [`Graph`] per page: the fourth term of each quad is the page URL.

use std::collections::{BTreeMap, HashMap};

use super::graph::{Graph, Item, Value, local_name};

const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

/// One RDF term.
#[derive(Debug, PartialEq)]
enum Term {
    Iri(String),
    Blank(String),
    Literal(String),
}

/// Reads N-Quads text: the graph of each page, and the lines that could
/// not be read (1-based line number and reason).
pub fn read(text: &str) -> (BTreeMap<String, Graph>, Vec<(usize, String)>) {
    let mut pages: BTreeMap<String, (Graph, HashMap<String, usize>)> = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (s, p, o, g) = match parse_quad(line) {
            Ok(q) => q,
            Err(e) => {
                errors.push((n + 1, e));
                continue;
            }
        };
        let (Term::Iri(p), Some(Term::Iri(g))) = (p, g) else {
            errors.push((n + 1, "predicate and graph must be IRIs".into()));
            continue;
        };
        let subject = match s {
            Term::Iri(x) | Term::Blank(x) => x,
            Term::Literal(_) => {
                errors.push((n + 1, "a literal cannot be a subject".into()));
                continue;
            }
        };
        let (graph, ids) = pages.entry(g).or_default();
        let idx = *ids.entry(subject.clone()).or_insert_with(|| {
            graph.add(Item {
                id: Some(subject.clone()),
                ..Item::default()
            })
        });
        let item = &mut graph.items[idx];
        if p == RDF_TYPE {
            if let Term::Iri(t) = o {
                item.types.push(local_name(&t).to_string());
            }
            continue;
        }
        let value = match o {
            Term::Literal(l) => Value::Text(l),
            Term::Iri(x) | Term::Blank(x) => Value::Ref(x),
        };
        item.props.push((local_name(&p).to_string(), value));
    }
    let pages = pages.into_iter().map(|(k, (g, _))| (k, g)).collect();
    (pages, errors)
}

type Quad = (Term, Term, Term, Option<Term>);

fn parse_quad(line: &str) -> Result<Quad, String> {
    let mut rest = line;
    let s = term(&mut rest)?;
    let p = term(&mut rest)?;
    let o = term(&mut rest)?;
    let g = if rest.trim_start().starts_with('.') {
        None
    } else {
        Some(term(&mut rest)?)
    };
    if !rest.trim_start().starts_with('.') {
        return Err("a quad must end with `.`".into());
    }
    Ok((s, p, o, g))
}

fn term(rest: &mut &str) -> Result<Term, String> {
    let s = rest.trim_start();
    if let Some(r) = s.strip_prefix('<') {
        let end = r.find('>').ok_or("unterminated IRI")?;
        *rest = &r[end + 1..];
        return Ok(Term::Iri(r[..end].to_string()));
    }
    if let Some(r) = s.strip_prefix("_:") {
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        *rest = &r[end..];
        return Ok(Term::Blank(format!("_:{}", &r[..end])));
    }
    if let Some(r) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let Some((i, c)) = chars.next() else {
                return Err("unterminated literal".into());
            };
            match c {
                '"' => break i,
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some(u @ ('u' | 'U')) => {
                        let len = if u == 'u' { 4 } else { 8 };
                        let hex: String = (0..len)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape \\{u}{hex}"))?;
                        out.push(ch);
                    }
                    Some(e) => out.push(e),
                    None => return Err("unterminated literal".into()),
                },
                c => out.push(c),
            }
        };
        let mut after = &r[end + 1..];
        // Language tag or datatype.
        if let Some(t) = after.strip_prefix('@') {
            let e = t.find(char::is_whitespace).unwrap_or(t.len());
            after = &t[e..];
        } else if let Some(t) = after.strip_prefix("^^<") {
            let e = t.find('>').ok_or("unterminated datatype IRI")?;
            after = &t[e + 1..];
        }
        *rest = after;
        return Ok(Term::Literal(out));
    }
    Err(format!(
        "unexpected `{}`",
        s.chars().take(12).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::graph::WalkOptions;
    use super::*;

    #[test]
    fn faq_pages_from_quads() {
        let nq = r#"_:b0 <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://schema.org/FAQPage> <http://a.com/faq> .
_:b0 <http://schema.org/mainEntity> _:b1 <http://a.com/faq> .
_:b1 <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://schema.org/Question> <http://a.com/faq> .
_:b1 <http://schema.org/name> "Qu'est-ce que \"X\" ?"@fr <http://a.com/faq> .
_:b1 <http://schema.org/acceptedAnswer> _:b2 <http://a.com/faq> .
_:b2 <http://schema.org/text> "Une r\u00E9ponse.\nDeux lignes."^^<http://www.w3.org/2001/XMLSchema#string> <http://a.com/faq> .
broken line
"#;
        let (pages, errors) = read(nq);
        assert_eq!(errors.len(), 1);
        let (qas, _) = pages["http://a.com/faq"].faqs(WalkOptions::default());
        assert_eq!(qas.len(), 1);
        assert_eq!(qas[0].question, "Qu'est-ce que \"X\" ?");
        assert_eq!(qas[0].answer, "Une réponse.\nDeux lignes.");
    }
}
