//! The text of a pipeline file and the conversion of the YAML parser's
//! character positions into the byte spans diagnostics point with. Its own
//! room so that both the parser ([`crate::spec`]) and the diagnostics
//! ([`crate::diag`]) may use it without depending on each other.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// The text of one pipeline file, shared by every diagnostic that points into it.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// The path as the user gave it (shown in diagnostics).
    pub name: String,
    /// The whole file.
    pub text: Arc<str>,
    /// Byte offset of every char, so that saphyr's char-based markers become
    /// the byte spans miette wants.
    char_to_byte: Arc<Vec<usize>>,
}

impl SourceText {
    /// Wraps the text of the file named `name`.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut char_to_byte: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(text.len());
        Self {
            name: name.into(),
            text,
            char_to_byte: Arc::new(char_to_byte),
        }
    }

    /// The text as miette shows it in diagnostics, named and highlighted as YAML.
    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.name.clone(), self.text.clone()).with_language("yaml")
    }

    fn byte(&self, char_index: usize) -> usize {
        self.char_to_byte
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    pub(crate) fn span(&self, span: saphyr_parser::Span) -> SourceSpan {
        let start = self.byte(span.start.index());
        let mut end = self.byte(span.end.index()).max(start);
        // Quoted scalars in flow collections end after the next blank.
        while end > start && self.text.as_bytes()[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        (start, end - start).into()
    }

    pub(crate) fn point(&self, char_index: usize) -> SourceSpan {
        (self.byte(char_index), 0).into()
    }
}
