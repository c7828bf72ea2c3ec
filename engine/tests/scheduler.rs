//! The scheduler, the planner and the unit runner, tested with the toy
//! operator set (`toy/`). Each test builds a pipeline in a temporary
//! directory, runs it through the engine's API and reads what the run
//! reported.

mod toy;

use std::collections::BTreeMap;

use dflow_engine::exec::planner::{Known, PlanMode, StaleReason, plan_node};
use dflow_engine::exec::{Cancel, RunOptions};

use toy::*;

#[test]
fn a_cold_run_computes_everything_and_a_second_run_nothing() {
    let toy = Toy::new("cold_then_warm", FILES, CHAIN);
    let (first, rec) = toy.run();
    assert!(first.ok, "{first:?}");
    // 3 source units, 3 map units, 3 fold units, 1 global unit.
    assert_eq!((first.computed, first.hits), (10, 0));
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[
            ("a.txt", "computed"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(toy.rows("scaled"), vec![10, 20, 30, 30, 40, 40, 50, 10]);
    assert_eq!(toy.rows("total"), vec![230]);
    // The fold kept the first occurrence of each value, in partition order.
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 5]);
    let lock = toy.lock_text();

    let (second, rec) = toy.run();
    assert!(second.ok);
    assert_eq!((second.computed, second.hits), (0, 10));
    assert!(rec.statuses("total").values().all(|s| s == "hit"));
    assert_eq!(toy.lock_text(), lock, "a warm run changed the lock file");
}

#[test]
fn a_changed_file_recomputes_its_partition_and_what_depends_on_it() {
    let toy = Toy::new("staleness", FILES, CHAIN);
    toy.run();
    let before = traced("staleness").len();
    toy.write("b.txt", "3 4 6");
    let (summary, rec) = toy.run();
    assert!(summary.ok);
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[("a.txt", "hit"), ("b.txt", "computed"), ("c.txt", "hit")])
    );
    // A fold recomputes the changed partition and every later one.
    assert_eq!(
        rec.statuses("distinct"),
        statuses(&[
            ("a.txt", "hit"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(rec.statuses("total"), statuses(&[("-", "computed")]));
    assert_eq!(toy.rows("total"), vec![290]);
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 6, 5]);
    // The later fold units saw the states of every unit before them.
    let new: Vec<String> = traced("staleness")[before..].to_vec();
    assert!(
        new.contains(&"distinct:b.txt:after 1".to_string()),
        "{new:?}"
    );
    assert!(
        new.contains(&"distinct:c.txt:after 2".to_string()),
        "{new:?}"
    );
}

#[test]
fn the_planner_says_why_a_unit_is_stale() {
    let toy = Toy::new("reasons", FILES, CHAIN);
    let plan = toy.plan();
    let store = toy.store();
    let stat = dflow_engine::cache::StatCache::load(store.root());
    let nums = &plan.nodes[plan.index_of("nums").expect("nums")];
    let none = BTreeMap::new();
    let reasons = |mode: PlanMode| -> Vec<std::result::Result<(), StaleReason>> {
        plan_node(nums, &none, &stat, &store, Known::default(), mode)
            .expect("plan")
            .units
            .iter()
            .map(|u| u.state.as_ref().map(|_| ()).map_err(|r| *r))
            .collect()
    };
    assert_eq!(
        reasons(PlanMode::default()),
        vec![Err(StaleReason::NotInCache); 3]
    );
    toy.run();
    assert_eq!(reasons(PlanMode::default()), vec![Ok(()); 3]);
    let forced = PlanMode {
        force: true,
        ..PlanMode::default()
    };
    assert_eq!(reasons(forced), vec![Err(StaleReason::Forced); 3]);
    toy.write("c.txt", "7");
    assert_eq!(
        reasons(PlanMode::default()),
        vec![Ok(()), Ok(()), Err(StaleReason::NotInCache)]
    );
    // `status` agrees: the source is stale because its data changed.
    let st = dflow_engine::status::status(&plan, Some(&store), &toy.lock()).expect("status");
    let nums_status = st.iter().find(|s| s.node == "nums").expect("nums status");
    assert_eq!(nums_status.state.as_str(), "STALE");
}

#[test]
fn an_unchanged_output_cuts_off_what_is_downstream() {
    // A factor of 0 maps any input to zeros: a changed file recomputes the
    // map's partition, whose bytes do not change, so the global is a hit.
    let nodes = CHAIN.replace("factor: 10", "factor: 0");
    let toy = Toy::new("cutoff", FILES, &nodes);
    toy.run();
    toy.write("a.txt", "7 8 9");
    let (summary, rec) = toy.run();
    assert!(summary.ok);
    assert_eq!(rec.statuses("scaled")["a.txt"], "computed");
    assert_eq!(rec.statuses("total"), statuses(&[("-", "hit")]));
}

#[test]
fn a_failing_unit_fails_its_node_and_skips_only_what_depends_on_it() {
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, fail_on: 4,");
    let toy = Toy::new("failure", FILES, &nodes);
    let (summary, rec) = toy.run();
    assert!(!summary.ok);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, "scaled");
    assert!(
        summary.failed[0].1.contains("4 is not allowed"),
        "{summary:?}"
    );
    assert!(
        summary.failed[0].1.contains("partition `b.txt`")
            || summary.failed[0].1.contains("partition `c.txt`"),
        "{summary:?}"
    );
    assert_eq!(summary.skipped, vec!["total".to_string()]);
    let skipped = rec.skipped.lock().expect("skipped").clone();
    assert_eq!(
        skipped,
        vec![("total".to_string(), "upstream `scaled` failed".to_string())]
    );
    // The independent branch ran, and the map's good partition is cached.
    assert_eq!(toy.rows("distinct"), vec![1, 2, 3, 4, 5]);
    assert_eq!(rec.statuses("scaled")["a.txt"], "computed");

    // With the bad rows gone, the next run computes only what failed or
    // was skipped.
    toy.write("b.txt", "3 6");
    toy.write("c.txt", "5 1");
    let (summary, rec) = toy.run();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(
        rec.statuses("scaled"),
        statuses(&[
            ("a.txt", "hit"),
            ("b.txt", "computed"),
            ("c.txt", "computed")
        ])
    );
    assert_eq!(toy.rows("total"), vec![210]);
}

