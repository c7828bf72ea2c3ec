//! The engine's promises, checked through the real binary and its run log.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Project, assert_cache_valid};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const ALL: [&str; 6] = [
    "big_orders",
    "by_customer",
    "customers",
    "orders",
    "per_customer",
    "summary",
];

#[test]
fn first_run_computes_everything_and_second_run_nothing() {
    let p = Project::new("shop");
    let first = p.run(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.computed_nodes(), set(&ALL));
    assert_eq!(
        first.computed()["orders"],
        vec!["data/orders-1.csv", "data/orders-2.csv"]
    );

    let second = p.run(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.computed().is_empty(),
        "recomputed {:?}",
        second.computed()
    );
    assert_eq!(second.hits().len(), ALL.len());

    // The run log is also a table.
    let runs = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT status, count(*) AS n FROM dflow_runs GROUP BY status ORDER BY status",
        "--format",
        "csv",
    ]);
    assert_eq!(runs, "status,n\ncomputed,8\nhit,8\n");

    // Exports landed beside the pipeline.
    assert_eq!(
        p.read("exports/summary.jsonl"),
        "{\"name\":\"Ana\",\"orders\":3,\"total\":52.5}\n{\"name\":\"Björn\",\"orders\":1,\"total\":45.25}\n{\"name\":\"Chen\",\"orders\":1,\"total\":10.0}\n"
    );
    assert_eq!(
        // The column the path names is in the path, not in the file.
        p.read("exports/orders/1.csv"),
        "order_id,amount\n1,12.5\n3,30.0\n7,10.0\n"
    );
    assert_cache_valid(&p.path(".dflow"));
}

#[test]
fn param_change_recomputes_node_and_downstream_only() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    p.edit("amount >= 10", "amount >= 11");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(
        log.computed_nodes(),
        set(&["big_orders", "by_customer", "per_customer", "summary"])
    );
    assert!(!log.computed().contains_key("orders"));
    assert!(!log.computed().contains_key("customers"));
}

#[test]
fn reordering_yaml_recomputes_nothing() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    // Same nodes, other order, other key order, comments and flow style.
    p.write(
        "pipeline.yaml",
        r#"# reordered
name: shop
version: 1
nodes:
  summary:
    params: { path: "exports/summary.jsonl" }
    inputs: { table: by_customer }
    op: export
  per_customer: { inputs: { table: big_orders }, op: export, params: { path: "exports/orders/{customer_id}.csv" } }
  by_customer:
    inputs: { c: customers, o: big_orders }
    op: sql
    params:
      query: >
        SELECT c.name, count(*) AS orders, sum(o.amount) AS total
        FROM o JOIN c ON o.customer_id = c.id
        GROUP BY c.name ORDER BY c.name
  big_orders:
    params:
      partition_by: o
      query: SELECT order_id, customer_id, amount FROM o WHERE amount >= 10
    op: sql
    inputs: { o: orders }
  customers: { params: { paths: ["data/customers.jsonl"] }, op: jsonl }
  orders: { op: csv, params: { paths: ["data/orders-*.csv"] }, resources: { batch_size: 2 } }
"#,
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "recomputed {:?}", log.computed());
}

#[test]
fn early_cutoff_keeps_downstream_fresh() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    // Every amount is positive: the filter changes, the output does not.
    p.edit("amount >= 10", "amount >= 10 AND amount > -1");
    let status = p.stdout(&["status", "pipeline.yaml"]);
    assert!(
        status.contains("big_orders") && status.contains("PARAMS"),
        "{status}"
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed_nodes(), set(&["big_orders"]));
    let status = p.stdout(&["status", "pipeline.yaml"]);
    assert_eq!(status.matches("FRESH").count(), ALL.len(), "{status}");
}

