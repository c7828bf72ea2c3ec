//! Pipeline files: YAML parsed into a tree that remembers where every key and
//! value came from, so that each later error can point at its line and column.
//!
//! The structure is deliberately checked by hand rather than by serde: a
//! pipeline with five mistakes should report five diagnostics, each with its
//! own span, not stop at the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::SourceSpan;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::Value;

use crate::diag::{CompileError, Diagnostics};
pub use crate::source_text::SourceText;

/// A value and where it was written.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it is in the file.
    pub span: SourceSpan,
}

/// Where each key and value of a params tree sits in the file, by JSON pointer
/// (`/paths/0`, `/mode`). Used to point param errors at the offending text.
#[derive(Clone, Debug, Default)]
pub struct SpanMap {
    /// The span of each value, by JSON pointer (`""` for the whole params).
    pub values: BTreeMap<String, SourceSpan>,
    /// The span of each mapping key, by the JSON pointer of its value.
    pub keys: BTreeMap<String, SourceSpan>,
}

/// One `nodes:` entry of a pipeline file.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node id (the key of its entry under `nodes:`).
    pub id: Spanned<String>,
    /// The operator name given in `op:`.
    pub op: Spanned<String>,
    /// Input port name to `node` or `node.port`.
    pub inputs: Vec<(Spanned<String>, Spanned<String>)>,
    /// The params as JSON (YAML scalars typed by the YAML 1.2 core schema).
    pub params: Value,
    /// The span of the `params:` value (of the node's id when it has none).
    pub params_span: SourceSpan,
    /// Where each param key and value sits in the file.
    pub param_spans: SpanMap,
    /// Resources never change results and are not hashed.
    pub resources: Resources,
    /// The span of the whole node (used when no finer span exists).
    pub span: SourceSpan,
}

/// Per-node execution settings. They change how a result is computed, never
/// what it is, so they are not part of any cache key.
#[derive(
    Clone, Debug, Default, serde::Deserialize, serde::Serialize, PartialEq, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Worker threads for this node (default: all cores).
    pub threads: Option<usize>,
    /// Rows per batch handed to the operator.
    pub batch_size: Option<usize>,
    /// `cpu` or `cuda[:N]`, for neural operators.
    pub device: Option<String>,
    /// Soft memory budget, e.g. `4GB`.
    pub memory: Option<String>,
}

/// A parsed pipeline file.
#[derive(Debug)]
pub struct PipelineSpec {
    /// The pipeline file as given.
    pub path: PathBuf,
    /// Directory that relative paths in params are resolved against.
    pub base_dir: PathBuf,
    /// The file's text, for diagnostics.
    pub source: SourceText,
    /// The pipeline format version (always 1).
    pub version: u32,
    /// The `name:` of the pipeline, or else the file's stem.
    pub name: String,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Errors found while parsing that do not stop compilation (an invalid
    /// id, a bad node): reported with the compiler's, all at once.
    pub errors: Diagnostics,
    /// Where relative source paths (`warc`, `owi`, `parquet`, ... `paths`)
    /// resolve instead of `base_dir`: an object store prefix
    /// (`dflow run --source-root s3://bucket/sample`), so that the same
    /// pipeline file reads its inputs from a store, with the same partition
    /// names (and lock file) as on local disk.
    pub source_root: Option<crate::storage::ObjectUrl>,
}

const NODE_KEYS: [&str; 5] = ["op", "inputs", "params", "resources", "description"];

/// Node ids become table names in SQL and file names in exports: keep them to
/// identifiers.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !id.contains("__")
}

