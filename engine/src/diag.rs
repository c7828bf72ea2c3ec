//! Compile-time diagnostics: every problem in a pipeline file becomes one
//! [`CompileError`] with a code, a span in the file and a help line, rendered
//! by miette.
//!
//! Codes: `DF1xxx` configuration (the file itself), `DF2xxx` plan (the graph
//! and the types flowing along it), `DF3xxx` execution (see [`crate::error`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use crate::source_text::SourceText;

/// One compile error, pointing into a pipeline file.
#[derive(Debug)]
pub struct CompileError {
    /// The diagnostic code, such as `DF1001`.
    pub code: &'static str,
    /// The one-line message.
    pub message: String,
    /// What the user can do about it, shown under the message.
    pub help: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    labels: Vec<LabeledSpan>,
}

impl CompileError {
    /// A bare error with `code` and `message`, pointing nowhere yet.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            help: None,
            source: None,
            labels: Vec::new(),
        }
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at `span` in `source`; the first label is the primary one.
    pub fn at(mut self, source: &SourceText, span: SourceSpan, label: impl Into<String>) -> Self {
        if self.source.is_none() {
            self.source = Some(source.named_source());
        }
        self.labels
            .push(LabeledSpan::new_with_span(Some(label.into()), span));
        self
    }

    /// DF1001: the file is not valid YAML; `info` is the parser's message.
    pub fn yaml_syntax(source: &SourceText, at: SourceSpan, info: &str) -> Self {
        Self::new("DF1001", format!("invalid YAML: {info}"))
            .at(source, at, "here")
            .with_help("check indentation, quoting and that every `{`/`[` is closed")
    }

    /// DF1009: the pipeline file at `path` cannot be read.
    pub fn unreadable_file(path: &Path, e: &std::io::Error) -> Self {
        Self::new(
            "DF1009",
            format!("cannot read pipeline file {}: {e}", path.display()),
        )
        .with_help("check the path; pipeline files are usually under pipelines/")
    }

    /// DF1006: `key` is defined twice (a node id, or a key in one mapping).
    pub fn duplicate_key(source: &SourceText, at: SourceSpan, key: &str) -> Self {
        Self::new("DF1006", format!("duplicate id `{key}`"))
            .at(source, at, "defined again here")
            .with_help("node ids (and keys in one mapping) must be unique: rename one of them")
    }

    /// DF1007: `id` is not a valid node id.
    pub fn invalid_id(source: &SourceText, at: SourceSpan, id: &str) -> Self {
        Self::new("DF1007", format!("invalid node id `{id}`"))
            .at(source, at, "not a valid id")
            .with_help(
                "ids are lower-case letters, digits and `_`, start with a letter or `_`, \
                 and contain no `__` (reserved for `node__port` table names)",
            )
    }

    /// DF1008: the file is not shaped like a pipeline (a missing, unknown or mistyped key).
    pub fn structure(source: &SourceText, at: SourceSpan, message: &str, help: &str) -> Self {
        Self::new("DF1008", message)
            .at(source, at, "here")
            .with_help(help)
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

impl Diagnostic for CompileError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// All compile errors of one pipeline, in file order.
#[derive(Debug, Default)]
pub struct Diagnostics {
    /// The errors, in file order.
    pub errors: Vec<CompileError>,
}

impl Diagnostics {
    /// Diagnostics holding the one error `e`.
    pub fn single(e: CompileError) -> Self {
        Self { errors: vec![e] }
    }

    /// Adds an error at the end.
    pub fn push(&mut self, e: CompileError) {
        self.errors.push(e);
    }

    /// Appends the errors of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.errors.extend(other.errors);
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether some error has the code `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// `Ok` when there is no error, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Renders every diagnostic as text (no colours), as the CLI prints them
    /// when stderr is not a terminal. Snapshot tests use this.
    pub fn render_plain(&self) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
                .with_links(false);
        let mut out = String::new();
        for e in &self.errors {
            if handler.render_report(&mut out, e).is_err() {
                out.push_str(&format!("[{}] {}\n", e.code, e.message));
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the pipeline does not compile ({} errors)",
            self.errors.len()
        )
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

/// "did you mean" for a misspelt name among `candidates`.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
