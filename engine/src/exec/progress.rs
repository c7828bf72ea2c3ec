//! Run events and the ways they are shown: progress bars on a terminal,
//! plain log lines otherwise, JSON lines for machines, or nothing.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::table::RowCounter;

/// How a unit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Found in the cache.
    Hit,
    /// Computed in this run.
    Computed,
    /// Could not be computed.
    Failed,
}

impl UnitStatus {
    /// The status's name in logs (`hit`, `computed` or `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Hit => "hit",
            UnitStatus::Computed => "computed",
            UnitStatus::Failed => "failed",
        }
    }
}

/// Something that happened during a run.
#[derive(Debug)]
pub enum Event<'a> {
    /// Another run holds the cache; this one waits for it to finish.
    Waiting {
        /// Who holds the cache: the other run's pid and the cache directory.
        message: &'a str,
    },
    /// Something the user should know that does not stop the run (a
    /// damaged cache entry, recomputed).
    Warning {
        /// What happened and what the run does about it.
        message: &'a str,
    },
    /// The run has started.
    RunStarted {
        /// The pipeline's name.
        pipeline: &'a str,
        /// The run's id (names its run log).
        run_id: &'a str,
        /// How many nodes the run selected.
        nodes: usize,
    },
    /// A node has been planned and its units start.
    NodeStarted {
        /// The node's id.
        node: &'a str,
        /// The node's operator.
        op: &'a str,
        /// How many units the node has.
        units: usize,
        /// How many of them are stale and must be computed.
        to_compute: usize,
        /// Rows written so far, counted as units write them.
        rows: Arc<RowCounter>,
    },
    /// A unit is done: found in the cache or computed.
    UnitFinished {
        /// The node's id.
        node: &'a str,
        /// The unit's partition (none for a whole-input unit).
        partition: Option<&'a str>,
        /// How the unit ended.
        status: UnitStatus,
        /// Rows on the unit's `out` port.
        rows: u64,
        /// Seconds spent on the unit.
        seconds: f64,
        /// What a computed unit's operator said of its work
        /// ([`crate::Outputs::note`]).
        note: Option<&'a str>,
    },
    /// A node's output is in the cache and published.
    NodeFinished {
        /// The node's id.
        node: &'a str,
        /// Units found in the cache.
        hits: usize,
        /// Units computed in this run.
        computed: usize,
        /// Rows of the node's `out` port, or of every port when there is none.
        rows: u64,
        /// Seconds spent on the node.
        seconds: f64,
    },
    /// A node failed.
    NodeFailed {
        /// The node's id.
        node: &'a str,
        /// The error's code.
        code: &'a str,
        /// The error message.
        error: &'a str,
    },
    /// A node did not run.
    NodeSkipped {
        /// The node's id.
        node: &'a str,
        /// Why it did not run (an upstream node failed, an input is missing).
        because: &'a str,
    },
    /// The run has ended.
    RunFinished {
        /// Whether every selected node ran.
        ok: bool,
        /// Units computed.
        computed: usize,
        /// Units found in the cache.
        hits: usize,
        /// Nodes that failed.
        failed: usize,
        /// Nodes skipped.
        skipped: usize,
        /// Seconds the whole run took.
        seconds: f64,
    },
}

/// Shows the events of a run.
pub trait Reporter: Send + Sync {
    /// Shows one event.
    fn report(&self, event: &Event<'_>);
}

/// Reports nothing but failures and warnings (`--quiet`).
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::Warning { message } => eprintln!("warning: {message}"),
            Event::NodeFailed { node, code, error } => {
                eprintln!("error[{code}]: node `{node}` failed: {error}")
            }
            Event::NodeSkipped { node, because } => {
                eprintln!("skipped `{node}`: {because}")
            }
            _ => {}
        }
    }
}

/// One plain line per node (when stderr is not a terminal).
pub struct PlainReporter;

impl Reporter for PlainReporter {
    fn report(&self, event: &Event<'_>) {
        let line = match event {
            Event::Waiting { message } => format!("dflow: {message}; waiting for it to finish"),
            Event::Warning { message } => format!("dflow: warning: {message}"),
            Event::RunStarted {
                pipeline, nodes, ..
            } => format!("dflow: running {pipeline} ({nodes} nodes)"),
            Event::NodeStarted { .. } | Event::UnitFinished { .. } => return,
            Event::NodeFinished {
                node,
                hits,
                computed,
                rows,
                seconds,
            } => format!(
                "dflow: {node}: {computed} computed, {hits} cached, {rows} rows, {seconds:.2} s{}",
                rate(*rows, *seconds, *computed)
            ),
            Event::NodeFailed { node, code, error } => {
                format!("dflow: {node}: FAILED [{code}] {error}")
            }
            Event::NodeSkipped { node, because } => format!("dflow: {node}: skipped ({because})"),
            Event::RunFinished {
                ok,
                computed,
                hits,
                failed,
                skipped,
                seconds,
            } => format!(
                "dflow: {} in {seconds:.2} s: {computed} units computed, {hits} cached, {failed} failed, {skipped} skipped",
                if *ok { "done" } else { "FAILED" }
            ),
        };
        eprintln!("{line}");
    }
}

