//! Row functions usable in `op: sql` and `dflow sql`.

use std::sync::Arc;

use dflow_engine::Registry;
use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use dflow_engine::datafusion::arrow::datatypes::DataType;
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

pub fn register(registry: &mut Registry) {
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