impl PipelineSpec {
    /// Reads and parses a pipeline file. I/O errors and YAML syntax errors are
    /// returned as diagnostics like every other compile error.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostics::single(CompileError::unreadable_file(path, &e)))?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the pipeline file at `path` (which is not read).
    pub fn parse(path: &Path, text: &str) -> Result<Self, Diagnostics> {
        let source = SourceText::new(path.display().to_string(), text);
        let mut diags = Diagnostics::default();
        let docs = match MarkedYaml::load_from_str(text) {
            Ok(docs) => docs,
            Err(e) => {
                let at = source.point(e.marker().index());
                let err = if e.info().contains("duplicated key") {
                    let key = key_at(text, e.marker().index());
                    CompileError::duplicate_key(&source, at, &key)
                } else {
                    CompileError::yaml_syntax(&source, at, e.info())
                };
                return Err(Diagnostics::single(err));
            }
        };
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let Some(root) = docs.first() else {
            return Err(Diagnostics::single(CompileError::structure(
                &source,
                (0, 0).into(),
                "the pipeline file is empty",
                "start with `version: 1`, `name: ...` and a `nodes:` mapping",
            )));
        };
        let Some(root_map) = mapping(root) else {
            return Err(Diagnostics::single(CompileError::structure(
                &source,
                source.span(root.span),
                "a pipeline file must be a mapping",
                "start with `version: 1`, `name: ...` and a `nodes:` mapping",
            )));
        };

        let mut version = None;
        let mut name = None;
        let mut nodes = Vec::new();
        let mut saw_nodes = false;
        for (k, v) in root_map {
            let Some(key) = scalar_str(k) else { continue };
            match key.as_str() {
                "version" => match scalar(v) {
                    Some(Scalar::Integer(1)) => version = Some(1),
                    _ => diags.push(CompileError::structure(
                        &source,
                        source.span(v.span),
                        "unsupported pipeline version",
                        "this dflow reads `version: 1`",
                    )),
                },
                "name" => match scalar_str(v) {
                    Some(n) => name = Some(n),
                    None => diags.push(CompileError::structure(
                        &source,
                        source.span(v.span),
                        "`name` must be a string",
                        "e.g. `name: webfaq2`",
                    )),
                },
                "description" => {}
                "nodes" => {
                    saw_nodes = true;
                    parse_nodes(&source, v, &mut nodes, &mut diags);
                }
                other => diags.push(CompileError::structure(
                    &source,
                    source.span(k.span),
                    &format!("unknown top-level key `{other}`"),
                    "a pipeline has `version`, `name`, `description` and `nodes`",
                )),
            }
        }
        let whole = source.span(root.span);
        if version.is_none() && !diags.has_code("DF1008") {
            diags.push(CompileError::structure(
                &source,
                (whole.offset(), 0).into(),
                "missing `version`",
                "add `version: 1` at the top of the file",
            ));
        }
        if !saw_nodes {
            diags.push(CompileError::structure(
                &source,
                (whole.offset(), 0).into(),
                "missing `nodes`",
                "add a `nodes:` mapping from node id to `{op, inputs, params}`",
            ));
        }
        if !saw_nodes {
            return Err(diags);
        }
        let name = name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pipeline".into())
        });
        Ok(PipelineSpec {
            path: path.to_path_buf(),
            base_dir,
            source,
            version: 1,
            name,
            nodes,
            errors: diags,
            source_root: None,
        })
    }
}

fn parse_nodes(
    source: &SourceText,
    v: &MarkedYaml<'_>,
    nodes: &mut Vec<NodeSpec>,
    diags: &mut Diagnostics,
) {
    let Some(map) = mapping(v) else {
        diags.push(CompileError::structure(
            source,
            source.span(v.span),
            "`nodes` must be a mapping from node id to node",
            "e.g. `nodes: { pages: { op: warc, params: { paths: [\"*.warc.gz\"] } } }`",
        ));
        return;
    };
    for (k, node) in map {
        let key_span = source.span(k.span);
        let Some(id) = scalar_str(k) else {
            diags.push(CompileError::invalid_id(source, key_span, "?"));
            continue;
        };
        if !is_valid_id(&id) {
            diags.push(CompileError::invalid_id(source, key_span, &id));
        }
        let id = Spanned {
            value: id,
            span: key_span,
        };
        if let Some(spec) = parse_node(source, id, node, diags) {
            nodes.push(spec);
        }
    }
}