#[test]
fn an_interrupted_unit_resumes_from_its_work_directory() {
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, interrupt_once: true,");
    let toy = Toy::new("resume", FILES, &nodes);
    let (first, _) = toy.run();
    assert!(!first.ok);
    // The next run of the same units finds what the first one left.
    let (second, _) = toy.run();
    assert!(second.ok, "{second:?}");
    let resumed: Vec<String> = traced("resume")
        .into_iter()
        .filter(|t| t.ends_with(":resumed"))
        .collect();
    assert_eq!(resumed.len(), 3, "{resumed:?}");
    // A staging directory left by a killed run is removed by the next one.
    let junk = toy.dir.path().join(".dflow/tmp/killed-run");
    std::fs::create_dir_all(&junk).expect("junk");
    std::fs::write(junk.join("0.parquet"), b"half a file").expect("junk file");
    let (third, _) = toy.run();
    assert!(third.ok && third.computed == 0);
    assert!(
        !junk.exists(),
        "the staging directory of a killed run remains"
    );
}

#[test]
fn a_cancelled_run_starts_no_further_node_and_resumes_where_it_stopped() {
    // One worker, so the order is the topological one: `nums`, then the
    // map, which cancels the run while it computes its units.
    let nodes = CHAIN.replace("factor: 10,", "factor: 10, cancel: cancelled,");
    let toy = Toy::new("cancelled", FILES, &nodes);
    let cancel = Cancel::default();
    cancels()
        .lock()
        .expect("cancels")
        .insert("cancelled".into(), cancel.clone());
    let (summary, rec) = toy.run_with(RunOptions {
        jobs: 1,
        cancel,
        ..Default::default()
    });
    assert!(summary.cancelled && !summary.ok, "{summary:?}");
    let started = rec.started.lock().expect("started").clone();
    assert!(
        !started.contains(&"total".to_string()),
        "a node started after the cancellation: {started:?}"
    );
    let skipped: Vec<String> = rec
        .skipped
        .lock()
        .expect("skipped")
        .iter()
        .map(|(n, because)| {
            assert!(
                because == "the run was cancelled" || because.starts_with("upstream"),
                "{because}"
            );
            n.clone()
        })
        .collect();
    assert!(skipped.contains(&"total".to_string()), "{skipped:?}");

    // Nothing committed is lost: the next run only completes the rest.
    let plain = RunOptions::default();
    let (resumed, _) = toy.run_with(plain);
    assert!(resumed.ok, "{resumed:?}");
    assert!(resumed.hits >= 3, "{resumed:?}");
    assert_eq!(toy.rows("total"), vec![230]);
}