fn rate(rows: u64, seconds: f64, computed: usize) -> String {
    if computed > 0 && seconds > 0.0 && rows > 0 {
        format!(" ({:.0} rows/s)", rows as f64 / seconds)
    } else {
        String::new()
    }
}

/// One JSON object per event on stdout (`--log-format json`).
pub struct JsonReporter {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonReporter {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self {
            out: Mutex::new(Box::new(std::io::stdout())),
        }
    }

    /// Writes to `w`.
    pub fn to_writer(w: Box<dyn Write + Send>) -> Self {
        Self { out: Mutex::new(w) }
    }
}

impl Reporter for JsonReporter {
    fn report(&self, event: &Event<'_>) {
        use serde_json::json;
        let value = match event {
            Event::Waiting { message } => json!({"event": "waiting", "message": message}),
            Event::Warning { message } => json!({"event": "warning", "message": message}),
            Event::RunStarted {
                pipeline,
                run_id,
                nodes,
            } => {
                json!({"event": "run_started", "pipeline": pipeline, "run_id": run_id, "nodes": nodes})
            }
            Event::NodeStarted {
                node,
                op,
                units,
                to_compute,
                ..
            } => {
                json!({"event": "node_started", "node": node, "op": op, "units": units, "to_compute": to_compute})
            }
            Event::UnitFinished {
                node,
                partition,
                status,
                rows,
                seconds,
                note,
            } => {
                let mut e = json!({"event": "unit", "node": node, "partition": partition, "status": status, "rows": rows, "seconds": seconds});
                if let Some(note) = note {
                    e["note"] = json!(note);
                }
                e
            }
            Event::NodeFinished {
                node,
                hits,
                computed,
                rows,
                seconds,
            } => {
                json!({"event": "node_finished", "node": node, "hits": hits, "computed": computed, "rows": rows, "seconds": seconds})
            }
            Event::NodeFailed { node, code, error } => {
                json!({"event": "node_failed", "node": node, "code": code, "error": error})
            }
            Event::NodeSkipped { node, because } => {
                json!({"event": "node_skipped", "node": node, "because": because})
            }
            Event::RunFinished {
                ok,
                computed,
                hits,
                failed,
                skipped,
                seconds,
            } => {
                json!({"event": "run_finished", "ok": ok, "computed": computed, "hits": hits, "failed": failed, "skipped": skipped, "seconds": seconds})
            }
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }
}

struct Bar {
    bar: ProgressBar,
    rows: Arc<RowCounter>,
    started: Instant,
}

/// Progress bars, one per running node, with rows and rows/s.
pub struct ProgressReporter {
    multi: MultiProgress,
    bars: Arc<Mutex<HashMap<String, Bar>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressReporter {
    /// Draws on stderr; a background thread refreshes each bar's rows and rows/s.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars: Arc<Mutex<HashMap<String, Bar>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bars.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(bars) = b.lock() {
                    for bar in bars.values() {
                        let rows = bar.rows.get();
                        let secs = bar.started.elapsed().as_secs_f64().max(1e-9);
                        bar.bar
                            .set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
                    }
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        Self { multi, bars, stop }
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Reporter for ProgressReporter {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::NodeStarted {
                node,
                op,
                units,
                rows,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new(*units as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16.bold} [{bar:24}] {pos}/{len} units  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{node} ({op})"));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(
                        node.to_string(),
                        Bar {
                            bar,
                            rows: rows.clone(),
                            started: Instant::now(),
                        },
                    );
                }
            }
            Event::UnitFinished { node, .. } => {
                if let Ok(bars) = self.bars.lock()
                    && let Some(b) = bars.get(*node)
                {
                    b.bar.inc(1);
                }
            }
            Event::NodeFinished {
                node,
                hits,
                computed,
                rows,
                seconds,
            } => {
                if let Ok(mut bars) = self.bars.lock()
                    && let Some(b) = bars.remove(*node)
                {
                    b.bar.finish_with_message(format!(
                        "{computed} computed, {hits} cached, {rows} rows, {seconds:.2} s{}",
                        rate(*rows, *seconds, *computed)
                    ));
                }
            }
            Event::NodeFailed { node, code, error } => {
                if let Ok(mut bars) = self.bars.lock()
                    && let Some(b) = bars.remove(*node)
                {
                    b.bar.abandon_with_message(format!("FAILED [{code}]"));
                }
                let _ = self
                    .multi
                    .println(format!("error[{code}]: node `{node}` failed: {error}"));
            }
            Event::NodeSkipped { node, because } => {
                let _ = self.multi.println(format!("skipped `{node}`: {because}"));
            }
            Event::Warning { message } => {
                let _ = self.multi.println(format!("warning: {message}"));
            }
            other => PlainReporter.report(other),
        }
    }
}
