//! The same pipeline on a Ballista cluster: a scheduler and two executors,
//! each a `dflow cluster` process on localhost, a real S3 server (s3s-fs,
//! in this process) holding the sources and the shared cache. A cluster run
//! gives the lock file, tables and exports of a local run, spreads its units
//! over both executors, survives losing one, and computes nothing the
//! second time.
#![cfg(feature = "cluster")]

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, RunLog};
use s3::{BUCKET, S3Server, dflow_env as dflow, run_env as run, sql_env as sql};

const PIPELINE: &str = r#"version: 1
name: cluster
nodes:
  pages:
    op: warc
    params: { paths: ["sample/release-*/*.warc.gz"] }
  owi:
    op: owi
    params: { paths: ["sample/owi/*/*.parquet"] }
  faqs:
    op: extract
    inputs: { pages: pages }
  clean:
    op: clean
    inputs: { faqs: faqs }
  unique:
    op: dedup
    inputs: { faqs: clean }
  per_site:
    op: sql
    inputs: { f: unique }
    params: { query: "SELECT url, count(*) AS pairs FROM f GROUP BY url ORDER BY url" }
  owi_langs:
    op: sql
    inputs: { o: owi }
    params: { query: "SELECT url, language, title FROM o ORDER BY url, language" }
  export_sites:
    op: export
    inputs: { table: per_site }
    params: { path: "exports/sites.csv" }
"#;

const QUERIES: [&str; 3] = [
    "SELECT * FROM per_site",
    "SELECT * FROM owi_langs",
    "SELECT count(*) AS n, sum(length(question)) AS q FROM unique",
];

/// Queries whose answer does not depend on the order files are read in.
const CLUSTER_QUERIES: [&str; 3] = [
    "SELECT * FROM per_site ORDER BY url",
    "SELECT language, count(*) AS n FROM owi_langs GROUP BY language ORDER BY language",
    "SELECT count(*) AS n, sum(length(question)) AS q, max(answer) AS a FROM unique",
];

/// A port free now, whose next port is free too (an executor takes both).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free ports in a row");
}