#[test]
fn new_source_file_computes_only_its_partitions() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    p.write(
        "data/orders-3.csv",
        "order_id,customer_id,amount\n8,2,99.0\n9,3,1.0\n",
    );
    let status = p.stdout(&["status", "pipeline.yaml"]);
    assert!(
        status.contains("1 new partition(s): data/orders-3.csv"),
        "{status}"
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let computed = log.computed();
    assert_eq!(computed["orders"], vec!["data/orders-3.csv"]);
    assert_eq!(computed["big_orders"], vec!["data/orders-3.csv"]);
    assert_eq!(log.hits()["orders"].len(), 2);
    assert_eq!(log.hits()["big_orders"].len(), 2);
    assert!(computed.contains_key("by_customer"));
    assert!(!computed.contains_key("customers"));
}

#[test]
fn only_until_and_force_select_nodes() {
    let p = Project::new("shop");
    let log = p.run(&["--until", "big_orders"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed_nodes(), set(&["big_orders", "orders"]));

    let log = p.run(&["--only", "customers"]);
    assert_eq!(log.computed_nodes(), set(&["customers"]));

    let log = p.run(&["--only", "by_customer"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed_nodes(), set(&["by_customer"]));

    let log = p.run(&["--force", "orders"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let computed = log.computed();
    assert_eq!(computed["orders"].len(), 2);
    // Forced recomputation gives identical content: early cut-off holds.
    assert!(!computed.contains_key("big_orders"));
    assert!(computed.contains_key("summary") && computed.contains_key("per_customer"));

    let bad = p.run(&["--only", "nope"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("no node `nope`"), "{}", bad.stderr);
}

#[test]
fn failed_node_skips_downstream_and_independent_branches_finish() {
    let p = Project::new("shop");
    p.edit(
        "  per_customer:",
        "  broken:\n    op: sql\n    inputs: { c: customers }\n    params: { query: \"SELECT CAST(name AS INT) AS n FROM c\" }\n  after_broken:\n    op: sql\n    inputs: { b: broken }\n    params: { query: SELECT * FROM b }\n  per_customer:",
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 1);
    assert_eq!(log.nodes_with("node_failed"), set(&["broken"]));
    assert_eq!(log.nodes_with("node_skipped"), set(&["after_broken"]));
    let finished = log.nodes_with("node_finished");
    for n in ALL {
        assert!(finished.contains(n), "{n} did not finish");
    }
    let failed = log
        .events
        .iter()
        .find(|e| e["event"] == "node_failed")
        .expect("failure event");
    assert!(
        failed["error"].as_str().unwrap_or("").contains("Ana"),
        "{failed}"
    );
    assert_cache_valid(&p.path(".dflow"));
    // The good nodes are cached.
    let again = p.run(&[]);
    assert!(!again.computed().contains_key("orders"));
}

#[test]
fn unreadable_parquet_names_file_and_node() {
    let p = Project::new("shop");
    p.write(
        "data/orders-2.csv",
        "order_id,customer_id,amount\n5,2,notanumber\n",
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 1);
    let failed = log
        .events
        .iter()
        .find(|e| e["event"] == "node_failed")
        .expect("failure event");
    assert_eq!(failed["node"], "orders");
    let msg = failed["error"].as_str().unwrap_or("");
    assert!(msg.contains("data/orders-2.csv"), "{msg}");
    assert!(log.nodes_with("node_finished").contains("customers"));
}

#[test]
fn compile_errors_exit_2_and_name_the_file() {
    let p = Project::new("shop");
    p.edit("op: sql", "op: sqll");
    let out = p.dflow(&["run", "pipeline.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DF1002") && err.contains("pipeline.yaml:13:9"),
        "{err}"
    );
    assert!(err.contains("did you mean `sql`?"), "{err}");

    let p = Project::new("shop");
    p.write("pipeline.yaml", "version: 1\nnodes: [oops\n");
    let out = p.dflow(&["check", "pipeline.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DF1001"));
}

#[test]
fn status_and_explain_name_the_cause() {
    let p = Project::new("shop");
    let status = p.stdout(&["status", "pipeline.yaml"]);
    assert_eq!(status.matches("MISSING").count(), ALL.len(), "{status}");
    assert_eq!(p.run(&[]).code, 0);
    p.edit("amount >= 10", "amount >= 20");
    let status = p.stdout(&["status", "pipeline.yaml", "--format", "json"]);
    let statuses: Vec<serde_json::Value> = serde_json::from_str(&status).expect("json");
    let by_node: BTreeMap<String, (String, String)> = statuses
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap_or_default().to_string(),
                (
                    s["state"].as_str().unwrap_or_default().to_string(),
                    s["causes"]
                        .get(0)
                        .and_then(|c| c["cause"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(by_node["orders"].0, "FRESH");
    assert_eq!(by_node["big_orders"], ("STALE".into(), "PARAMS".into()));
    assert_eq!(by_node["by_customer"], ("STALE".into(), "UPSTREAM".into()));

    let explain = p.stdout(&["explain", "pipeline.yaml", "big_orders"]);
    assert!(explain.contains("big_orders (sql): STALE"), "{explain}");
    assert!(
        explain.contains("params.query: \"SELECT order_id, customer_id, amount FROM o WHERE amount >= 10\" -> \"SELECT order_id, customer_id, amount FROM o WHERE amount >= 20\""),
        "{explain}"
    );
}

#[test]
fn dag_formats() {
    let p = Project::new("shop");
    let mermaid = p.stdout(&["dag", "pipeline.yaml", "--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert!(
        mermaid.contains("  orders -->|o| big_orders\n"),
        "{mermaid}"
    );
    let dot = p.stdout(&["dag", "pipeline.yaml", "--format", "dot"]);
    assert!(
        dot.contains("\"big_orders\" -> \"by_customer\" [label=\"o\"];"),
        "{dot}"
    );
    let check = p.stdout(&["check", "pipeline.yaml"]);
    assert!(
        check.contains("big_orders [sql, per-partition of o]"),
        "{check}"
    );
    assert!(
        check.contains("-> out: table(order_id: Int64, customer_id: Int64, amount: Float64)"),
        "{check}"
    );
}

#[test]
fn gc_drops_only_unreferenced_entries() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    p.edit("amount >= 10", "amount >= 20");
    assert_eq!(p.run(&[]).code, 0);
    let dry = p.stdout(&["gc", "pipeline.yaml", "--dry-run"]);
    assert!(dry.contains("would remove"), "{dry}");
    let out = p.stdout(&["gc", "pipeline.yaml"]);
    assert!(out.starts_with("removed "), "{out}");
    assert!(!out.starts_with("removed 0 "), "{out}");
    // Everything the lock references is still there: nothing to recompute.
    let log = p.run(&[]);
    assert!(log.computed().is_empty(), "{:?}", log.computed());
    let again = p.stdout(&["gc", "pipeline.yaml"]);
    assert!(again.starts_with("removed 0 entries"), "{again}");
}

#[test]
fn gc_and_run_refuse_a_damaged_registry_of_pipelines() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    let entries = || {
        std::fs::read_dir(p.path(".dflow/cache"))
            .expect("cache")
            .flatten()
            .map(|shard| std::fs::read_dir(shard.path()).expect("shard").count())
            .sum::<usize>()
    };
    let before = entries();
    p.write(".dflow/locks.json", "[\"/elsewhere/dflow.lock\", ");
    let gc = p.dflow(&["gc", "pipeline.yaml"]);
    assert_eq!(gc.status.code(), Some(1));
    let err = String::from_utf8_lossy(&gc.stderr);
    assert!(
        err.contains("DF3007") && err.contains("locks.json") && err.contains("delete it"),
        "{err}"
    );
    assert_eq!(entries(), before, "gc removed entries");
    let run = p.run(&[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("locks.json"), "{}", run.stderr);
    assert_eq!(p.read(".dflow/locks.json"), "[\"/elsewhere/dflow.lock\", ");
}

#[test]
fn sql_only_reads_unless_allowed_to_write() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    let target = p.path("leak.csv");
    let copy = format!("COPY (SELECT * FROM customers) TO '{}'", target.display());
    let create = format!(
        "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '{}'",
        p.path("data/orders-1.csv").display()
    );
    for sql in [&copy, &create] {
        let out = p.dflow(&["sql", "pipeline.yaml", sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("DF3008") && err.contains("--allow-write"),
            "{err}"
        );
    }
    assert!(!target.exists(), "a refused COPY wrote its file");
    let out = p.dflow(&["sql", "pipeline.yaml", &copy, "--allow-write"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.read("leak.csv").contains("Björn"));
}

#[test]
fn damaged_entries_are_recomputed_and_verify_finds_what_a_run_cannot() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    let lock: serde_json::Value = serde_json::from_str(&p.read("dflow.lock")).expect("lock");
    let part = &lock["pipelines"]["shop"]["nodes"]["orders"]["outputs"]["out"]["parts"][0];
    let (name, key) = (
        part["name"].as_str().expect("name"),
        part["key"].as_str().expect("key"),
    );
    let file = p
        .path(".dflow/cache")
        .join(&key[..2])
        .join(key)
        .join(part["file"].as_str().expect("file"));
    let bytes = std::fs::read(&file).expect("part");

    // Cut short: `status` and `sql` no longer take it for whole; the next
    // run sees it, says so, and recomputes it.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let status = p.stdout(&["status", "pipeline.yaml"]);
    let orders = status
        .lines()
        .find(|l| l.starts_with("orders "))
        .expect("orders line");
    assert!(
        !orders.contains("FRESH") && orders.contains("damaged"),
        "{status}"
    );
    let sql = p.dflow(&["sql", "pipeline.yaml", "SELECT count(*) FROM orders"]);
    assert!(!sql.status.success(), "sql read a damaged entry");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["orders"], vec![name.to_string()]);
    let warnings: Vec<&str> = log
        .events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains(key) && warnings[0].contains("bytes"),
        "{warnings:?}"
    );
    assert_eq!(std::fs::read(&file).expect("part"), bytes);
    let ok = p.dflow(&["verify", "pipeline.yaml"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Same size, other bytes: only `verify` sees it, and removes the entry.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&file, &flipped).expect("flip");
    let out = p.dflow(&["verify", "pipeline.yaml", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(key) && text.contains("content digest") && text.contains("1 damaged"),
        "{text}"
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["orders"], vec![name.to_string()]);
    assert!(p.dflow(&["verify", "pipeline.yaml"]).status.success());
    assert_cache_valid(&p.path(".dflow"));
}

#[test]
fn lock_file_is_sorted_and_stable() {
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    let first = p.read("dflow.lock");
    assert_eq!(p.run(&[]).code, 0);
    assert_eq!(first, p.read("dflow.lock"));
    let lock: serde_json::Value = serde_json::from_str(&first).expect("json");
    let nodes: Vec<&String> = lock["pipelines"]["shop"]["nodes"]
        .as_object()
        .expect("nodes")
        .keys()
        .collect();
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(nodes, sorted);
}

#[test]
fn identical_files_share_entries_and_both_count() {
    let p = Project::new("shop");
    p.write("data/orders-3.csv", &p.read("data/orders-2.csv"));
    assert_eq!(p.run(&[]).code, 0);
    let again = p.run(&[]);
    assert!(again.computed().is_empty(), "{:?}", again.computed());
    let n = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT count(*) AS n FROM orders",
        "--format",
        "csv",
    ]);
    assert_eq!(n, "n\n10\n");
    let n = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT count(*) AS n FROM big_orders",
        "--format",
        "csv",
    ]);
    assert_eq!(n, "n\n7\n");
}

#[test]
fn sql_shell_reads_statements_until_semicolon() {
    use std::io::Write;
    let p = Project::new("shop");
    assert_eq!(p.run(&[]).code, 0);
    let mut child = p
        .command(&["sql", "pipeline.yaml", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn shell");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SELECT name\nFROM customers ORDER BY id;\n\\q\n")
        .expect("write");
    let out = child.wait_with_output().expect("shell");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name\nAna\nBjörn\nChen\n"), "{text}");
}

#[test]
fn corrupt_parquet_file_fails_its_partition_with_the_file_named() {
    use dflow_engine::datafusion::arrow::array::Int64Array;
    use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
    use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
    use dflow_engine::datafusion::parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    let p = Project::new("empty");
    std::fs::create_dir_all(p.path("in")).expect("mkdir");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let file = std::fs::File::create(p.path("in/a.parquet")).expect("create");
    let mut w = ArrowWriter::try_new(file, schema.clone(), None).expect("writer");
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
        .expect("batch");
    w.write(&batch).expect("write");
    w.close().expect("close");
    p.write("in/b.parquet", "PAR1 this is not parquet at all PAR1");
    p.write(
        "pipeline.yaml",
        "version: 1\nname: pq\nnodes:\n  src: { op: parquet, params: { paths: [\"in/*.parquet\"] } }\n  n:\n    op: sql\n    inputs: { t: src }\n    params: { query: SELECT count(*) AS n FROM t }\n  other: { op: jsonl, params: { paths: [\"o.jsonl\"] } }\n",
    );
    p.write("o.jsonl", "{\"a\": 1}\n");
    let log = p.run(&[]);
    assert_eq!(log.code, 1);
    let failed = log
        .events
        .iter()
        .find(|e| e["event"] == "node_failed")
        .expect("failure");
    assert_eq!(failed["node"], "src");
    let msg = failed["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("in/b.parquet") && msg.contains("not a readable Parquet file"),
        "{msg}"
    );
    assert_eq!(log.nodes_with("node_skipped"), set(&["n"]));
    assert!(log.nodes_with("node_finished").contains("other"));
    assert_cache_valid(&p.path(".dflow"));
    // The good partition was cached: fixing the file computes only it.
    std::fs::remove_file(p.path("in/b.parquet")).expect("rm");
    let fixed = p.run(&[]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    assert!(
        !fixed.computed().contains_key("src"),
        "{:?}",
        fixed.computed()
    );
}

#[test]
fn committed_pipeline_json_schema_is_current() {
    let p = Project::new("empty");
    let generated = p.stdout(&["schema"]);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pipeline.schema.json"),
    )
    .expect("schemas/pipeline.schema.json");
    assert_eq!(
        generated, committed,
        "regenerate with: target/debug/dflow schema > schemas/pipeline.schema.json"
    );
    let ops = p.stdout(&["ops", "sql"]);
    assert!(ops.contains("query: string (required)"), "{ops}");
}

/// The value of `name` in a live process's environment (Linux `/proc`).
#[cfg(target_os = "linux")]
fn environment_value(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|entry| {
        let entry = String::from_utf8_lossy(entry);
        let (k, v) = entry.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// The running dflow (here its interactive SQL shell, waiting on stdin)
/// has mimalloc's lazy purge and no transparent huge pages: `src/main.rs`
/// re-executed it with the variables, keeping the pid. A value the user set
/// is kept as it was.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_runs_with_lazy_memory_return_unless_told_otherwise() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    const PURGE: &str = "MIMALLOC_PURGE_DECOMMITS";
    const THP: &str = "MIMALLOC_ALLOW_THP";
    let p = Project::new("shop");
    let cases = [
        ([None, None], ["0", "0"]),
        ([Some("1"), None], ["1", "0"]),
        ([None, Some("1")], ["0", "1"]),
    ];
    for (given, expected) in cases {
        let mut cmd = Command::new(common::bin());
        cmd.current_dir(p.dir.path())
            .args(["sql", "pipeline.yaml"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (var, value) in [PURGE, THP].into_iter().zip(given) {
            match value {
                Some(v) => cmd.env(var, v),
                None => cmd.env_remove(var),
            };
        }
        let mut child = cmd.spawn().expect("spawn dflow sql");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = [None, None];
        while Instant::now() < deadline {
            seen = [PURGE, THP].map(|var| environment_value(child.id(), var));
            if seen.iter().all(Option::is_some) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(child.stdin.take()); // end of input: the shell exits
        let status = child.wait().expect("dflow sql exits");
        assert!(status.success(), "dflow sql failed: {status}");
        assert_eq!(
            seen,
            expected.map(|v| Some(v.to_string())),
            "given {given:?}"
        );
    }
}
