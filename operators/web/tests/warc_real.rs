//! Every WARC in `../shared/data/warc` is read, and its record counts by type
//! equal what Python's warcio reports (`scripts/warcio_counts.py` made
//! `warcio_counts.json`): each record warcio yields is either read or
//! reported damaged with its type (warcio yields a record cut off by a
//! truncated gzip stream; dflow rejects it with the reason). Runs whenever the shared data is present; CI always
//! has it.

use std::collections::BTreeMap;
use std::path::Path;

use dflow_op_web::warc::reader::{Item, WarcReader};

fn shared_warc_dir() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/warc");
    dir.is_dir().then_some(dir)
}

#[test]
fn record_counts_match_warcio() {
    let Some(dir) = shared_warc_dir() else {
        eprintln!("../shared/data/warc not present: skipped");
        return;
    };
    let expected: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_str(include_str!("warcio_counts.json")).expect("expectations parse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), expected.len(), "a WARC was added or removed");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut damaged = Vec::new();
        WarcReader::open(&path, 64 << 20)
            .expect("open")
            .for_each(|item| match item {
                Item::Record(r) => {
                    *counts
                        .entry(r.header("WARC-Type").unwrap_or("?").to_string())
                        .or_default() += 1
                }
                Item::Damaged {
                    offset,
                    reason,
                    warc_type,
                } => {
                    if let Some(t) = &warc_type {
                        *counts.entry(t.clone()).or_default() += 1;
                    }
                    damaged.push((offset, reason, warc_type))
                }
            })
            .expect("read");
        assert_eq!(
            counts, expected[&name],
            "{name}: counts differ from warcio (damaged: {damaged:?})"
        );
    }
}
