//! JSON-LD: the text of `<script type="application/ld+json">` blocks, parsed
//! leniently and read into a [`Graph`].
//!
//! Real pages carry JSON that strict parsers refuse: raw newlines and tabs
//! inside strings, trailing commas, `//` and `/* */` comments, HTML comment
//! or CDATA wrappers, invalid escapes such as `\'`, or several objects one
//! after another. A block is parsed strictly first; only if that fails is it
//! repaired and parsed again, and a block that still fails is reported with
//! the parser's reason.

use serde_json::Value as Json;

use super::graph::{Graph, Item, Value, local_name};

/// Parses one JSON-LD block: the values it holds (several when objects
/// follow one another), or why it cannot be read.
pub fn parse_block(text: &str) -> Result<Vec<Json>, String> {
    let trimmed = unwrap_markup(text);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let first_error = match serde_json::from_str::<Json>(trimmed) {
        Ok(v) => return Ok(vec![v]),
        Err(e) => e,
    };
    let repaired = repair(trimmed);
    if let Ok(v) = serde_json::from_str::<Json>(&repaired) {
        return Ok(vec![v]);
    }
    // Objects written one after another (`{...}{...}` or `{...},{...}`).
    let mut values = Vec::new();
    let mut rest = repaired.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
        if rest.is_empty() {
            break;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Json>();
        match stream.next() {
            Some(Ok(v)) => {
                values.push(v);
                rest = &rest[stream.byte_offset()..];
            }
            _ => {
                return Err(format!(
                    "invalid JSON at line {} column {}: {}",
                    first_error.line(),
                    first_error.column(),
                    describe(&first_error)
                ));
            }
        }
    }
    Ok(values)
}

fn describe(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; we print those ourselves.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Strips what pages wrap their JSON in: HTML comments, CDATA sections and
/// the JavaScript comments that hide them.
fn unwrap_markup(text: &str) -> &str {
    let mut s = text.trim().trim_start_matches('\u{feff}').trim();
    loop {
        let before = s.len();
        for prefix in ["<!--", "//<![CDATA[", "/*<![CDATA[*/", "<![CDATA["] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest.trim_start();
            }
        }
        for suffix in ["-->", "//]]>", "/*]]>*/", "]]>"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                s = rest.trim_end();
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Whether the string starting after the opening quote at `chars` is
/// followed by a colon: a key.
fn is_key(mut chars: std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => break,
            _ => {}
        }
    }
    chars.find(|c| !c.is_whitespace()) == Some(':')
}

