//! Row functions usable in `op: sql` and `dflow sql`.

use std::sync::Arc;

use dflow_engine::Registry;
use dflow_engine::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, StringBuilder, StructBuilder,
};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Fields};
use dflow_engine::datafusion::common::{DataFusionError, Result};
use dflow_engine::datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

/// `scheme://host[:port]` of a URL, lower-cased, or NULL when the text is not
/// an absolute http(s) URL. WebFAQ groups QA pairs by this origin.
pub fn url_origin(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    let host_port = host_port.to_ascii_lowercase();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    let host_port = host_port.strip_suffix(default_port).unwrap_or(&host_port);
    Some(format!("{scheme}://{host_port}"))
}

fn url_origin_udf(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [input] = arrays.as_slice() else {
        return Err(DataFusionError::Plan(
            "url_origin takes one argument".into(),
        ));
    };
    let input = dflow_engine::datafusion::arrow::compute::cast(input, &DataType::Utf8)?;
    let strings = input.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 24);
    for i in 0..strings.len() {
        if strings.is_null(i) {
            out.append_null();
        } else {
            out.append_option(url_origin(strings.value(i)));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

/// The single text argument of a UDF, as a Utf8 array.
fn one_text_arg(name: &str, args: &[ColumnarValue]) -> Result<ArrayRef> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [input] = arrays.as_slice() else {
        return Err(DataFusionError::Plan(format!("{name} takes one argument")));
    };
    Ok(dflow_engine::datafusion::arrow::compute::cast(
        input,
        &DataType::Utf8,
    )?)
}

/// The struct of one `extract_faq` item.
fn faq_item_fields() -> Fields {
    vec![
        Field::new("question", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
        Field::new("markup", DataType::Utf8, false),
    ]
    .into()
}

fn faq_list_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(faq_item_fields()),
        true,
    )))
}

/// `extract_faq(html)`: the page's FAQ pairs as a list of
/// `{question, answer, markup}`, with `extract`'s default params.
fn extract_faq_udf(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let input = one_text_arg("extract_faq", args)?;
    let html = input.as_string::<i32>();
    let params = crate::extract::ExtractParams::default();
    let item = StructBuilder::from_fields(faq_item_fields(), 0);
    let mut out = ListBuilder::new(item).with_field(Arc::new(Field::new(
        "item",
        DataType::Struct(faq_item_fields()),
        true,
    )));
    for i in 0..html.len() {
        if html.is_null(i) {
            out.append_null();
            continue;
        }
        let page = crate::extract::extract_page(html.value(i), &params);
        let items = out.values();
        for f in &page.faqs {
            for (j, v) in [f.question.as_str(), f.answer.as_str(), f.markup.as_str()]
                .into_iter()
                .enumerate()
            {
                if let Some(b) = items.field_builder::<StringBuilder>(j) {
                    b.append_value(v);
                }
            }
            items.append(true);
        }
        out.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

/// `detect_language(text)`: ISO 639-3 code of the bundled lid.176's top
/// guess, or NULL for text with no words.
fn detect_language_udf(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let input = one_text_arg("detect_language", args)?;
    let text = input.as_string::<i32>();
    let model =
        crate::langid::bundled_model().map_err(|e| DataFusionError::Execution(e.to_string()))?;
    let mut out = StringBuilder::with_capacity(text.len(), text.len() * 3);
    for i in 0..text.len() {
        if text.is_null(i) {
            out.append_null();
        } else {
            let guess = crate::langid::predict(model, text.value(i), 1);
            out.append_option(guess.into_iter().next().map(|(code, _)| code));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

pub fn register(registry: &mut Registry) {
    registry.register_udf(create_udf(
        "extract_faq",
        vec![DataType::Utf8],
        faq_list_type(),
        Volatility::Immutable,
        Arc::new(extract_faq_udf),
    ));
    registry.register_udf(create_udf(
        "detect_language",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(detect_language_udf),
    ));
    registry.register_udf(create_udf(
        "url_origin",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(url_origin_udf),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            url_origin("https://Example.com:443/a/b?c#d").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            url_origin("http://user@host:8080/x").as_deref(),
            Some("http://host:8080")
        );
        assert_eq!(url_origin("ftp://x/y"), None);
        assert_eq!(url_origin("not a url"), None);
    }
}
