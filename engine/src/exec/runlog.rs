//! The run log: one record per unit (and per failed or skipped node) of a
//! run, written to `<cache>/runs/<run id>.jsonl` when the run ends and read
//! back as the `dflow_runs` table. Timings live here, never in cached
//! outputs, so that the same inputs give the same bytes.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cache::CacheStore;
use crate::cache::store::write_atomic;
use crate::compile::PlanNode;
use crate::error::Result;

/// One row of `dflow_runs`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The node's id.
    pub node: String,
    /// The node's operator.
    pub op: String,
    /// The unit's partition (none for a whole-input unit or a node record).
    pub partition: Option<String>,
    /// `hit`, `computed`, `failed` or `skipped`.
    pub status: String,
    /// Rows on the unit's `out` port (0 for a node record).
    pub rows: u64,
    /// Seconds spent on the unit.
    pub seconds: f64,
    /// When the run started, in Unix milliseconds.
    pub started_unix_ms: u64,
    /// What a computed unit's operator said of its work (`embed`: how many
    /// texts it embedded and how many it read from the vector store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The records of one run, collected from every worker.
pub struct RunLog {
    run_id: String,
    pipeline: String,
    started_ms: u64,
    records: Mutex<Vec<RunRecord>>,
}

/// One unit's (or node's) line in the run log.
pub struct Entry<'a> {
    /// The unit's partition (none for a whole-input unit or a node record).
    pub partition: Option<&'a str>,
    /// `hit`, `computed`, `failed` or `skipped`.
    pub status: &'a str,
    /// Rows on the unit's `out` port.
    pub rows: u64,
    /// Seconds spent on the unit.
    pub seconds: f64,
    /// What the operator said of its work, if anything.
    pub note: Option<String>,
}

impl RunLog {
    /// An empty log of run `run_id` of `pipeline`, started at `started_ms`.
    pub fn new(run_id: String, pipeline: String, started_ms: u64) -> Self {
        Self {
            run_id,
            pipeline,
            started_ms,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Adds a record of `node`.
    pub fn record(&self, node: &PlanNode, entry: Entry<'_>) {
        if let Ok(mut r) = self.records.lock() {
            r.push(RunRecord {
                run_id: self.run_id.clone(),
                pipeline: self.pipeline.clone(),
                node: node.id.clone(),
                op: node.op_name.clone(),
                partition: entry.partition.map(str::to_string),
                status: entry.status.to_string(),
                rows: entry.rows,
                seconds: entry.seconds,
                started_unix_ms: self.started_ms,
                note: entry.note,
            });
        }
    }

    /// Records a node that did not run (`failed` or `skipped`).
    pub fn record_node(&self, node: &PlanNode, status: &str) {
        self.record(
            node,
            Entry {
                partition: None,
                status,
                rows: 0,
                seconds: 0.0,
                note: None,
            },
        );
    }

    /// Writes the records as JSON lines under the cache's `runs/`.
    pub fn save(&self, store: &CacheStore) -> Result<()> {
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(
            &store
                .root()
                .join("runs")
                .join(format!("{}.jsonl", self.run_id)),
            text.as_bytes(),
        )
    }
}

/// Reads every run record of a cache, oldest run first.
pub fn load_run_records(store: &CacheStore) -> Vec<RunRecord> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.root().join("runs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<RunRecord>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}
