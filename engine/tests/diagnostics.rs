//! Every compile error renders with its code, file:line:col, a snippet and a
//! help line. Snapshots hold the exact text (`cargo insta review` to update).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
use dflow_engine::{
    Error, InputPort, InputPorts, Operator, Partitioning, PipelineSpec, PlanContext, PortType,
    Registry, Result, Task,
};
use serde::{Deserialize, Serialize};

/// A test operator with a typed, required param and a typed input port.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NeedsTextParams {
    threshold: f64,
    #[serde(default)]
    mode: Option<String>,
}

struct NeedsText;

impl Operator for NeedsText {
    fn version(&self) -> u32 {
        1
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }
    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(vec![InputPort::table(
            "rows",
            Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("text", DataType::Utf8, true),
            ]),
        )])
    }
    fn output_ports(
        &self,
        _ctx: &PlanContext,
        _inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        Ok(BTreeMap::new())
    }
    fn execute(&self, _task: &mut Task<'_>) -> Result<()> {
        Err(Error::internal("not run in these tests"))
    }
}

fn registry() -> Registry {
    let mut r = dflow_engine::builtin_registry();
    r.register("needs_text", "test op", |_p: NeedsTextParams, _| {
        Ok(Arc::new(NeedsText) as Arc<dyn Operator>)
    });
    r
}

fn compile_errors(yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rows.csv"), "id,text,n\na,1,2\nb,2,3\n").expect("fixture");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut spec = match PipelineSpec::parse(Path::new("pipeline.yaml"), yaml) {
        Ok(s) => s,
        Err(d) => return d.render_plain(),
    };
    spec.base_dir = dir.path().to_path_buf();
    match dflow_engine::compile(spec, &registry(), runtime.handle().clone()) {
        Ok(_) => "compiled".into(),
        Err(d) => d.render_plain(),
    }
}

const HEAD: &str = "version: 1\nname: t\nnodes:\n";

#[test]
fn unknown_op() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sqll\n    inputs: {{ t: rows }}\n"
    )));
}

#[test]
fn unknown_param() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sql\n    inputs: {{ t: rows }}\n    params:\n      qeury: SELECT 1\n"
    )));
}

#[test]
fn wrongly_typed_param() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows:\n    op: csv\n    params:\n      paths: [rows.csv]\n      infer_rows: many\n"
    )));
}

#[test]
fn missing_required_param() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  check:\n    op: needs_text\n    inputs: {{ rows: rows }}\n    params: {{ mode: strict }}\n"
    )));
}

#[test]
fn input_names_unknown_node() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sql\n    inputs: {{ t: row }}\n    params: {{ query: SELECT * FROM t }}\n"
    )));
}

#[test]
fn unknown_input_port() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  out:\n    op: export\n    inputs: {{ tabel: rows }}\n    params: {{ path: out.csv }}\n"
    )));
}

#[test]
fn unknown_output_port() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sql\n    inputs: {{ t: rows.rejected }}\n    params: {{ query: SELECT * FROM t }}\n"
    )));
}

#[test]
fn duplicate_id() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n"
    )));
}

#[test]
fn invalid_id() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  Rows-1: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n"
    )));
}

#[test]
fn cycle_shows_whole_path() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  a:\n    op: sql\n    inputs: {{ t: c }}\n    params: {{ query: SELECT * FROM t }}\n  b:\n    op: sql\n    inputs: {{ t: a }}\n    params: {{ query: SELECT * FROM t }}\n  c:\n    op: sql\n    inputs: {{ t: b }}\n    params: {{ query: SELECT * FROM t }}\n"
    )));
}

#[test]
fn schema_mismatch() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sql\n    inputs: {{ t: rows }}\n    params: {{ query: \"SELECT text, n FROM t\" }}\n  check:\n    op: needs_text\n    inputs: {{ rows: q }}\n    params: {{ threshold: 0.5 }}\n"
    )));
}

#[test]
fn yaml_syntax_error() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }}\n  q: [\n"
    )));
}

#[test]
fn missing_source_file() {
    insta::assert_snapshot!(compile_errors(&format!(
        "{HEAD}  rows: {{ op: csv, params: {{ paths: [nope.csv] }} }}\n"
    )));
}

#[test]
fn every_error_is_collected() {
    let text = compile_errors(&format!(
        "{HEAD}  Bad: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sqll\n  r:\n    op: sql\n    inputs: {{ t: nowhere }}\n    params: {{ query: SELECT 1, bogus: 1 }}\n"
    ));
    for code in ["DF1007", "DF1002", "DF1003", "DF2001"] {
        assert!(text.contains(code), "{code} missing in:\n{text}");
    }
}

#[test]
fn valid_pipeline_compiles() {
    assert_eq!(
        compile_errors(&format!(
            "{HEAD}  rows: {{ op: csv, params: {{ paths: [rows.csv] }} }}\n  q:\n    op: sql\n    inputs: {{ t: rows }}\n    params: {{ query: \"SELECT CAST(text AS VARCHAR) AS text, id FROM t\" }}\n  check:\n    op: needs_text\n    inputs: {{ rows: q }}\n    params: {{ threshold: 0.5 }}\n"
        )),
        "compiled"
    );
}
