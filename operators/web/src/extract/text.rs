//! HTML to clean text: what an answer's markup becomes in the `faqs` table.
//!
//! Block elements and `<br>` end lines, list items become lines of their
//! own, entities are decoded (by the HTML parser), scripts, styles and other
//! non-content elements are dropped, runs of spaces collapse to one and
//! blank lines disappear.

use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Node};

/// Elements that start and end a line.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "dd"
            | "details"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "th"
            | "thead"
            | "tr"
            | "ul"
    )
}

/// Elements whose content is never text.
fn is_skipped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "svg"
            | "math"
            | "iframe"
            | "object"
            | "head"
    )
}

/// Accumulates text, collapsing whitespace as it goes.
#[derive(Default)]
pub struct TextSink {
    out: String,
    /// A space is owed before the next word on this line.
    space: bool,
}

impl TextSink {
    fn push_text(&mut self, text: &str) {
        for (i, word) in text.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.space = true;
            }
            if word.is_empty() {
                continue;
            }
            if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
                self.out.push(' ');
            }
            self.space = false;
            self.out.push_str(word);
        }
    }

    fn newline(&mut self) {
        self.space = false;
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Appends the text under `el`. The walk keeps its own stack rather
    /// than recursing: pages nest elements a hundred thousand deep, and a
    /// worker thread's stack would overflow long before.
    fn push_element(&mut self, el: ElementRef<'_>) {
        enum Step<'a> {
            Visit(NodeRef<'a, Node>),
            EndBlock,
        }
        let mut stack: Vec<Step<'_>> = el.children().rev().map(Step::Visit).collect();
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::EndBlock => {
                    self.newline();
                    continue;
                }
                Step::Visit(node) => node,
            };
            match node.value() {
                Node::Text(t) => self.push_text(t),
                Node::Element(e) => {
                    let name = e.name();
                    if is_skipped(name) {
                        continue;
                    }
                    if name == "br" {
                        self.newline();
                        continue;
                    }
                    if is_block(name) {
                        self.newline();
                        stack.push(Step::EndBlock);
                    }
                    stack.extend(node.children().rev().map(Step::Visit));
                }
                _ => {}
            }
        }
    }

    pub fn finish(mut self) -> String {
        while self.out.ends_with('\n') {
            self.out.pop();
        }
        self.out
    }
}

/// The clean text of an element's content.
pub fn element_text(el: ElementRef<'_>) -> String {
    let mut sink = TextSink::default();
    sink.push_element(el);
    sink.finish()
}

/// Clean text of a string that may hold HTML (JSON-LD answers often do) or
/// entities. Plain strings only have their whitespace normalised, keeping
/// their line breaks.
pub fn fragment_text(s: &str) -> String {
    if !s.contains('<') && !s.contains('&') {
        return normalise_plain(s);
    }
    // A literal `<` that starts no tag (`a < b`) survives the HTML parser as
    // text, so plain strings with comparison signs are safe here too.
    let frag = Html::parse_fragment(s);
    element_text(frag.root_element())
}

/// `s` without anything between `<` and `>`: the text of markup that is
/// not worth a parser (entities stay as written).
pub fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whitespace normalisation of text that holds no markup: spaces collapse,
/// lines are trimmed, blank lines dropped.
pub fn normalise_plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut first = true;
        for word in line.split_whitespace() {
            if first {
                if !out.is_empty() {
                    out.push('\n');
                }
                first = false;
            } else {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_breaks_and_lists_become_lines() {
        let t = fragment_text(
            "<p>First  para.</p><p>Second<br>line</p><ul><li>one</li><li><b>two</b> items</li></ul>tail",
        );
        assert_eq!(t, "First para.\nSecond\nline\none\ntwo items\ntail");
    }

    #[test]
    fn entities_are_decoded_and_scripts_dropped() {
        let t =
            fragment_text("Caf&eacute; &amp; bar<script>var x = 1;</script><style>p{}</style>!");
        assert_eq!(t, "Café & bar!");
    }

    #[test]
    fn inline_elements_keep_words_apart_only_where_the_source_did() {
        assert_eq!(
            fragment_text("<a href=x>link</a>ed and <em>emph</em>"),
            "linked and emph"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // 20,000 levels on a 256 KiB stack: the old recursive walk
        // overflowed it (an abort, not a panic). Deeper pages are not given
        // to html5ever at all (`scan::dom_hazard`): it is quadratic in depth.
        let depth = 20_000;
        let html = format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth));
        let text = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || fragment_text(&html))
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(text, "deep");
    }

    #[test]
    fn plain_text_keeps_its_lines_and_collapses_spaces() {
        assert_eq!(normalise_plain("  a   b \n\n\t c\r\n"), "a b\nc");
        assert_eq!(fragment_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
    }
}
