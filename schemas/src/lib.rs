//! Arrow schemas of the tables that cross operator boundaries (see
//! `../shared/reference/webfaq2.md`). Operator crates declare their ports
//! with these so that `dflow check` type-checks edges between crates.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// `pages`: one fetched or archived web page.
pub fn pages() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new(
            "fetched_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("http_status", DataType::UInt16, true),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("charset", DataType::Utf8, true),
        Field::new("html", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("record_id", DataType::Utf8, true),
        Field::new("record_offset", DataType::UInt64, false),
    ]))
}

/// `results`: retrieval metrics, one row per (system, language) plus the
/// macro average (`evaluate`, `report`, and `train`'s evaluation during
/// training).
pub fn results() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("system", DataType::Utf8, false),
        Field::new("language", DataType::Utf8, false),
        Field::new("queries", DataType::UInt64, false),
        f("ndcg@10"),
        f("mrr@10"),
        f("recall@10"),
        f("recall@100"),
        f("map@100"),
    ]))
}

/// `faqs`: one question–answer pair extracted from a page.
pub fn faqs() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("keywords", DataType::Utf8, true),
        Field::new("html_lang", DataType::Utf8, true),
        Field::new("markup", DataType::Utf8, false),
        Field::new("position", DataType::UInt32, false),
    ]))
}

/// The `rejected` port of `extract`: what could not be read on a page (a
/// JSON-LD block that is not JSON even after repair, a question without an
/// answer), with the page it was on.
pub fn extract_rejected() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("markup", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// `input` without the fields named like `added`, then `added`: the schema
/// of an operator that adds columns (`langid`, `embed`, `score`), which
/// replaces those of an earlier run of itself.
pub fn schema_with(input: &Schema, added: &[Field]) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .filter(|f| !added.iter().any(|a| a.name() == f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(added.iter().cloned());
    Arc::new(Schema::new(fields))
}

/// `batch` with `columns` added, laid out as [`schema_with`] made `schema`.
pub fn batch_with(
    batch: &RecordBatch,
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let added = &schema.fields()[schema.fields().len().saturating_sub(columns.len())..];
    let mut cols: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !added.iter().any(|a| a.name() == f.name()))
        .map(|(_, c)| c.clone())
        .collect();
    cols.extend(columns);
    RecordBatch::try_new(schema.clone(), cols)
}

/// The `rejected` port of a filter: the dropped rows' input columns plus the
/// rule that dropped them.
pub fn with_reason(input: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("reason", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The struct of one item of OWI's `faq` column.
pub fn owi_faq_item() -> DataType {
    DataType::Struct(
        vec![
            Field::new("question", DataType::Utf8, true),
            Field::new("answer", DataType::Utf8, true),
            Field::new("language", DataType::Utf8, true),
        ]
        .into(),
    )
}

/// `owi_pages`: one page of an Open Web Index metadata file, normalised
/// (strings as Utf8, `warc_date` as a UTC timestamp, absent optional columns
/// as nulls).
pub fn owi_pages() -> SchemaRef {
    let strings = || DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("record_id", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("keywords", DataType::Utf8, true),
        Field::new(
            "warc_date",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("language", DataType::Utf8, true),
        Field::new("json_ld", strings(), true),
        Field::new("microdata", strings(), true),
        Field::new(
            "faq",
            DataType::List(Arc::new(Field::new("item", owi_faq_item(), true))),
            true,
        ),
        Field::new("source_file", DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_columns_replace_their_namesakes_and_go_last() {
        use datafusion::arrow::array::{Int32Array, StringArray};
        let input = Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("score", DataType::Utf8, false),
        ]);
        let out = schema_with(&input, &[Field::new("score", DataType::Int32, false)]);
        assert_eq!(
            out.fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            ["a", "score"]
        );
        let batch = RecordBatch::try_new(
            Arc::new(input),
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["old"])),
            ],
        )
        .expect("batch");
        let b = batch_with(&batch, &out, vec![Arc::new(Int32Array::from(vec![7]))]).expect("with");
        assert_eq!(b.num_columns(), 2);
        assert_eq!(b.column(1).data_type(), &DataType::Int32);
    }

    #[test]
    fn rejected_adds_reason() {
        let s = with_reason(&faqs());
        assert_eq!(s.fields().len(), faqs().fields().len() + 1);
        assert_eq!(s.field(s.fields().len() - 1).name(), "reason");
    }
}
