//! Microdata (`itemscope`, `itemtype`, `itemprop`, `itemid`, `itemref`)
//! read into a [`Graph`], following the WHATWG algorithm: an item's
//! properties are the `itemprop` elements under it that no nested item
//! claims, plus those under the elements its `itemref` names.

use std::collections::HashMap;

use scraper::{ElementRef, Html};

use super::graph::{Graph, Item, Value, local_name};
use super::text::element_text;

/// Nested items deeper than this are ignored (and `itemref` loops end).
const MAX_DEPTH: usize = 32;

/// Reads every microdata item of `doc` into `graph`.
pub fn read(doc: &Html, graph: &mut Graph) {
    let mut ids: HashMap<&str, ElementRef<'_>> = HashMap::new();
    for node in doc.root_element().descendants() {
        if let Some(el) = ElementRef::wrap(node)
            && let Some(id) = el.value().attr("id")
        {
            ids.entry(id).or_insert(el);
        }
    }
    for node in doc.root_element().descendants() {
        let Some(el) = ElementRef::wrap(node) else {
            continue;
        };
        let v = el.value();
        if v.attr("itemscope").is_some() && v.attr("itemprop").is_none() {
            read_item(el, &ids, graph, 0);
        }
    }
}

fn read_item(
    el: ElementRef<'_>,
    ids: &HashMap<&str, ElementRef<'_>>,
    graph: &mut Graph,
    depth: usize,
) -> usize {
    let v = el.value();
    let mut item = Item {
        types: v
            .attr("itemtype")
            .unwrap_or("")
            .split_whitespace()
            .map(|t| local_name(t).to_string())
            .collect(),
        id: v.attr("itemid").map(str::to_string),
        props: Vec::new(),
    };
    let mut props: Vec<ElementRef<'_>> = Vec::new();
    let mut pending: Vec<ElementRef<'_>> = el.children().filter_map(ElementRef::wrap).collect();
    for r in v.attr("itemref").unwrap_or("").split_whitespace() {
        if let Some(target) = ids.get(r) {
            pending.push(*target);
        }
    }
    // Depth-first, in document order.
    pending.reverse();
    while let Some(p) = pending.pop() {
        let pv = p.value();
        if pv.attr("itemprop").is_some() {
            props.push(p);
        }
        if pv.attr("itemscope").is_none() {
            let mut children: Vec<ElementRef<'_>> =
                p.children().filter_map(ElementRef::wrap).collect();
            children.reverse();
            pending.extend(children);
        }
    }
    for p in props {
        let pv = p.value();
        let value = if pv.attr("itemscope").is_some() {
            if depth >= MAX_DEPTH || p == el {
                continue;
            }
            Value::Item(read_item(p, ids, graph, depth + 1))
        } else {
            Value::Text(property_text(p))
        };
        for name in pv.attr("itemprop").unwrap_or("").split_whitespace() {
            item.props
                .push((local_name(name).to_string(), value.clone()));
        }
    }
    graph.add(item)
}

/// The value of a non-item property element, by element kind.
fn property_text(el: ElementRef<'_>) -> String {
    let v = el.value();
    let attr = |a: &str| v.attr(a).map(str::to_string);
    let from_attr = match v.name() {
        "meta" => attr("content"),
        "a" | "area" | "link" => attr("href"),
        "audio" | "embed" | "iframe" | "img" | "source" | "track" | "video" => attr("src"),
        "object" => attr("data"),
        "data" | "meter" => attr("value"),
        "time" => attr("datetime"),
        _ => v.attr("content").map(str::to_string),
    };
    from_attr.unwrap_or_else(|| element_text(el))
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
    fn nested_scopes() {
        let html = r#"<body><div itemscope itemtype="https://schema.org/FAQPage">
          <div itemscope itemprop="mainEntity" itemtype="https://schema.org/Question">
            <h3 itemprop="name">How long?</h3>
            <div itemscope itemprop="acceptedAnswer" itemtype="https://schema.org/Answer">
              <div itemprop="text"><p>Two days.</p><ul><li>one</li><li>two</li></ul></div>
            </div>
          </div>
          <div itemscope itemprop="mainEntity" itemtype="http://schema.org/Question">
            <span itemprop="name">Where?</span>
            <div itemprop="acceptedAnswer" itemscope itemtype="http://schema.org/Answer">
              <meta itemprop="text" content="Here.">
            </div>
          </div>
        </div></body>"#;
        assert_eq!(
            qas(html),
            [
                ("How long?".into(), "Two days.\none\ntwo".into()),
                ("Where?".into(), "Here.".into())
            ]
        );
    }

    #[test]
    fn itemref_brings_in_properties_from_elsewhere() {
        let html = r#"<div itemscope itemtype="https://schema.org/FAQPage" itemref="q1"></div>
          <div id="q1" itemprop="mainEntity" itemscope itemtype="https://schema.org/Question" itemref="a1">
            <span itemprop="name">Why?</span></div>
          <div id="a1" itemprop="acceptedAnswer" itemscope itemtype="https://schema.org/Answer">
            <span itemprop="text">Because.</span></div>"#;
        assert_eq!(qas(html), [("Why?".into(), "Because.".into())]);
    }

    #[test]
    fn itemref_loops_end() {
        let html = r#"<div id="x" itemscope itemtype="https://schema.org/FAQPage" itemref="x y"></div>
            <div id="y" itemprop="mainEntity" itemscope itemref="y"></div>"#;
        assert!(qas(html).is_empty());
    }
}
