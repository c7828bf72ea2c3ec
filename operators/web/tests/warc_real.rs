//! Every WARC in `../shared/data/warc` is read, and its record counts by type
//! equal what Python's warcio reports (`scripts/warcio_counts.py` made
//! `warcio_counts.json`): each record warcio yields is either read or
//! reported damaged with its type. A record cut off by a truncated gzip
//! stream is yielded by warcio and kept by dflow too, flagged
//! `Truncation::Disconnect`. Runs whenever the shared data is present; CI
//! always has it.

use std::collections::BTreeMap;

use dflow_op_web::warc::reader::{Item, Truncation, WarcReader};

fn shared_warc_dir() -> Option<std::path::PathBuf> {
    dflow_engine::testing::shared_data(env!("CARGO_MANIFEST_DIR"), "warc")
}

#[test]
fn record_counts_match_warcio() {
    let Some(dir) = shared_warc_dir() else {
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
        let mut cut = Vec::new();
        WarcReader::open(&path, 64 << 20)
            .expect("open")
            .for_each(|item| match item {
                Item::Record(r) => {
                    if r.truncated == Some(Truncation::Disconnect) {
                        cut.push((
                            r.header("WARC-Target-URI").map(str::to_string),
                            r.block.len(),
                        ));
                    }
                    *counts
                        .entry(r.header("WARC-Type").unwrap_or("?").to_string())
                        .or_default() += 1
                }
                Item::Damaged {
                    offset,
                    reason,
                    warc_type,
                    ..
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
        if name == "resiliparse-clipped.warc.gz" {
            // The clipped record is kept with its URL and what was read.
            assert_eq!(cut.len(), 1, "{cut:?} {damaged:?}");
            assert!(cut[0].0.is_some() && cut[0].1 > 0, "{cut:?}");
            assert!(damaged.is_empty(), "{damaged:?}");
        } else {
            assert!(cut.is_empty(), "{name}: {cut:?}");
        }
    }
}
