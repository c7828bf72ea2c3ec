//! Golden tests of `dflow sql` (sqllogictest-style `.slt` files in
//! `tests/sql/`). `DFLOW_SLT_COMPLETE=1` rewrites the expected output.

mod common;

use common::Project;

struct Case {
    kind: String,
    sql: String,
    expected: String,
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let kind = line.to_string();
        let mut sql = Vec::new();
        for l in lines.by_ref() {
            if l.trim_end() == "----" {
                break;
            }
            sql.push(l);
        }
        let mut expected = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            expected.push(lines.next().unwrap_or_default());
        }
        cases.push(Case {
            kind,
            sql: sql.join("\n"),
            expected: expected.join("\n"),
        });
    }
    cases
}

fn render(cases: &[Case], header: &str) -> String {
    let mut out = header.to_string();
    for c in cases {
        out.push_str(&format!("\n{}\n{}\n----\n{}\n", c.kind, c.sql, c.expected));
    }
    out
}

#[test]
fn sql_golden_files() {
    let p = Project::new("shop");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let complete = std::env::var("DFLOW_SLT_COMPLETE").is_ok();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/sql") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("slt") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read slt");
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut cases = parse(&text);
        for case in &mut cases {
            let out = p.dflow(&["sql", "pipeline.yaml", &case.sql, "--format", "csv"]);
            let got = if case.kind == "statement error" {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                if out.status.success() {
                    failures.push(format!(
                        "{}: expected an error from {}",
                        path.display(),
                        case.sql
                    ));
                    continue;
                }
                if complete || err.contains(&case.expected) {
                    if complete {
                        case.expected.clone()
                    } else {
                        continue;
                    }
                } else {
                    failures.push(format!(
                        "{}: error of `{}` lacks `{}`: {err}",
                        path.display(),
                        case.sql,
                        case.expected
                    ));
                    continue;
                }
            } else {
                if !out.status.success() {
                    failures.push(format!(
                        "{}: `{}` failed: {}",
                        path.display(),
                        case.sql,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    continue;
                }
                String::from_utf8_lossy(&out.stdout).trim_end().to_string()
            };
            if complete {
                case.expected = got;
            } else if got != case.expected {
                failures.push(format!(
                    "{}: `{}`\n--- expected\n{}\n--- got\n{}",
                    path.display(),
                    case.sql,
                    case.expected,
                    got
                ));
            }
        }
        if complete {
            std::fs::write(&path, render(&cases, &header)).expect("rewrite slt");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
