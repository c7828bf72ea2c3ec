//! The crawl's journal: one JSON line per finished URL, appended after its
//! records are flushed to the WARC file. An interrupted crawl replays it:
//! every URL in it is answered from it (links, redirect targets, robots
//! rules) instead of the network, and WARC bytes written after the last
//! journalled record (a member cut by the interruption) are dropped.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use dflow_engine::cache::files;
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

/// Reads the journal of `dir`, rewrites it (atomically) without a line cut
/// by the interruption, cuts each WARC file after its last journalled
/// record and removes WARC files no entry refers to.
pub fn recover(dir: &Path, prefix: &str) -> std::io::Result<Recovered> {
    let path = dir.join(FILE);
    // A rewrite killed before its rename leaves a temporary file behind.
    files::remove_tmp_files(dir);
    let mut entries = Vec::new();
    if path.exists() {
        let read = read_entries(&path)?;
        entries = read.entries;
        if read.torn > 0 || !read.ends_clean {
            rewrite(&path, &entries)?;
        }
    }
    let next_file = cut_warc_files(dir, prefix, &entries)?;
    Ok(Recovered { entries, next_file })
}

/// What [`read_entries`] found in a journal.
struct Scanned {
    entries: Vec<Entry>,
    /// Lines that are not an entry (the last one, cut by a kill mid-append).
    torn: usize,
    /// The file is empty or ends with a newline (appending starts a line).
    ends_clean: bool,
}

/// The entries of the journal at `path`. A line that is not an entry (a
/// process killed mid-append leaves a torn last line) is skipped with a
/// warning: it is the URL that was in flight, fetched again on resume.
fn read_entries(path: &Path) -> std::io::Result<Scanned> {
    let mut entries = Vec::new();
    let mut torn = 0;
    for (i, line) in BufReader::new(File::open(path)?).split(b'\n').enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(e) => {
                torn += 1;
                eprintln!(
                    "dflow: warning: {}:{}: ignoring a torn journal line ({} bytes: {e}); its URL is fetched again",
                    path.display(),
                    i + 1,
                    line.len()
                );
            }
        }
    }
    Ok(Scanned {
        entries,
        torn,
        ends_clean: ends_with_newline(path)?,
    })
}

/// Whether the file at `path` is empty or ends with `\n`.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Replaces the journal at `path` with `entries`, atomically: a temporary
/// file beside it, fsynced, renamed over it, the directory fsynced. A kill
/// at any point leaves the old journal or the new one, never a mix.
fn rewrite(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(serde_json::to_vec(e).map_err(std::io::Error::other)?);
        out.push(b'\n');
    }
    files::write_atomic(path, &out).map_err(std::io::Error::other)
}

/// Cuts each WARC file of `dir` after the last record the journal has from
/// it and removes those it has none from; the next file number to write.
fn cut_warc_files(dir: &Path, prefix: &str, entries: &[Entry]) -> std::io::Result<u32> {
    let mut ends: HashMap<&str, u64> = HashMap::new();
    for e in entries {
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
    Ok(next_file)
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

    /// Lines of the journal file of `dir`.
    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join(FILE))
            .expect("journal")
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_damaged_line_costs_only_itself_and_the_rewrite_is_atomic() {
        let dir = tempfile::tempdir().expect("test input");
        let d = dir.path();
        std::fs::write(d.join("crawl-00000.warc.gz"), vec![7u8; 100]).expect("test input");
        let good = |url: &str, end| {
            serde_json::to_string(&entry(url, "crawl-00000.warc.gz", end)).expect("json")
        };
        // A damaged line between two good ones, and a torn last line that
        // is not even UTF-8 (killed mid-append inside a multibyte URL).
        let mut text = format!(
            "{}\n{{\"url\":\"http://a/x\n{}\n",
            good("http://a/1", 40),
            good("http://a/2", 60)
        );
        text.push_str("{\"url\":\"http://a/\u{e9}");
        let mut bytes = text.into_bytes();
        bytes.pop();
        std::fs::write(d.join(FILE), &bytes).expect("test input");
        // What a rewrite killed before its rename leaves behind.
        let stale = d.join(format!(".{FILE}{}1-0", files::TMP_MARK));
        std::fs::write(&stale, b"half a journal").expect("test input");

        let r = recover(d, "crawl").expect("a torn journal is not an error");
        let urls: Vec<_> = r.entries.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://a/1", "http://a/2"]);
        assert_eq!(
            std::fs::metadata(d.join("crawl-00000.warc.gz"))
                .expect("test input")
                .len(),
            60
        );
        assert_eq!(lines(d), [good("http://a/1", 40), good("http://a/2", 60)]);
        // Nothing but the journal, its WARC file: no temporary file left,
        // the stale one gone.
        let mut names: Vec<_> = std::fs::read_dir(d)
            .expect("test input")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["crawl-00000.warc.gz", FILE]);
    }

    #[test]
    fn a_last_line_without_its_newline_is_kept_and_ended() {
        let dir = tempfile::tempdir().expect("test input");
        let d = dir.path();
        std::fs::write(d.join("crawl-00000.warc.gz"), vec![7u8; 100]).expect("test input");
        let line =
            serde_json::to_string(&entry("http://a/1", "crawl-00000.warc.gz", 40)).expect("json");
        std::fs::write(d.join(FILE), &line).expect("test input");
        assert_eq!(recover(d, "crawl").expect("recover").entries.len(), 1);
        let mut j = Journal::open(d).expect("test input");
        j.append(&entry("http://a/2", "crawl-00000.warc.gz", 60))
            .expect("test input");
        assert_eq!(recover(d, "crawl").expect("recover").entries.len(), 2);
    }
}
