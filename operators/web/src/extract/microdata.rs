//! Microdata (`itemscope`, `itemtype`, `itemprop`, `itemid`, `itemref`)
//! read into a [`Graph`], following the WHATWG algorithm: an item's
//! properties are the `itemprop` elements under it that no nested item
//! claims, plus those under the elements its `itemref` names.

use std::collections::{HashMap, HashSet};

use ego_tree::NodeId;
use scraper::{ElementRef, Html};

use super::graph::{Graph, Item, Value, local_name};
use super::text::element_text;

/// Nested items deeper than this are ignored.
const MAX_DEPTH: usize = 32;
/// Elements visited while collecting properties, over the whole page: a
/// page whose `itemref`s make every item walk the same large subtree stops
/// here instead of taking quadratic time.
const MAX_STEPS: usize = 1_000_000;

/// The state of one page's reading: element ids, the items already read
/// (each element is read as an item once, however many items name it), the
/// items being read (an `itemref` loop back to one of them is cut, as the
/// WHATWG algorithm says), and the step budget.
struct Reader<'a> {
    ids: HashMap<&'a str, ElementRef<'a>>,
    read: HashMap<NodeId, usize>,
    open: HashSet<NodeId>,
    steps: usize,
}

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
    let mut reader = Reader {
        ids,
        read: HashMap::new(),
        open: HashSet::new(),
        steps: 0,
    };
    for node in doc.root_element().descendants() {
        let Some(el) = ElementRef::wrap(node) else {
            continue;
        };
        let v = el.value();
        if v.attr("itemscope").is_some() && v.attr("itemprop").is_none() {
            reader.item(el, graph, 0);
        }
    }
}

impl<'a> Reader<'a> {
    /// The graph index of the item `el` starts, reading it if it was not
    /// read yet.
    fn item(&mut self, el: ElementRef<'a>, graph: &mut Graph, depth: usize) -> usize {
        if let Some(&idx) = self.read.get(&el.id()) {
            return idx;
        }
        self.open.insert(el.id());
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
        for p in self.properties(el) {
            let pv = p.value();
            let value = if pv.attr("itemscope").is_some() {
                if depth >= MAX_DEPTH || self.open.contains(&p.id()) {
                    continue;
                }
                Value::Item(self.item(p, graph, depth + 1))
            } else {
                Value::Text(property_text(p))
            };
            for name in pv.attr("itemprop").unwrap_or("").split_whitespace() {
                item.props
                    .push((local_name(name).to_string(), value.clone()));
            }
        }
        self.open.remove(&el.id());
        let idx = graph.add(item);
        self.read.insert(el.id(), idx);
        idx
    }

    /// The property elements of the item `el`: its children and the
    /// elements its `itemref` names, searched depth-first in document order
    /// without entering nested items, each element once.
    fn properties(&mut self, el: ElementRef<'a>) -> Vec<ElementRef<'a>> {
        let mut props = Vec::new();
        let mut seen: HashSet<NodeId> = HashSet::from([el.id()]);
        let mut pending: Vec<ElementRef<'a>> = el.children().filter_map(ElementRef::wrap).collect();
        for r in el.value().attr("itemref").unwrap_or("").split_whitespace() {
            if let Some(target) = self.ids.get(r) {
                pending.push(*target);
            }
        }
        pending.reverse();
        while let Some(p) = pending.pop() {
            if !seen.insert(p.id()) {
                continue;
            }
            self.steps += 1;
            if self.steps > MAX_STEPS {
                break;
            }
            let pv = p.value();
            if pv.attr("itemprop").is_some() {
                props.push(p);
            }
            if pv.attr("itemscope").is_none() {
                let mut children: Vec<ElementRef<'a>> =
                    p.children().filter_map(ElementRef::wrap).collect();
                children.reverse();
                pending.extend(children);
            }
        }
        props
    }
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
    fn itemref_cycles_read_each_item_once() {
        // Three items that name each other: once exponential (each path
        // through the cycle read again, 32 levels deep).
        let html = r#"<div itemscope itemtype="https://schema.org/FAQPage" itemref="a b c"></div>
            <div id="a" itemprop="mainEntity" itemscope itemtype="https://schema.org/Question" itemref="b c"><span itemprop="name">A?</span></div>
            <div id="b" itemprop="acceptedAnswer" itemscope itemref="a c"><span itemprop="text">B.</span></div>
            <div id="c" itemprop="acceptedAnswer" itemscope itemref="a b"><span itemprop="text">C.</span></div>"#;
        let started = std::time::Instant::now();
        let mut g = Graph::default();
        read(&Html::parse_document(html), &mut g);
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
        assert!(g.items.len() <= 4, "{} items", g.items.len());
        assert_eq!(g.pairs(), [("A?".into(), "B.".into())]);
    }

    #[test]
    fn many_items_sharing_one_large_subtree_stay_bounded() {
        let big: String = (0..2000)
            .map(|i| format!("<span itemprop=p{i}>x</span>"))
            .collect();
        let items: String = (0..2000)
            .map(|_| r#"<div itemscope itemref="big"></div>"#.to_string())
            .collect();
        let html = format!(r#"<div id="big">{big}</div>{items}"#);
        let started = std::time::Instant::now();
        let mut g = Graph::default();
        read(&Html::parse_document(&html), &mut g);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert_eq!(g.items.len(), 2000);
    }

    #[test]
    fn itemref_loops_end() {
        let html = r#"<div id="x" itemscope itemtype="https://schema.org/FAQPage" itemref="x y"></div>
            <div id="y" itemprop="mainEntity" itemscope itemref="y"></div>"#;
        assert!(qas(html).is_empty());
    }
}
