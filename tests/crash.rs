//! Crash safety and concurrent runs, with the real binary: a run killed with
//! SIGKILL at any point never leaves an entry that looks valid but is
//! incomplete, and the next run finishes with byte-identical outputs; two
//! runs on one cache never corrupt it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use common::{Project, assert_cache_valid, copy_dir};

const PIPELINE: &str = r#"version: 1
name: crash
nodes:
  events:
    op: csv
    params: { paths: ["data/*.csv"] }
  scored:
    op: sql
    inputs: { e: events }
    params:
      partition_by: e
      query: >
        SELECT id, user_id, lower(word) AS word, value * 2.5 + length(word) AS score
        FROM e WHERE value % 7 <> 3
  per_user:
    op: sql
    inputs: { s: scored }
    params:
      query: >
        SELECT user_id, count(*) AS n, sum(score) AS total, max(word) AS last_word
        FROM s GROUP BY user_id ORDER BY user_id
  export_users:
    op: export
    inputs: { table: per_user }
    params: { path: "exports/users.parquet" }
  export_scored:
    op: export
    inputs: { table: scored }
    params: { path: "exports/scored/{user_id}.parquet" }
"#;

/// A project with enough data that a run takes a noticeable time.
fn big_project() -> Project {
    let p = Project::new("shop");
    std::fs::remove_dir_all(p.path("data")).expect("clear");
    p.write("pipeline.yaml", PIPELINE);
    let words = ["alpha", "Beta", "gamma", "DELTA", "epsilon", "zeta", "Eta"];
    let mut seed: u64 = 42;
    for f in 0..16 {
        let mut csv = String::from("id,user_id,word,value\n");
        for i in 0..40_000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = f * 40_000 + i;
            csv.push_str(&format!(
                "{id},{},{},{}\n",
                (seed >> 33) % 37,
                words[((seed >> 20) % 7) as usize],
                (seed >> 40) % 1000
            ));
        }
        p.write(&format!("data/part-{f:02}.csv"), &csv);
    }
    p
}

fn exports(p: &Project) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![p.path("exports")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("exports").flatten() {
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(p.dir.path())
                    .expect("rel")
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, std::fs::read(e.path()).expect("read")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn sigkill_at_random_points_never_corrupts_the_cache() {
    let reference = big_project();
    let t0 = Instant::now();
    let log = reference.run(&["--jobs", "2"]);
    let full = t0.elapsed();
    assert_eq!(log.code, 0, "{}", log.stderr);
    let expected_lock = reference.read("dflow.lock");
    let expected_exports = exports(&reference);

    let victim = Project::new("shop");
    std::fs::remove_dir_all(victim.path("data")).expect("clear");
    copy_dir(&reference.path("data"), &victim.path("data"));
    victim.write("pipeline.yaml", PIPELINE);

    let mut seed: u64 = 7;
    let kills = 24;
    for i in 0..kills {
        if i % 6 == 0 {
            // Start over now and then so that kills land in cold runs too.
            let _ = std::fs::remove_dir_all(victim.path(".dflow"));
            let _ = std::fs::remove_file(victim.path("dflow.lock"));
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let frac = ((seed >> 33) % 1000) as f64 / 1000.0;
        let delay = full.mul_f64(0.05 + 0.9 * frac);
        let mut child = victim
            .command(&["run", "pipeline.yaml", "--jobs", "2", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_cache_valid(&victim.path(".dflow"));
        // Status never crashes on a half-written workspace either.
        let status = victim.dflow(&["status", "pipeline.yaml"]);
        assert!(status.status.success(), "status after kill {i}");
    }
    let log = victim.run(&["--jobs", "2"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_cache_valid(&victim.path(".dflow"));
    assert_eq!(victim.read("dflow.lock"), expected_lock);
    assert_eq!(exports(&victim), expected_exports);
    eprintln!("full run {full:?}; {kills} kills survived");
}

#[test]
fn concurrent_runs_wait_or_refuse_and_never_corrupt() {
    let p = big_project();
    let mut first = p
        .command(&[
            "run",
            "pipeline.yaml",
            "--log-format",
            "json",
            "--jobs",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = first.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The first run holds the lock once it reports that it started.
    let started = lines.next().and_then(|l| l.ok()).expect("first event");
    assert!(started.contains("run_started"), "{started}");

    let refused = p.dflow(&["run", "pipeline.yaml", "--no-wait"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("DF3005") && err.contains("another dflow run (pid"),
        "{err}"
    );

    let waiter = p
        .command(&["run", "pipeline.yaml", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn waiter");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(first.wait().expect("wait").success());
    assert!(rest.iter().any(|l| l.contains("run_finished")));
    let out = waiter.wait_with_output().expect("waiter");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let waited = text.contains("\"waiting\"");
    let computed = text
        .lines()
        .filter(|l| l.contains("\"unit\"") && l.contains("\"computed\""))
        .count();
    // Either it waited and found everything cached, or the first run was
    // already done when it started; never does it recompute.
    assert_eq!(computed, 0, "waiter recomputed (waited: {waited})");
    assert_cache_valid(&p.path(".dflow"));
}

#[test]
fn ctrl_c_cancels_gracefully_and_the_next_run_goes_on() {
    let reference = big_project();
    let log = reference.run(&["--jobs", "1"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let expected_lock = reference.read("dflow.lock");

    let p = big_project();
    let mut child = p
        .command(&[
            "run",
            "pipeline.yaml",
            "--log-format",
            "json",
            "--jobs",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // Interrupt once the first unit is committed.
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let unit = line.contains("\"unit\"");
        seen.push(line);
        if unit {
            break;
        }
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    seen.extend(lines.map_while(Result::ok));
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelling"), "{stderr}");
    assert!(
        seen.iter().any(|l| l.contains("run_finished")),
        "a cancelled run still reports its end: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("skipped") && l.contains("cancelled")),
        "{seen:?}"
    );
    assert_cache_valid(&p.path(".dflow"));
    // The lock file and the run log were written.
    assert!(p.path("dflow.lock").is_file());
    assert!(p.sql_count("SELECT count(*) FROM dflow_runs") > 0);

    // What finished is kept: the next run computes only the rest.
    let log = p.run(&["--jobs", "1"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(
        log.events.iter().any(|e| e["status"] == "hit"),
        "nothing of the cancelled run was kept"
    );
    assert_eq!(p.read("dflow.lock"), expected_lock);
    assert_cache_valid(&p.path(".dflow"));
}
