//! The scheduler: which nodes run, in what order, how many at once, and
//! what a failure or a cancellation does to the rest. It runs nodes through
//! a [`NodeRunner`] and knows nothing of units, the cache or the lock file.
//!
//! Worker threads (`jobs` of them) take ready nodes in topological order;
//! a node is ready once every selected upstream node is done. A failed node
//! marks everything downstream of it skipped while independent branches go
//! on. Once the run is cancelled no node starts; the nodes already running
//! finish (their units check the same flag).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::cache::NodeOutput;
use crate::compile::Plan;
use crate::error::Error;
use crate::exec::planner::node_inputs;

/// A flag that stops a run: no node starts after it is set, and running
/// nodes compute no further unit. What was committed stays in the cache, so
/// the next run resumes there.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs one node for the scheduler, and hears what became of the others.
pub trait NodeRunner: Sync {
    /// Computes (or finds) node `idx`'s output from its inputs.
    fn run_node(
        &self,
        idx: usize,
        inputs: std::collections::BTreeMap<String, crate::cache::PortData>,
    ) -> Result<NodeOutput, Error>;

    /// Node `idx` failed with `error`.
    fn node_failed(&self, idx: usize, error: &Error);

    /// Node `idx` did not run, `because` of what.
    fn node_skipped(&self, idx: usize, because: &str);
}

/// What became of the nodes of a run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Nodes whose output is ready, in the order they finished.
    pub done: Vec<usize>,
    /// Failed nodes and their error (one line).
    pub failed: Vec<(usize, String)>,
    /// Nodes that did not run, in the order they were skipped.
    pub skipped: Vec<usize>,
    /// Whether the run was cancelled.
    pub cancelled: bool,
}

impl Outcome {
    /// Whether every node ran.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.cancelled
    }
}

/// What a run asks of the scheduler.
pub struct Schedule<'a> {
    /// The compiled pipeline.
    pub plan: &'a Plan,
    /// Which nodes run (indexed like the plan's nodes).
    pub selected: &'a [bool],
    /// The outputs of the nodes outside the selection that selected nodes
    /// read (from the lock file), or the error that stops their readers.
    pub given: Vec<Option<Arc<NodeOutput>>>,
    /// Selected nodes that cannot run, and why (their input is missing).
    pub unrunnable: Vec<(usize, Error)>,
    /// Nodes run at once (0: one per core).
    pub jobs: usize,
    /// Stops the run when set.
    pub cancel: Cancel,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NodeState {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

/// The shared state of the workers.
struct Board {
    /// Selected upstream nodes not yet done, per node.
    deps: Vec<usize>,
    ready: VecDeque<usize>,
    state: Vec<NodeState>,
    outputs: Vec<Option<Arc<NodeOutput>>>,
    /// Selected nodes neither done, failed nor skipped.
    remaining: usize,
    outcome: Outcome,
}

/// Stack of every thread that runs operator code: node workers and the
/// rayon pool that runs units. Operators parse what strangers wrote, so
/// their tree walks keep their own stacks or cap their depth; this is the
/// margin under whatever recursion is left in libraries (a stack overflow
/// aborts the process, no unit can catch it). Only pages that are touched
/// take memory.
pub const WORKER_STACK_BYTES: usize = 32 << 20;

/// Builds rayon's global pool with [`WORKER_STACK_BYTES`] stacks, unless
/// the embedding program built it first.
pub fn configure_worker_pool() {
    let _already_built = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK_BYTES)
        .build_global();
}

