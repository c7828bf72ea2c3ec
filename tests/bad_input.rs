//! The web half of `pipelines/webfaq2.yaml` on damaged input: the sample's
//! `damaged/damaged.warc.gz` (garbage between records, a 50 MB page, a
//! page in an undeclared charset, binary content typed as HTML, a broken
//! WARC header, a wrong Content-Length, a truncated last member, written by
//! `pipelines/sample/generate.py`) and the real damaged WARCs in
//! `../shared/data/warc/`. The run finishes, every damaged record is in
//! `pages__rejected` with its reason, every valid page is extracted, and a
//! record whose block ends before its `Content-Length` says (the end of its
//! file or gzip member) is kept with what was read and counted as
//! `truncated_disconnect`.

mod common;

use std::path::Path;

use common::{Project, shared_data};

const WEB: &str = r#"version: 1
name: bad_input
nodes:
  pages:  { op: warc, params: { paths: ["warc/*"] } }
  faqs:   { op: extract, inputs: { pages: pages } }
  clean:  { op: clean, inputs: { faqs: faqs } }
  lang:   { op: langid, inputs: { faqs: clean }, params: { mode: webfaq2 } }
  unique: { op: dedup, inputs: { faqs: lang } }
"#;

fn copy(from: &Path, p: &Project) {
    let name = from.file_name().expect("file name");
    let to = p.path("warc").join(name);
    std::fs::create_dir_all(p.path("warc")).expect("mkdir");
    std::fs::copy(from, to).expect("copy");
}

#[test]
fn every_damaged_record_is_rejected_with_its_reason_and_no_valid_page_is_lost() {
    let p = Project::new("empty");
    p.write("pipeline.yaml", WEB);
    let damaged =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample/damaged/damaged.warc.gz");
    copy(&damaged, &p);
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);

    let reasons = p.sql_rows("SELECT reason FROM pages__rejected ORDER BY record_offset");
    let expected = [
        "garbage between gzip members",
        "binary content typed as HTML",
        "bad WARC header line",
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    for (got, want) in reasons.iter().zip(expected) {
        assert!(got.contains(want), "{got:?} is not about {want:?}");
    }
    // The readable pages: the good ones around the damage, the 50 MB page
    // (cut at max_record_bytes, still HTML), the Shift_JIS page found by
    // detection, and the two records whose blocks end early: the one whose
    // Content-Length says more than its gzip member holds (all of its page
    // is there), and the half of the truncated last member.
    assert_eq!(
        p.sql_rows("SELECT regexp_replace(url, '.*/', '') FROM pages ORDER BY record_offset"),
        [
            "good-0",
            "good-1",
            "huge",
            "sjis",
            "bad-length",
            "good-3",
            "cut"
        ]
    );
    assert_eq!(
        p.sql_rows(
            "SELECT kind || ' ' || CAST(records AS VARCHAR) FROM pages__stats WHERE kind LIKE 'truncated%' ORDER BY kind"
        ),
        ["truncated 1", "truncated_disconnect 2"]
    );
    assert_eq!(
        p.sql_rows("SELECT charset FROM pages WHERE url LIKE '%/sjis'"),
        ["Shift_JIS"]
    );
    let per_page = p.sql_rows(
        "SELECT regexp_replace(url, '.*/', '') || ' ' || CAST(count(*) AS VARCHAR) AS page FROM unique GROUP BY url ORDER BY page",
    );
    assert_eq!(
        per_page,
        [
            "bad-length 18",
            "good-0 18",
            "good-1 18",
            "good-3 18",
            "sjis 10"
        ]
    );
    assert_eq!(
        p.sql_rows("SELECT DISTINCT language FROM unique WHERE url LIKE '%/sjis'"),
        ["jpn"]
    );
}

#[test]
fn the_real_damaged_warcs_finish_with_reasons() {
    let Some(dir) = shared_data("warc") else {
        return;
    };
    let p = Project::new("empty");
    p.write("pipeline.yaml", WEB);
    for entry in std::fs::read_dir(&dir).expect("warc dir") {
        copy(&entry.expect("entry").path(), &p);
    }
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    // One partition per file, each read.
    assert_eq!(log.computed()["pages"].len(), 6);
    assert_eq!(p.sql_count("SELECT count(*) FROM pages__rejected"), 0);
    // The clipped record is kept, as warcio and FastWARC keep it.
    assert_eq!(
        p.sql_rows(
            "SELECT regexp_replace(source_file, '.*/', '') FROM pages__stats WHERE kind = 'truncated_disconnect'"
        ),
        ["resiliparse-clipped.warc.gz"]
    );
    // The commoncrawl.org FAQ (JSON-LD with raw newlines in strings) is in.
    assert!(p.sql_count("SELECT count(*) FROM unique WHERE url LIKE '%commoncrawl.org/faq%'") >= 5);
}
