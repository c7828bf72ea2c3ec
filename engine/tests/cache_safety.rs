//! The cache under damage, interruption and sharing, with the toy operator
//! set (`toy/`): a damaged entry is recomputed and replaced, a run
//! registers its pipeline before any unit runs, and `gc` keeps what an
//! unfinished run left and refuses what it cannot read.

mod toy;

use std::path::{Path, PathBuf};

use dflow_engine::cache::gc::{GcOptions, GcReport, collect};
use dflow_engine::cache::pipelines::{self, Registration};
use dflow_engine::cache::verify::{Problem, verify};
use dflow_engine::cache::{CacheStore, EntryOutput, Probe};
use dflow_engine::exec::{Event, Reporter, RunOptions, run};
use dflow_engine::{Error, Result};

use toy::*;

/// The cache key of `node`'s unit for `partition` ("-" for a whole-input
/// unit), from the lock file.
fn unit_key(toy: &Toy, node: &str, partition: &str) -> String {
    let lock = toy.lock();
    let nl = lock.node(&toy.name, node).expect("node in lock");
    nl.units
        .iter()
        .find(|u| u.partition.as_deref().unwrap_or("-") == partition)
        .expect("unit")
        .key
        .clone()
}

/// The first table file of the entry `key`.
fn part_file(store: &CacheStore, key: &str) -> PathBuf {
    let meta = store.lookup(key).expect("whole entry");
    match &meta.outputs["out"] {
        EntryOutput::Table { parts } => store.entry_dir(key).join(&parts[0].file),
        EntryOutput::Artifact { .. } => panic!("not a table"),
    }
}

fn gc(store: &CacheStore, lock: &Path, opts: GcOptions) -> Result<GcReport> {
    let held = store.writer_lock(false, |_| {}).expect("writer lock");
    collect(store, &held, lock, opts)
}

#[test]
fn a_damaged_entry_is_recomputed_and_replaced_with_a_warning() {
    let toy = Toy::new("damaged", FILES, CHAIN);
    assert!(toy.run().0.ok);
    let store = toy.store();

    // A part file cut short, as a full disk or a bad copy leaves it.
    let key = unit_key(&toy, "scaled", "b.txt");
    let file = part_file(&store, &key);
    let len = std::fs::metadata(&file).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    assert!(matches!(store.probe(&key), Probe::Damaged(_)));
    assert_eq!(
        verify(&store, std::slice::from_ref(&key))
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec![key.clone()]
    );
    let (summary, rec) = toy.run();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[("a.txt", "hit"), ("b.txt", "computed"), ("c.txt", "hit")])
    );
    let warnings = rec.warnings.lock().expect("warnings").clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&key) && warnings[0].contains("scaled, partition b.txt"),
        "{warnings:?}"
    );
    // Replaced in place: whole again, with the full file.
    assert!(matches!(store.probe(&key), Probe::Whole(_)));
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), len);
    assert_eq!(toy.rows("scaled"), vec![10, 20, 30, 30, 40, 40, 50, 10]);

    // A meta.json that no longer parses.
    let total = unit_key(&toy, "total", "-");
    std::fs::write(store.entry_dir(&total).join("meta.json"), b"{\"format\": ").expect("garbage");
    let (summary, rec) = toy.run();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(rec.statuses("total"), statuses(&[("-", "computed")]));
    let warnings = rec.warnings.lock().expect("warnings").clone();
    assert!(
        warnings.len() == 1 && warnings[0].contains(&total),
        "{warnings:?}"
    );
    assert!(matches!(store.probe(&total), Probe::Whole(_)));
    assert_eq!(toy.rows("total"), vec![230]);
    let keys = store.keys().expect("keys");
    assert_eq!(verify(&store, &keys), Vec::<(String, Problem)>::new());
}

/// Reads the registry when the first node starts.
struct RegistryAtStart {
    store: CacheStore,
    seen: std::sync::Mutex<Option<Vec<Registration>>>,
}