#[test]
fn independent_nodes_run_at_once_and_dependent_ones_in_order() {
    // Two chains that share nothing but the pipeline.
    let nodes = r#"
  left:
    op: toy_numbers
    params: { paths: [a.txt], trace: TRACE }
  right:
    op: toy_numbers
    params: { paths: [b.txt], trace: TRACE }
  left_sum:
    op: toy_sum
    inputs: { in: left }
    params: { trace: TRACE }
  right_sum:
    op: toy_sum
    inputs: { in: right }
    params: { trace: TRACE }
"#;
    let toy = Toy::new("ordering", FILES, nodes);
    let (summary, rec) = toy.run_with(RunOptions {
        jobs: 2,
        ..Default::default()
    });
    assert!(summary.ok);
    let order = traced("ordering");
    let at = |what: &str| {
        order
            .iter()
            .position(|t| t == what)
            .unwrap_or_else(|| panic!("{what} never ran: {order:?}"))
    };
    assert!(at("left:a.txt") < at("left_sum:all"), "{order:?}");
    assert!(at("right:b.txt") < at("right_sum:all"), "{order:?}");
    assert_eq!(rec.started.lock().expect("started").len(), 4);
    assert_eq!(toy.rows("left_sum"), vec![6]);
    assert_eq!(toy.rows("right_sum"), vec![7]);

    // `--only` runs one node, its inputs read from the cache.
    let (only, rec) = toy.run_with(RunOptions {
        only: vec!["right_sum".into()],
        force: vec!["right_sum".into()],
        ..Default::default()
    });
    assert!(only.ok);
    assert_eq!(*rec.started.lock().expect("started"), vec!["right_sum"]);
    assert_eq!(rec.statuses("right_sum"), statuses(&[("-", "computed")]));
}

#[test]
fn a_node_whose_input_was_never_computed_cannot_run_alone() {
    let toy = Toy::new("missing_input", FILES, CHAIN);
    let (summary, _) = toy.run_with(RunOptions {
        only: vec!["total".into()],
        ..Default::default()
    });
    assert!(!summary.ok);
    assert_eq!(summary.failed[0].0, "total");
    assert!(
        summary.failed[0]
            .1
            .contains("run `dflow run --until scaled` first"),
        "{summary:?}"
    );
}

#[test]
fn bad_params_are_a_compile_error_not_a_run_error() {
    let nodes = CHAIN.replace("factor: 10", "factor: -1");
    let toy = Toy::new("bad_params", FILES, &nodes);
    let spec = dflow_engine::PipelineSpec::load(&toy.pipeline()).expect("spec");
    let Err(diags) = dflow_engine::compile(spec, &registry(), toy.runtime.handle().clone()) else {
        panic!("a negative factor compiled");
    };
    assert!(format!("{diags:?}").contains("must not be negative"));
}
