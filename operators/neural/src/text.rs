//! The text a neural operator reads from a row: one column, or a template
//! such as `{question} {answer}` over several.

use dflow_engine::datafusion::arrow::array::{Array, AsArray, RecordBatch};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Schema};

use crate::error::NeuralError;

/// Literal text and column references.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Column(String),
}

impl Template {
    pub fn column(name: &str) -> Self {
        Self {
            parts: vec![Part::Column(name.to_string())],
        }
    }

    /// The text of an operator whose params give exactly one of `column`
    /// and `template`.
    pub fn from_params(
        column: Option<&str>,
        template: Option<&str>,
    ) -> Result<Self, dflow_engine::registry::BuildError> {
        use dflow_engine::registry::BuildError;
        match (column, template) {
            (Some(c), None) => Ok(Template::column(c)),
            (None, Some(t)) => {
                Template::parse(t).map_err(|e| BuildError::invalid("/template", e.to_string()))
            }
            _ => Err(BuildError::invalid(
                "",
                "give exactly one of `column` and `template`",
            )),
        }
    }

    /// Parses `{column}` references; `{{` and `}}` are literal braces.
    pub fn parse(s: &str) -> Result<Self, NeuralError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if name.trim().is_empty() {
                        return Err(NeuralError::Config(format!("`{s}`: an empty `{{}}`")));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Column(name.trim().to_string()));
                }
                '}' => {
                    return Err(NeuralError::Config(format!(
                        "`{s}`: a `}}` without `{{` (write `}}}}` for a brace)"
                    )));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.iter().any(|p| matches!(p, Part::Column(_))) {
            return Err(NeuralError::Config(format!(
                "`{s}` names no column (write `{{column}}`)"
            )));
        }
        Ok(Self { parts })
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Every referenced column exists and is text.
    pub fn check(&self, schema: &Schema) -> Result<(), NeuralError> {
        for c in self.columns() {
            match schema.field_with_name(c) {
                Ok(f)
                    if matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) => {}
                Ok(f) => {
                    return Err(NeuralError::Data(format!(
                        "column `{c}` is {}, not text",
                        f.data_type()
                    )));
                }
                Err(_) => {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(NeuralError::Data(format!(
                        "no column `{c}` (columns: {})",
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The text of every row of `batch`: `prefix` + the template filled in
/// (nulls as empty text).
pub fn texts_of(
    batch: &RecordBatch,
    template: &Template,
    prefix: &str,
) -> Result<Vec<String>, NeuralError> {
    let mut cols = Vec::new();
    for c in template.columns() {
        let col = batch
            .column_by_name(c)
            .ok_or_else(|| NeuralError::Data(format!("no column `{c}`")))?;
        let col = dflow_engine::datafusion::arrow::compute::cast(col, &DataType::Utf8)
            .map_err(|e| NeuralError::arrow(format!("column `{c}`"), e))?;
        cols.push(col);
    }
    let strings: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
    Ok((0..batch.num_rows())
        .map(|i| {
            let mut out = prefix.to_string();
            let mut k = 0;
            for p in &template.parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Column(_) => {
                        let s = strings[k];
                        if s.is_valid(i) {
                            out.push_str(s.value(i));
                        }
                        k += 1;
                    }
                }
            }
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("{question} {{x}} {answer}").expect("parses");
        assert_eq!(t.columns().collect::<Vec<_>>(), ["question", "answer"]);
        assert!(Template::parse("no columns").is_err());
        assert!(Template::parse("{}").is_err());
        assert!(Template::parse("a } b {c}").is_err());
    }
}