fn wait_for_port(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scheduler and executors, each a `dflow cluster` process, killed when
/// dropped.
struct Cluster {
    scheduler: u16,
    executors: Vec<(String, Child)>,
    processes: Vec<Child>,
    work: tempfile::TempDir,
}

impl Cluster {
    fn start(s3: &S3Server, executors: &[&str]) -> Self {
        let scheduler = free_port_pair();
        let child = Command::new(common::bin())
            .args(["cluster", "scheduler", "--executor-timeout-secs", "3"])
            .arg(format!("--bind=127.0.0.1:{scheduler}"))
            .envs(s3.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the scheduler");
        wait_for_port(scheduler, "the scheduler");
        let mut cluster = Cluster {
            scheduler,
            executors: Vec::new(),
            processes: vec![child],
            work: tempfile::tempdir().expect("tempdir"),
        };
        for name in executors {
            cluster.add_executor(s3, name);
        }
        cluster
    }

    /// Starts executor `name`; one named `…@gpu` is started with `--gpu`.
    fn add_executor(&mut self, s3: &S3Server, name: &str) {
        let port = free_port_pair();
        let (base, gpu) = match name.strip_suffix("@gpu") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let mut command = Command::new(common::bin());
        command
            .args([
                "cluster",
                "executor",
                "--slots",
                "2",
                "--heartbeat-secs",
                "1",
            ])
            .arg(format!("--scheduler=127.0.0.1:{}", self.scheduler))
            .arg(format!("--bind=127.0.0.1:{port}"))
            .arg(format!("--name={base}"))
            .arg(format!(
                "--work-dir={}",
                self.work.path().join(base).display()
            ))
            .envs(s3.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if gpu {
            command.arg("--gpu");
        }
        let child = command.spawn().expect("start an executor");
        // Its data service listens once it has registered with the scheduler.
        wait_for_port(port, name);
        self.executors.push((name.to_string(), child));
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.scheduler)
    }

    /// SIGKILLs the executor `name`.
    fn kill(&mut self, name: &str) {
        for (n, child) in &mut self.executors {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.executors {
            let _ = child.kill();
            let _ = child.wait();
        }
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn project() -> Project {
    let p = Project::new("empty");
    p.write("pipeline.yaml", PIPELINE);
    p
}

/// The executors the run log says ran units.
fn executors_used(log: &RunLog) -> std::collections::BTreeSet<String> {
    log.events
        .iter()
        .filter(|e| e["event"] == "unit" && e["status"] == "computed")
        .filter_map(|e| e["note"].as_str())
        .filter_map(|n| n.strip_prefix("on "))
        .map(|n| n.split(':').next().unwrap_or(n).to_string())
        .collect()
}

/// A local run of the pipeline with its sources in the store: what a
/// cluster run must reproduce.
fn local_reference(s3: &S3Server, root: &str) -> Project {
    let local = project();
    let log = run(&local, s3, &[root]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    local
}

fn assert_same_results(a: &Project, b: &Project, s3: &S3Server, b_args: &[&str], root: &str) {
    assert_eq!(
        a.read("dflow.lock"),
        b.read("dflow.lock"),
        "the lock files differ"
    );
    assert_eq!(
        a.read("exports/sites.csv"),
        b.read("exports/sites.csv"),
        "the exports differ"
    );
    for q in QUERIES {
        assert_eq!(sql(a, s3, &[root], q), sql(b, s3, b_args, q), "{q}");
    }
}

#[test]
fn a_cluster_run_gives_the_results_of_a_local_run() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let local = local_reference(&s3, &root);

    let cluster = Cluster::start(&s3, &["exec-a", "exec-b"]);
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let on = format!("--cluster={}", cluster.address());
    let remote = project();
    let log = run(&remote, &s3, &[&root, &cache, &on]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["pages"].len(), 5, "{:?}", log.computed());
    assert_eq!(log.computed()["unique"].len(), 5, "{:?}", log.computed());
    let used = executors_used(&log);
    assert_eq!(
        used,
        ["exec-a", "exec-b"].map(String::from).into(),
        "units ran on {used:?}"
    );
    assert_same_results(&local, &remote, &s3, &[&root, &cache], &root);

    // The same queries on the cluster, over the tables as published.
    for q in CLUSTER_QUERIES {
        assert_eq!(
            sql(&local, &s3, &[&root], q),
            sql(&remote, &s3, &[&root, &cache, &on], q),
            "{q}"
        );
    }

    // Every entry the run references was published by an executor; a second
    // run, on another machine's empty working copy, computes nothing.
    let again = project();
    let log = run(&again, &s3, &[&root, &cache, &on]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    assert_eq!(remote.read("dflow.lock"), again.read("dflow.lock"));
    // It found its hits by their manifests: of all the entries, it pulled
    // only the export's, whose files `publish` copies out.
    let pulled: Vec<_> = std::fs::read_dir(again.path(".dflow/cache"))
        .expect("working copy")
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    assert_eq!(pulled.len(), 1, "{pulled:?}");
}

#[test]
fn losing_an_executor_mid_run_changes_nothing() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let local = local_reference(&s3, &root);

    let mut cluster = Cluster::start(&s3, &["exec-a", "exec-b"]);
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let on = format!("--cluster={}", cluster.address());
    let remote = project();
    let mut child = remote
        .command(&[
            "run",
            "pipeline.yaml",
            "--log-format",
            "json",
            &root,
            &cache,
            &on,
        ])
        .envs(s3.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the run");
    // Kill an executor the moment `clean` starts: its units are being
    // handed out to both executors. What it was running or had queued is
    // requeued on the other, and the nodes after it run there alone.
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the run's log");
        if !killed
            && line.contains(r#""event":"node_started""#)
            && line.contains(r#""node":"clean""#)
        {
            cluster.kill("exec-a");
            killed = true;
        }
        lines.push(line);
    }
    let out = child.wait_with_output().expect("run");
    let log = RunLog {
        events: lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(killed, "the run never started `clean`: {}", log.stderr);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_same_results(&local, &remote, &s3, &[&root, &cache], &root);
    // The executor left behind no half entry: every published entry checks.
    let verify = dflow(
        &remote,
        &s3,
        &["verify", "pipeline.yaml", "--all", &root, &cache],
    );
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // After the kill, every unit ran on the executor left.
    let after: std::collections::BTreeSet<String> = log
        .events
        .iter()
        .filter(|e| e["event"] == "unit" && e["status"] == "computed")
        .filter(|e| ["unique", "per_site"].contains(&e["node"].as_str().unwrap_or("")))
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect();
    assert_eq!(after, ["on exec-b".to_string()].into(), "{after:?}");
}

#[test]
fn a_cluster_run_needs_a_scheduler_and_a_shared_cache() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let p = project();
    let nobody = format!("--cluster=127.0.0.1:{}", free_port_pair());
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");

    let out = dflow(&p, &s3, &["run", "pipeline.yaml", &root, &cache, &nobody]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no scheduler answers at"), "{err}");
    assert!(err.contains("DF3010"), "{err}");

    let out = dflow(&p, &s3, &["run", "pipeline.yaml", &root, &nobody]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cache-dir s3://"), "{err}");
    assert!(!Path::new(&p.path("dflow.lock")).exists());
}

#[test]
fn a_unit_that_fails_on_an_executor_fails_its_node_as_locally() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let cluster = Cluster::start(&s3, &["exec-a"]);
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let on = format!("--cluster={}", cluster.address());
    let p = project();
    // A query that fails while it runs, on every row.
    p.edit(
        "SELECT url, language, title FROM o ORDER BY url, language",
        "SELECT url, CAST(title AS INT) AS n FROM o",
    );
    let log = run(&p, &s3, &[&root, &cache, &on]);
    assert_eq!(log.code, 1, "{}", log.stderr);
    let failed: Vec<_> = log
        .events
        .iter()
        .filter(|e| e["event"] == "node_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["node"], "owi_langs");
    assert_eq!(failed[0]["code"], "DF3003", "{failed:?}");
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("on executor exec-a"), "{error}");
    // The other branch finished, its export written.
    assert!(
        log.computed().contains_key("export_sites"),
        "{:?}",
        log.computed()
    );
    assert!(p.path("exports/sites.csv").is_file());
}

#[test]
fn units_of_accelerated_nodes_go_to_gpu_executors() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let cluster = Cluster::start(&s3, &["exec-a", "exec-g@gpu"]);
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let on = format!("--cluster={}", cluster.address());
    let tiny =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("operators/neural/tests/fixtures/tiny-bert");
    let p = Project::new("empty");
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: gpu
nodes:
  pages:
    op: warc
    params: {{ paths: ["sample/release-*/*.warc.gz"] }}
  faqs:
    op: extract
    inputs: {{ pages: pages }}
  tiny:
    op: model
    params: {{ source: "path:{}" }}
  vectors:
    op: embed
    inputs: {{ rows: faqs, model: tiny }}
    params: {{ template: "{{question}}", dimensions: 32, max_length: 32 }}
"#,
            tiny.display()
        ),
    );
    let log = run(&p, &s3, &[&root, &cache, &on]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let ran_on = |node: &str| -> std::collections::BTreeSet<String> {
        log.events
            .iter()
            .filter(|e| e["event"] == "unit" && e["node"] == node)
            .filter_map(|e| e["note"].as_str())
            .filter_map(|n| n.strip_prefix("on "))
            .map(|n| n.split(':').next().unwrap_or(n).to_string())
            .collect()
    };
    assert_eq!(log.computed()["vectors"].len(), 5, "{:?}", log.computed());
    assert_eq!(ran_on("vectors"), ["exec-g@gpu".to_string()].into());
    // The other nodes' units still spread over both.
    let mut others = ran_on("pages");
    others.extend(ran_on("faqs"));
    assert_eq!(others.len(), 2, "{others:?}");
}