fn parse_node(
    source: &SourceText,
    id: Spanned<String>,
    node: &MarkedYaml<'_>,
    diags: &mut Diagnostics,
) -> Option<NodeSpec> {
    let node_span = source.span(node.span);
    let Some(map) = mapping(node) else {
        diags.push(CompileError::structure(
            source,
            node_span,
            &format!("node `{}` must be a mapping", id.value),
            "a node is `{op: NAME, inputs: {...}, params: {...}, resources: {...}}`",
        ));
        return None;
    };
    let mut op = None;
    let mut inputs = Vec::new();
    let mut params = Value::Object(Default::default());
    let mut params_span = (id.span.offset(), 0).into();
    let mut param_spans = SpanMap::default();
    let mut resources = Resources::default();
    for (k, v) in map {
        let Some(key) = scalar_str(k) else { continue };
        match key.as_str() {
            "op" => match scalar_str(v) {
                Some(s) => {
                    op = Some(Spanned {
                        value: s,
                        span: source.span(v.span),
                    })
                }
                None => diags.push(CompileError::structure(
                    source,
                    source.span(v.span),
                    "`op` must be an operator name",
                    "run `dflow ops` for the list of operators",
                )),
            },
            "inputs" => match mapping(v) {
                Some(m) => {
                    for (port, target) in m {
                        match (scalar_str(port), scalar_str(target)) {
                            (Some(p), Some(t)) => inputs.push((
                                Spanned {
                                    value: p,
                                    span: source.span(port.span),
                                },
                                Spanned {
                                    value: t,
                                    span: source.span(target.span),
                                },
                            )),
                            _ => diags.push(CompileError::structure(
                                source,
                                source.span(target.span),
                                "an input must name a node or `node.port`",
                                "e.g. `inputs: { faqs: extract.out }`",
                            )),
                        }
                    }
                }
                None => diags.push(CompileError::structure(
                    source,
                    source.span(v.span),
                    "`inputs` must map port names to `node` or `node.port`",
                    "e.g. `inputs: { faqs: extract.out }`",
                )),
            },
            "params" => {
                params_span = source.span(v.span);
                if mapping(v).is_none() && !is_null(v) {
                    diags.push(CompileError::structure(
                        source,
                        params_span,
                        "`params` must be a mapping",
                        "e.g. `params: { query: \"SELECT ...\" }`",
                    ));
                } else if !is_null(v) {
                    params = to_json(source, v, "", &mut param_spans);
                }
            }
            "resources" => {
                let mut spans = SpanMap::default();
                let value = to_json(source, v, "", &mut spans);
                match serde_json::from_value::<Resources>(value) {
                    Ok(r) => resources = r,
                    Err(e) => diags.push(CompileError::structure(
                        source,
                        source.span(v.span),
                        &format!("invalid `resources`: {e}"),
                        "resources are `threads`, `batch_size`, `device` and `memory`",
                    )),
                }
            }
            "description" => {}
            other => diags.push(CompileError::structure(
                source,
                source.span(k.span),
                &format!("unknown node key `{other}`"),
                &format!(
                    "a node has {}",
                    NODE_KEYS.map(|k| format!("`{k}`")).join(", ")
                ),
            )),
        }
    }
    let Some(op) = op else {
        diags.push(CompileError::structure(
            source,
            id.span,
            &format!("node `{}` has no `op`", id.value),
            "add `op: NAME`; `dflow ops` lists the operators",
        ));
        return None;
    };
    Some(NodeSpec {
        id,
        op,
        inputs,
        params,
        params_span,
        param_spans,
        resources,
        span: node_span,
    })
}

fn mapping<'a, 'i>(
    v: &'a MarkedYaml<'i>,
) -> Option<&'a saphyr::AnnotatedMapping<'i, MarkedYaml<'i>>> {
    match &v.data {
        YamlData::Mapping(m) => Some(m),
        YamlData::Tagged(_, inner) => mapping(inner),
        _ => None,
    }
}

fn is_null(v: &MarkedYaml<'_>) -> bool {
    matches!(scalar(v), Some(Scalar::Null))
}