impl Reporter for RegistryAtStart {
    fn report(&self, event: &Event<'_>) {
        if let Event::NodeStarted { .. } = event
            && let Ok(mut seen) = self.seen.lock()
            && seen.is_none()
        {
            *seen = Some(pipelines::load(&self.store).expect("registry"));
        }
    }
}

#[test]
fn a_run_registers_its_pipeline_before_any_unit_runs() {
    let toy = Toy::new("registered", FILES, CHAIN);
    let plan = toy.plan();
    let ws = dflow_engine::exec::Workspace::for_plan(&plan, None).expect("workspace");
    let reporter = RegistryAtStart {
        store: ws.store.clone(),
        seen: Default::default(),
    };
    let summary = run(&plan, &ws, &RunOptions::default(), &reporter).expect("run");
    assert!(summary.ok);
    let seen = reporter
        .seen
        .lock()
        .expect("seen")
        .clone()
        .expect("a node started");
    let lock = std::path::absolute(toy.lock_path()).expect("absolute");
    let pipeline = std::path::absolute(toy.pipeline()).expect("absolute");
    assert!(
        seen.iter().any(|r| r.lock == lock
            && r.pipeline.as_deref() == Some(pipeline.as_path())
            && r.unfinished_since_ms.is_some()),
        "not registered, or not marked unfinished, when its first unit ran: {seen:?}"
    );
    // A run of every node that succeeds clears the mark; a failing one
    // leaves it.
    let after = pipelines::load(&ws.store).expect("registry");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].unfinished_since_ms, None);
    toy.set_nodes(&CHAIN.replace("factor: 10,", "factor: 10, fail_on: 4,"));
    assert!(!toy.run().0.ok);
    let after = pipelines::load(&ws.store).expect("registry");
    assert!(after[0].unfinished_since_ms.is_some(), "{after:?}");
}

#[test]
fn gc_keeps_what_an_interrupted_run_of_another_pipeline_left() {
    let cache = tempfile::tempdir().expect("cache");
    let cache = cache.path();
    // A makes garbage of its own: the entries of its first map.
    let a = Toy::new(
        "gc_a",
        &[("a.txt", "7"), ("b.txt", "8"), ("c.txt", "9")],
        CHAIN,
    );
    assert!(
        a.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .ok
    );
    a.set_nodes(&CHAIN.replace("factor: 10", "factor: 3"));
    assert!(
        a.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .ok
    );
    // B's map fails on two of its three partitions: the third is committed,
    // but no lock file records it. Nor does any lock file exist, as after
    // a first run killed before any node finished.
    let b = Toy::new(
        "gc_b",
        FILES,
        &CHAIN.replace("factor: 10,", "factor: 10, fail_on: 4,"),
    );
    let (summary, _) = b.try_run(Some(cache), RunOptions::default());
    assert!(!summary.expect("run").ok);
    std::fs::remove_file(b.lock_path()).expect("no lock file yet");
    // C's units were interrupted, leaving checkpoints to resume from.
    let c = Toy::new(
        "gc_c",
        &[("a.txt", "100"), ("b.txt", "200"), ("c.txt", "300")],
        &CHAIN.replace("factor: 10,", "factor: 10, interrupt_once: true,"),
    );
    let (summary, _) = c.try_run(Some(cache), RunOptions::default());
    assert!(!summary.expect("run").ok);
    let store = CacheStore::open(cache).expect("store");
    assert_eq!(store.work_dirs().len(), 3);

    let b_key = store
        .keys()
        .expect("keys")
        .into_iter()
        .find(|k| {
            store
                .lookup(k)
                .is_some_and(|m| m.node == "scaled" && m.params["fail_on"] == serde_json::json!(4))
        })
        .expect("B's committed unit");
    let report = gc(&store, &a.lock_path(), GcOptions::default()).expect("gc");
    assert!(!report.removed.is_empty(), "A's garbage stays: {report:?}");
    assert!(!report.removed.contains(&b_key), "{report:?}");
    assert!(store.lookup(&b_key).is_some());
    assert_eq!(report.work_kept, 3, "{report:?}");
    assert_eq!(store.work_dirs().len(), 3);
    // C resumes from its checkpoints.
    assert!(
        c.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .ok
    );
    let resumed = traced("gc_c")
        .iter()
        .filter(|t| t.ends_with(":resumed"))
        .count();
    assert_eq!(resumed, 3);

    // Asked to, gc drops what unfinished runs left.
    let report = gc(
        &store,
        &a.lock_path(),
        GcOptions {
            unfinished: true,
            ..Default::default()
        },
    )
    .expect("gc");
    assert!(report.removed.contains(&b_key), "{report:?}");
    assert!(
        pipelines::load(&store)
            .expect("registry")
            .iter()
            .all(|r| r.unfinished_since_ms.is_none())
    );
}