/// Repairs the usual damage: control characters and invalid escapes inside
/// strings, comments and trailing commas outside them, and an object whose
/// opening brace is missing inside an array (`[{...}, "name": ...}]`).
fn repair(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    let mut in_string = false;
    // Open brackets outside strings.
    let mut stack: Vec<char> = Vec::new();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u')) => {
                        out.push('\\');
                        out.push(e);
                    }
                    // `\'` and friends: keep the character, drop the escape.
                    Some(e) => out.push(e),
                    None => {}
                },
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push(' '),
                c => out.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                if stack.last() == Some(&'[') && is_key(chars.clone()) {
                    out.push('{');
                    stack.push('{');
                }
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                stack.push(c);
                out.push(c);
            }
            '}' | ']' => {
                stack.pop();
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            ',' => {
                // A comma followed only by whitespace and a closing bracket
                // is a trailing comma: drop it.
                let mut look = chars.clone();
                let next = loop {
                    match look.next() {
                        Some(n) if n.is_whitespace() => continue,
                        other => break other,
                    }
                };
                if !matches!(next, Some('}' | ']')) {
                    out.push(',');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads JSON-LD values into `graph`.
pub fn read_into(values: &[Json], graph: &mut Graph) {
    for v in values {
        read_top(v, graph);
    }
}

fn read_top(v: &Json, graph: &mut Graph) {
    match v {
        Json::Array(items) => {
            for item in items {
                read_top(item, graph);
            }
        }
        Json::Object(_) => {
            read_value(v, graph);
        }
        _ => {}
    }
}

/// Converts one JSON value; objects become items (added to the graph).
fn read_value(v: &Json, graph: &mut Graph) -> Vec<Value> {
    match v {
        Json::Null => Vec::new(),
        Json::Bool(b) => vec![Value::Text(b.to_string())],
        Json::Number(n) => vec![Value::Text(n.to_string())],
        Json::String(s) => vec![Value::Text(s.clone())],
        Json::Array(items) => items.iter().flat_map(|i| read_value(i, graph)).collect(),
        Json::Object(map) => {
            if let Some(val) = map.get("@value") {
                return read_value(val, graph);
            }
            if let Some(list) = map.get("@list").or_else(|| map.get("@set")) {
                return read_value(list, graph);
            }
            let id = map.get("@id").and_then(Json::as_str).map(str::to_string);
            let content = map
                .keys()
                .any(|k| !matches!(k.as_str(), "@id" | "@context"));
            if let (Some(id), false) = (&id, content) {
                return vec![Value::Ref(id.clone())];
            }
            let mut item = Item {
                id,
                ..Item::default()
            };
            match map.get("@type") {
                Some(Json::String(t)) => item.types.push(local_name(t).to_string()),
                Some(Json::Array(ts)) => item.types.extend(
                    ts.iter()
                        .filter_map(Json::as_str)
                        .map(|t| local_name(t).to_string()),
                ),
                _ => {}
            }
            for (key, val) in map {
                if key == "@graph" {
                    read_top(val, graph);
                    continue;
                }
                if key.starts_with('@') {
                    continue;
                }
                let prop = local_name(key).to_string();
                for value in read_value(val, graph) {
                    item.props.push((prop.clone(), value));
                }
            }
            // A bare `@graph` container is not an item of its own.
            if item.types.is_empty() && item.props.is_empty() && item.id.is_none() {
                return Vec::new();
            }
            vec![Value::Item(graph.add(item))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qas(block: &str) -> Vec<(String, String)> {
        let mut g = Graph::default();
        read_into(&parse_block(block).expect("parses"), &mut g);
        g.pairs()
    }

    #[test]
    fn strict_json_with_graph_and_type_arrays() {
        let block = r##"{"@context":"https://schema.org","@graph":[
            {"@type":"WebSite","name":"x"},
            {"@type":["WebPage","FAQPage"],"mainEntity":[
                {"@type":"Question","name":"A?","acceptedAnswer":{"@type":"Answer","text":"Yes"}},
                {"@id":"#q2"}]},
            {"@type":"Question","@id":"#q2","name":"B?","acceptedAnswer":{"@type":"Answer","text":"No"}}
        ]}"##;
        assert_eq!(
            qas(block),
            [("A?".into(), "Yes".into()), ("B?".into(), "No".into())]
        );
    }

    #[test]
    fn http_context_and_full_iri_types() {
        let block = r#"{"@context":"http://schema.org","@type":"http://schema.org/FAQPage",
            "mainEntity":{"@type":"Question","name":"Q?","acceptedAnswer":{"text":"A"}}}"#;
        assert_eq!(qas(block).len(), 1);
    }

    #[test]
    fn repairs_raw_newlines_trailing_commas_comments_and_wrappers() {
        let block = "<!--\n//<![CDATA[\n{\"@type\":\"FAQPage\", // the page\n \"mainEntity\":[{\"@type\":\"Question\",\"name\":\"It\\'s?\",\n\"acceptedAnswer\":{\"text\":\"line one\nline\ttwo\"},},]}\n//]]>\n-->";
        assert_eq!(qas(block), [("It's?".into(), "line one\nline\ttwo".into())]);
    }

    #[test]
    fn an_object_missing_its_opening_brace_in_an_array() {
        // karaarslan-bike's FAQ block, in small.
        let block = r#"{"@type":"FAQPage","mainEntity":[
            {"@type":"Question","name":"1?","acceptedAnswer":{"text":"a"}},
              "@type":"Question","name":"2?","acceptedAnswer":{"text":"b"}}
        ]}"#;
        assert_eq!(qas(block).len(), 2);
    }

    #[test]
    fn objects_one_after_another() {
        let block = r#"{"@type":"FAQPage","mainEntity":{"@type":"Question","name":"1?","acceptedAnswer":{"text":"a"}}}
            {"@type":"FAQPage","mainEntity":{"@type":"Question","name":"2?","acceptedAnswer":{"text":"b"}}}"#;
        assert_eq!(qas(block).len(), 2);
    }

    #[test]
    fn unreadable_blocks_say_where() {
        let err = parse_block(r#"{"a": 1, "b" 2}"#).expect_err("broken");
        assert!(err.starts_with("invalid JSON at line 1 column 14"), "{err}");
    }

    #[test]
    fn empty_blocks_are_fine() {
        assert!(parse_block("  <!-- -->  ").expect("ok").is_empty());
    }
}
