//! The crawl's journal: one JSON line per finished URL, appended after its
//! records are flushed to the WARC file. An interrupted crawl replays it:
//! every URL in it is answered from it (links, redirect targets, robots
//! rules) instead of the network, and WARC bytes written after the last
//! journalled record (a member cut by the interruption) are dropped.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "journal.jsonl";

/// What became of one URL.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub url: String,
    pub depth: u32,
    /// `page` or `robots`.
    pub kind: String,
    pub status: Option<u16>,
    pub bytes: u64,
    pub truncated: bool,
    pub attempts: u32,
    pub fetched_at_ms: i64,
    /// The WARC file and the end offset of the last record written for it.
    pub warc_file: Option<String>,
    pub warc_offset: Option<u64>,
    pub warc_end: Option<u64>,
    /// Why no response was had (or why it was not fetched).
    pub error: Option<String>,
    /// A redirect's resolved `Location`.
    pub location: Option<String>,
    /// Links kept for following (same host), in page order.
    #[serde(default)]
    pub links: Vec<String>,
    /// robots.txt entries: the body, to rebuild the rules on resume.
    #[serde(default)]
    pub robots_body: Option<String>,
}

pub struct Journal {
    file: File,
}

impl Journal {
    /// Opens the journal of `dir` for appending, after [`recover`].
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE))?;
        Ok(Self { file })
    }

    pub fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// What an earlier, interrupted run of this crawl left.
#[derive(Default)]
pub struct Recovered {
    pub entries: Vec<Entry>,
    /// The next WARC file number to write.
    pub next_file: u32,
}

/// Reads the journal of `dir` (a line cut by the interruption ends it),
/// rewrites it without the cut line, cuts each WARC file after its last
/// journalled record and removes WARC files no entry refers to.
pub fn recover(dir: &Path, prefix: &str) -> std::io::Result<Recovered> {
    let path = dir.join(FILE);
    let mut entries = Vec::new();
    if path.exists() {
        for line in BufReader::new(File::open(&path)?).split(b'\n') {
            match serde_json::from_slice::<Entry>(&line?) {
                Ok(e) => entries.push(e),
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        for e in &entries {
            out.extend(serde_json::to_vec(e).map_err(std::io::Error::other)?);
            out.push(b'\n');
        }
        std::fs::write(&path, out)?;
    }
    let mut ends: HashMap<&str, u64> = HashMap::new();
    for e in &entries {
        if let (Some(f), Some(end)) = (&e.warc_file, e.warc_end) {
            let x = ends.entry(f.as_str()).or_default();
            *x = (*x).max(end);
        }
    }
    let mut next_file = 0;
    for (name, path) in warc_files(dir, prefix)? {
        match ends.get(name.as_str()) {
            Some(&end) => {
                OpenOptions::new().write(true).open(&path)?.set_len(end)?;
                next_file = next_file.max(file_number(&name, prefix).map_or(0, |n| n + 1));
            }
            None => std::fs::remove_file(&path)?,
        }
    }
    Ok(Recovered { entries, next_file })
}

/// The WARC files of a crawl directory, by name.
pub fn warc_files(dir: &Path, prefix: &str) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if file_number(&name, prefix).is_some() {
            out.insert(name, item.path());
        }
    }
    Ok(out)
}

fn file_number(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix(".warc.gz")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, file: &str, end: u64) -> Entry {
        Entry {
            url: url.into(),
            depth: 0,
            kind: "page".into(),
            status: Some(200),
            bytes: 1,
            truncated: false,
            attempts: 1,
            fetched_at_ms: 0,
            warc_file: Some(file.into()),
            warc_offset: Some(0),
            warc_end: Some(end),
            error: None,
            location: None,
            links: vec![],
            robots_body: None,
        }
    }

    #[test]
    fn recovery_cuts_unjournalled_bytes_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("test input");
        let d = dir.path();
        std::fs::write(d.join("crawl-00000.warc.gz"), vec![7u8; 100]).expect("test input");
        std::fs::write(d.join("crawl-00001.warc.gz"), vec![7u8; 10]).expect("test input");
        std::fs::write(d.join("other.txt"), b"x").expect("test input");
        let mut j = Journal::open(d).expect("test input");
        j.append(&entry("http://a/1", "crawl-00000.warc.gz", 40))
            .expect("test input");
        j.append(&entry("http://a/2", "crawl-00000.warc.gz", 60))
            .expect("test input");
        drop(j);
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join(FILE))
            .expect("test input");
        f.write_all(b"{\"url\":\"http://a/3\",\"dep")
            .expect("test input");
        drop(f);
        let r = recover(d, "crawl").expect("test input");
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.next_file, 1);
        assert_eq!(
            std::fs::metadata(d.join("crawl-00000.warc.gz"))
                .expect("test input")
                .len(),
            60
        );
        assert!(!d.join("crawl-00001.warc.gz").exists());
        assert!(d.join("other.txt").exists());
        // The torn line is gone: appending goes on from a clean line.
        let mut j = Journal::open(d).expect("test input");
        j.append(&entry("http://a/3", "crawl-00000.warc.gz", 60))
            .expect("test input");
        assert_eq!(recover(d, "crawl").expect("test input").entries.len(), 3);
    }
}