/// Runs the selected nodes of a plan; returns when none is left.
pub fn schedule(s: Schedule<'_>, runner: &dyn NodeRunner) -> Outcome {
    let plan = s.plan;
    let n = plan.nodes.len();
    let mut board = Board {
        deps: vec![0; n],
        ready: VecDeque::new(),
        state: vec![NodeState::Done; n],
        outputs: s.given,
        remaining: 0,
        outcome: Outcome::default(),
    };
    board.outputs.resize(n, None);
    for &i in &plan.order {
        if !s.selected[i] {
            continue;
        }
        board.state[i] = NodeState::Waiting;
        board.remaining += 1;
        board.deps[i] = plan
            .upstream(i)
            .into_iter()
            .filter(|u| s.selected[*u])
            .count();
    }
    for (i, e) in s.unrunnable {
        if board.state[i] == NodeState::Waiting {
            fail(plan, &mut board, i, &e, runner);
        }
    }
    for &i in &plan.order {
        if board.state[i] == NodeState::Waiting && board.deps[i] == 0 {
            board.ready.push_back(i);
        }
    }
    let shared = (Mutex::new(board), Condvar::new());
    let jobs = if s.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        s.jobs
    };
    configure_worker_pool();
    std::thread::scope(|scope| {
        for i in 0..jobs.max(1) {
            let spawned = std::thread::Builder::new()
                .name(format!("dflow-node-{i}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, || worker(plan, &shared, &s.cancel, runner));
            if spawned.is_err() && i == 0 {
                // No thread at all: run the nodes on this one.
                worker(plan, &shared, &s.cancel, runner);
            }
        }
    });
    let (board, _) = shared;
    board
        .into_inner()
        .map(|b| b.outcome)
        .unwrap_or_else(|poisoned| poisoned.into_inner().outcome)
}

/// One worker: takes ready nodes until none is left.
fn worker(plan: &Plan, shared: &(Mutex<Board>, Condvar), cancel: &Cancel, runner: &dyn NodeRunner) {
    let (lock, cv) = shared;
    loop {
        let (idx, inputs) = {
            let Ok(mut board) = lock.lock() else { return };
            let idx = loop {
                if cancel.is_cancelled() {
                    skip_waiting(plan, &mut board, runner);
                    cv.notify_all();
                }
                if let Some(i) = board.ready.pop_front() {
                    break i;
                }
                if board.remaining == 0 {
                    return;
                }
                board = match cv.wait(board) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            };
            board.state[idx] = NodeState::Running;
            (idx, node_inputs(&plan.nodes[idx], &board.outputs))
        };
        let result = runner.run_node(idx, inputs);
        let Ok(mut board) = lock.lock() else { return };
        match result {
            Ok(out) => {
                board.state[idx] = NodeState::Done;
                board.outputs[idx] = Some(Arc::new(out));
                board.remaining -= 1;
                board.outcome.done.push(idx);
                for d in plan.downstream(idx) {
                    if board.state[d] == NodeState::Waiting {
                        board.deps[d] = board.deps[d].saturating_sub(1);
                        if board.deps[d] == 0 {
                            board.ready.push_back(d);
                        }
                    }
                }
            }
            Err(e) if e.is_cancelled() => {
                board.outcome.cancelled = true;
                skip_with_downstream(plan, &mut board, idx, CANCELLED, runner);
            }
            Err(e) => fail(plan, &mut board, idx, &e, runner),
        }
        cv.notify_all();
    }
}

/// Marks a node failed and everything downstream of it skipped.
fn fail(plan: &Plan, board: &mut Board, idx: usize, e: &Error, runner: &dyn NodeRunner) {
    runner.node_failed(idx, e);
    board.state[idx] = NodeState::Failed;
    board.remaining -= 1;
    board.outcome.failed.push((idx, e.to_string()));
    let because = format!("upstream `{}` failed", plan.nodes[idx].id);
    skip_downstream(plan, board, idx, &because, runner);
}

/// What a node skipped by a cancellation is told.
const CANCELLED: &str = "the run was cancelled";

/// Skips a node that was running when the run was cancelled (it stopped
/// between units), and everything downstream of it.
fn skip_with_downstream(
    plan: &Plan,
    board: &mut Board,
    idx: usize,
    because: &str,
    runner: &dyn NodeRunner,
) {
    skip(board, idx, because, runner);
    skip_downstream(plan, board, idx, because, runner);
}

/// Skips every waiting node downstream of `idx`.
fn skip_downstream(
    plan: &Plan,
    board: &mut Board,
    idx: usize,
    because: &str,
    runner: &dyn NodeRunner,
) {
    let mut stack = plan.downstream(idx);
    while let Some(d) = stack.pop() {
        if board.state[d] != NodeState::Waiting {
            continue;
        }
        skip(board, d, because, runner);
        stack.extend(plan.downstream(d));
    }
}

/// After a cancellation: every node not yet started is skipped.
fn skip_waiting(plan: &Plan, board: &mut Board, runner: &dyn NodeRunner) {
    board.outcome.cancelled = true;
    board.ready.clear();
    for &i in &plan.order {
        if board.state[i] == NodeState::Waiting {
            skip(board, i, CANCELLED, runner);
        }
    }
}

fn skip(board: &mut Board, idx: usize, because: &str, runner: &dyn NodeRunner) {
    board.state[idx] = NodeState::Skipped;
    board.remaining -= 1;
    board.outcome.skipped.push(idx);
    runner.node_skipped(idx, because);
}