#[test]
fn gc_refuses_what_it_cannot_read_and_forgets_pipelines_that_are_gone() {
    let cache = tempfile::tempdir().expect("cache");
    let cache = cache.path();
    let a = Toy::new("refuse_a", FILES, CHAIN);
    assert!(
        a.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .ok
    );
    let b = Toy::new(
        "refuse_b",
        &[("a.txt", "7"), ("b.txt", "8"), ("c.txt", "9")],
        CHAIN,
    );
    assert!(
        b.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .ok
    );
    let store = CacheStore::open(cache).expect("store");
    let entries = store.keys().expect("keys").len();
    let refused = |what: &str, err: Error| {
        assert_eq!(err.code(), "DF3007", "{err}");
        assert!(err.to_string().contains(what), "{err}");
        assert_eq!(
            store.keys().expect("keys").len(),
            entries,
            "gc removed entries"
        );
    };

    // A damaged registry: nothing is collected, and no run overwrites it.
    let registry = cache.join("locks.json");
    let good = std::fs::read(&registry).expect("registry");
    std::fs::write(&registry, b"[{\"lock\": ").expect("damage");
    refused(
        "locks.json",
        gc(&store, &a.lock_path(), GcOptions::default()).expect_err("damaged registry"),
    );
    let (summary, _) = a.try_run(Some(cache), RunOptions::default());
    refused(
        "locks.json",
        summary.expect_err("a run over a damaged registry"),
    );
    assert_eq!(std::fs::read(&registry).expect("registry"), b"[{\"lock\": ");
    std::fs::write(&registry, &good).expect("repair");

    // B's lock file damaged, then missing while B's pipeline is there.
    let b_lock = b.lock_path();
    let b_text = std::fs::read(&b_lock).expect("lock");
    std::fs::write(&b_lock, b"{").expect("damage");
    refused(
        "dflow.lock",
        gc(&store, &a.lock_path(), GcOptions::default()).expect_err("damaged lock"),
    );
    std::fs::remove_file(&b_lock).expect("rm");
    refused(
        "is missing",
        gc(&store, &a.lock_path(), GcOptions::default()).expect_err("missing lock"),
    );
    std::fs::write(&b_lock, &b_text).expect("restore");
    let report = gc(&store, &a.lock_path(), GcOptions::default()).expect("gc");
    assert!(report.removed.is_empty(), "{report:?}");

    // With B's directory gone, its registration and entries go too.
    let b_dir = b.dir.path().to_path_buf();
    drop(b);
    assert!(!b_dir.exists());
    let report = gc(&store, &a.lock_path(), GcOptions::default()).expect("gc");
    assert!(!report.removed.is_empty(), "{report:?}");
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert_eq!(pipelines::load(&store).expect("registry").len(), 1);
    assert!(
        a.try_run(Some(cache), RunOptions::default())
            .0
            .expect("run")
            .computed
            == 0
    );
}