fn scalar<'i>(v: &MarkedYaml<'i>) -> Option<Scalar<'i>> {
    match &v.data {
        YamlData::Value(s) => Some(s.clone()),
        YamlData::Representation(text, style, tag) => {
            Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref())
        }
        YamlData::Tagged(_, inner) => scalar(inner),
        _ => None,
    }
}

/// A scalar read as a string whatever YAML typed it as: ids like `1st` or
/// `true` are still strings to us.
fn scalar_str(v: &MarkedYaml<'_>) -> Option<String> {
    match &v.data {
        YamlData::Representation(text, _, _) => Some(text.to_string()),
        _ => match scalar(v)? {
            Scalar::String(s) => Some(s.into_owned()),
            Scalar::Integer(i) => Some(i.to_string()),
            Scalar::FloatingPoint(f) => Some(f.to_string()),
            Scalar::Boolean(b) => Some(b.to_string()),
            Scalar::Null => None,
        },
    }
}

/// Converts a YAML subtree to JSON, recording spans by JSON pointer.
fn to_json(source: &SourceText, v: &MarkedYaml<'_>, pointer: &str, spans: &mut SpanMap) -> Value {
    spans
        .values
        .insert(pointer.to_string(), source.span(v.span));
    match &v.data {
        YamlData::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, val) in m {
                let key = scalar_str(k).unwrap_or_default();
                let child = format!("{pointer}/{}", escape_pointer(&key));
                spans.keys.insert(child.clone(), source.span(k.span));
                out.insert(key, to_json(source, val, &child, spans));
            }
            Value::Object(out)
        }
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(source, item, &format!("{pointer}/{i}"), spans))
                .collect(),
        ),
        YamlData::Tagged(_, inner) => to_json(source, inner, pointer, spans),
        _ => match scalar(v) {
            Some(Scalar::Null) | None => Value::Null,
            Some(Scalar::Boolean(b)) => Value::Bool(b),
            Some(Scalar::Integer(i)) => Value::from(i),
            Some(Scalar::FloatingPoint(f)) => serde_json::Number::from_f64(f.into_inner())
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Some(Scalar::String(s)) => Value::String(s.into_owned()),
        },
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The mapping key that starts at `char_index` (for duplicate-key errors).
fn key_at(text: &str, char_index: usize) -> String {
    text.chars()
        .skip(char_index)
        .take_while(|c| !matches!(c, ':' | '\n' | ' ' | '{' | '}' | ','))
        .collect::<String>()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nodes_inputs_and_param_spans() {
        let text = "version: 1\nname: t\nnodes:\n  a: { op: csv, params: { paths: [\"x.csv\"] } }\n  b:\n    op: sql\n    inputs: { t: a.out }\n    params:\n      query: SELECT 1\n";
        let spec = PipelineSpec::parse(Path::new("p.yaml"), text).expect("parses");
        assert_eq!(spec.name, "t");
        assert_eq!(spec.nodes.len(), 2);
        let b = &spec.nodes[1];
        assert_eq!(b.op.value, "sql");
        assert_eq!(b.inputs[0].1.value, "a.out");
        assert_eq!(b.params["query"], "SELECT 1");
        let span = b.param_spans.values["/query"];
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "SELECT 1");
        let key = spec.nodes[0].param_spans.values["/paths/0"];
        assert_eq!(&text[key.offset()..key.offset() + key.len()], "\"x.csv\"");
    }

    #[test]
    fn ids_are_identifiers() {
        assert!(is_valid_id("pages"));
        assert!(is_valid_id("by_lang2"));
        assert!(!is_valid_id("By-Lang"));
        assert!(!is_valid_id("2nd"));
        assert!(!is_valid_id("a__b"));
        assert!(!is_valid_id("a.b"));
    }

    #[test]
    fn non_ascii_text_keeps_byte_spans() {
        let text = "version: 1\nname: ü\nnodes:\n  a: { op: sql, params: { query: \"é\" } }\n";
        let spec = PipelineSpec::parse(Path::new("p.yaml"), text).expect("parses");
        let span = spec.nodes[0].param_spans.values["/query"];
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "\"é\"");
    }
}
