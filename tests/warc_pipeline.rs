//! `op: warc` through the whole engine: real WARCs from ../shared/data, and a
//! WARC with one of every kind of damage. The run finishes, every damaged
//! record is in `pages__rejected` with its reason, nothing valid is lost.

mod common;

use std::io::Write;

use common::Project;

fn record(kind: &str, uri: &str, block: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{}>\r\nWARC-Date: 2026-11-01T10:00:00Z\r\nWARC-Target-URI: {uri}\r\n",
        uri.len()
    )
    .into_bytes();
    r.extend_from_slice(extra);
    r.extend_from_slice(
        format!(
            "Content-Type: application/http; msgtype=response\r\nContent-Length: {}\r\n\r\n",
            block.len()
        )
        .as_bytes(),
    );
    r.extend_from_slice(block);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

fn http(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n").into_bytes();
    h.extend_from_slice(body);
    h
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn damaged_warc() -> Vec<u8> {
    let mut out = Vec::new();
    // 1. a good UTF-8 page
    out.extend(gz(&record(
        "response",
        "https://good.example/faq",
        &http(
            "text/html; charset=utf-8",
            "<html><body>Größe?</body></html>".as_bytes(),
        ),
        b"",
    )));
    // 2. a truncated gzip member
    let cut = gz(&record(
        "response",
        "https://cut.example/",
        &http("text/html", b"<html>this member is cut in half</html>"),
        b"",
    ));
    out.extend_from_slice(&cut[..cut.len() / 2]);
    // 4. a page larger than max_record_bytes (kept, cut)
    let mut big = b"<html><body>".to_vec();
    big.extend(std::iter::repeat_n(b'x', 12 << 20));
    out.extend(gz(&record(
        "response",
        "https://big.example/",
        &http("text/html", &big),
        b"",
    )));
    // 5. a page in an undeclared charset (windows-1251)
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(
        "<html><body><p>Как долго длится доставка заказа по всей стране?</p></body></html>",
    );
    out.extend(gz(&record(
        "response",
        "https://ru.example/",
        &http("text/html", &cp1251),
        b"",
    )));
    // 3. garbage between records
    out.extend_from_slice(b"\x00\x01garbage garbage garbage\n");
    // 6. binary content typed as HTML
    out.extend(gz(&record(
        "response",
        "https://bin.example/",
        &http("text/html", &[0u8, 159, 146, 150, 0, 0, 7, 0, 1, 2, 3]),
        b"",
    )));
    // 7. a non-HTML record
    out.extend(gz(&record(
        "response",
        "https://img.example/x.png",
        &http("image/png", b"\x89PNG...."),
        b"",
    )));
    // 8. invalid UTF-8 in headers
    out.extend(gz(&record(
        "response",
        "https://hdr.example/",
        &http("text/html", b"<html>ok</html>"),
        b"X-Bad: \xff\xfe\r\n",
    )));
    // 9. another good page after all that
    out.extend(gz(&record(
        "response",
        "https://good.example/last",
        &http(
            "text/html",
            b"<!doctype html><html><body>last</body></html>",
        ),
        b"",
    )));
    out
}

const PIPELINE: &str = r#"version: 1
name: warc
nodes:
  pages:
    op: warc
    params: { paths: ["warc/*.warc.gz"] }
  summary:
    op: sql
    inputs: { p: pages }
    params: { query: "SELECT url, charset, length(html) AS len FROM p ORDER BY url" }
"#;

#[test]
fn damaged_records_are_rejected_and_the_rest_kept() {
    let p = Project::new("empty");
    p.write("pipeline.yaml", PIPELINE);
    std::fs::create_dir_all(p.path("warc")).expect("mkdir");
    std::fs::write(p.path("warc/damaged.warc.gz"), damaged_warc()).expect("write");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let pages = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT url, charset FROM pages ORDER BY url",
        "--format",
        "csv",
    ]);
    assert_eq!(
        pages,
        "url,charset\nhttps://big.example/,UTF-8\nhttps://good.example/faq,utf-8\nhttps://good.example/last,UTF-8\nhttps://ru.example/,windows-1251\n"
    );
    let ru = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT html FROM pages WHERE url = 'https://ru.example/'",
        "--format",
        "csv",
    ]);
    assert!(ru.contains("Как долго длится доставка"), "{ru}");
    let big = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT length(html) AS n FROM pages WHERE url = 'https://big.example/'",
        "--format",
        "csv",
    ]);
    let n: usize = big
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("length");
    assert!(n <= 10 << 20 && n > 9 << 20, "{n}");
    let rejected = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT reason FROM pages__rejected ORDER BY record_offset",
        "--format",
        "csv",
    ]);
    assert_eq!(rejected.lines().count(), 1 + 4, "{rejected}");
    assert!(
        rejected.contains("garbage between gzip members"),
        "{rejected}"
    );
    assert!(
        rejected.contains("binary content typed as HTML"),
        "{rejected}"
    );
    assert!(
        rejected.contains("invalid UTF-8 in WARC headers"),
        "{rejected}"
    );
    let stats = p.stdout(&["sql", "pipeline.yaml", "SELECT kind, records FROM pages__stats WHERE kind IN ('non_html', 'truncated') ORDER BY kind", "--format", "csv"]);
    assert_eq!(stats, "kind,records\nnon_html,1\ntruncated,1\n");
}

#[test]
fn real_warcs_from_shared_data() {
    let Some(dir) = common::shared_data("warc") else {
        return;
    };
    let p = Project::new("empty");
    let abs = std::fs::canonicalize(&dir).expect("canonical");
    p.write(
        "pipeline.yaml",
        &(PIPELINE.replace("warc/*.warc.gz", &format!("{}/*.warc*", abs.display()))
            + "  faqs: { op: extract, inputs: { pages: pages } }\n"),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["pages"].len(), 6);
    // Pages from the response and resource records that hold HTML.
    let n = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT count(*) AS n, count(DISTINCT source_file) AS files FROM pages",
        "--format",
        "csv",
    ]);
    let row: Vec<u64> = n
        .lines()
        .nth(1)
        .expect("row")
        .split(',')
        .map(|v| v.parse().expect("n"))
        .collect();
    assert!(row[0] >= 40, "{n}");
    // The commoncrawl.org FAQ page SOURCES.md points at is there.
    let cc = p.stdout(&["sql", "pipeline.yaml", "SELECT count(*) AS n FROM pages WHERE url LIKE '%commoncrawl.org/faq%' AND html LIKE '%FAQPage%'", "--format", "csv"]);
    assert_eq!(cc, "n\n1\n");
    // Its JSON-LD has raw newlines inside strings: repaired, all 14
    // questions read, nothing rejected.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM faqs WHERE url LIKE '%commoncrawl.org/faq%'"),
        14
    );
    assert_eq!(
        p.sql_count("SELECT count(*) FROM faqs__rejected WHERE url LIKE '%commoncrawl.org/faq%'"),
        0
    );
}

#[test]
fn html_dir_reads_the_real_faq_pages() {
    let Some(abs) = common::shared_data("faq-pages") else {
        return;
    };
    let p = Project::new("empty");
    p.write(
        "urls.tsv",
        "feeltracker.com/faq.de.html\thttps://feeltracker.com/de/faq/\n",
    );
    p.write(
        "pipeline.yaml",
        &format!(
            "version: 1\nname: pages\nnodes:\n  pages:\n    op: html_dir\n    params: {{ path: \"{}\", base_url: \"https://pages.test/\", urls: urls.tsv }}\n",
            abs.display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["pages"].len(), 195);
    let de = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT origin, url FROM pages WHERE url LIKE '%feeltracker.com/de/%'",
        "--format",
        "csv",
    ]);
    assert_eq!(
        de,
        "origin,url\nhttps://feeltracker.com,https://feeltracker.com/de/faq/\n"
    );
    let n = p.stdout(&["sql", "pipeline.yaml", "SELECT count(*) AS n FROM pages WHERE html LIKE '%FAQPage%' AND url LIKE 'https://pages.test/%'", "--format", "csv"]);
    let n: u64 = n
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("count");
    assert!(n >= 180, "{n}");
    // Changing the URL map recomputes (it is in the key).
    p.write(
        "urls.tsv",
        "feeltracker.com/faq.de.html\thttps://feeltracker.com/de/faq\n",
    );
    let again = p.run(&[]);
    assert_eq!(again.computed()["pages"].len(), 195);
}

fn write_parquet(
    path: &std::path::Path,
    batch: &dflow_engine::datafusion::arrow::record_batch::RecordBatch,
) {
    use dflow_engine::datafusion::parquet::arrow::ArrowWriter;
    let file = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

#[test]
fn owi_parquet_release_with_faq_column() {
    use dflow_engine::datafusion::arrow::array::{
        ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, StructBuilder,
    };
    use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
    use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let p = Project::new("empty");
    let day1 = p.path("owi/2026/11/01");
    std::fs::create_dir_all(&day1).expect("mkdir");
    // A real-shaped OWI file: `json-ld` list, `faq` list of structs, string dates.
    let mut json_ld = ListBuilder::new(StringBuilder::new());
    json_ld.values().append_value("{\"@type\": \"FAQPage\"}");
    json_ld.append(true);
    // No `faq` column value on this row: `extract` reads its JSON-LD.
    json_ld.values().append_value(
        r#"{"@context":"https://schema.org","@type":"FAQPage","mainEntity":[{"@type":"Question","name":"Wie lange dauert die Lieferung?","acceptedAnswer":{"@type":"Answer","text":"Drei bis fünf Werktage."}}]}"#,
    );
    json_ld.append(true);
    let item_fields: Fields = vec![
        Field::new("question", DataType::Utf8, true),
        Field::new("answer", DataType::Utf8, true),
        Field::new("language", DataType::Utf8, true),
    ]
    .into();
    let mut faq = ListBuilder::new(StructBuilder::from_fields(item_fields, 2));
    for (q, a) in [
        ("How long is delivery?", "Three to five working days."),
        ("Can I return it?", "Yes, within thirty days."),
    ] {
        let s = faq.values();
        s.field_builder::<StringBuilder>(0)
            .expect("q")
            .append_value(q);
        s.field_builder::<StringBuilder>(1)
            .expect("a")
            .append_value(a);
        s.field_builder::<StringBuilder>(2)
            .expect("l")
            .append_value("en");
        s.append(true);
    }
    faq.append(true);
    faq.append(false);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(StringArray::from(vec!["a1", "a2"]))),
        (
            "url",
            Arc::new(StringArray::from(vec![
                "https://shop.example/faq",
                "https://shop.example/de/faq",
            ])),
        ),
        (
            "title",
            Arc::new(StringArray::from(vec!["FAQ", "Häufige Fragen"])),
        ),
        (
            "warc_date",
            Arc::new(StringArray::from(vec![
                "2026-11-01T10:00:00Z",
                "not a date",
            ])),
        ),
        ("json-ld", Arc::new(json_ld.finish())),
        ("faq", Arc::new(faq.finish())),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, c)| c).collect(),
    )
    .expect("batch");
    write_parquet(&day1.join("TOWI-2026-11-01-dc1-eng-x.parquet"), &batch);
    // Only the required column.
    let minimal = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("url", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["http://other.example/q"]))],
    )
    .expect("batch");
    write_parquet(&day1.join("TOWI-2026-11-01-dc2-deu-x.parquet"), &minimal);
    // Not OWI at all.
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .expect("batch");
    write_parquet(&day1.join("stray.parquet"), &other);

    p.write(
        "pipeline.yaml",
        "version: 1\nname: owi\nnodes:\n  pages: { op: owi, params: { paths: [\"owi/**/*.parquet\"] } }\n  qa:\n    op: sql\n    inputs: { p: pages }\n    params:\n      partition_by: p\n      query: SELECT url, f.question AS question FROM (SELECT url, unnest(faq) AS f FROM p)\n  faqs: { op: extract, inputs: { pages: pages } }\n",
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let pages = p.stdout(&["sql", "pipeline.yaml", "SELECT origin, title, warc_date IS NULL AS no_date, cardinality(json_ld) AS n FROM pages ORDER BY url", "--format", "csv"]);
    assert_eq!(
        pages,
        "origin,title,no_date,n\nhttp://other.example,,true,\nhttps://shop.example,Häufige Fragen,true,1\nhttps://shop.example,FAQ,false,1\n"
    );
    let qa = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT question FROM qa ORDER BY question",
        "--format",
        "csv",
    ]);
    assert_eq!(qa, "question\nCan I return it?\nHow long is delivery?\n");
    // `extract` takes the v2 path (the `faq` column) where it is filled and
    // the page's JSON-LD where it is not.
    assert_eq!(
        p.sql_rows("SELECT markup, question, title FROM faqs ORDER BY question"),
        [
            "owi,Can I return it?,FAQ",
            "owi,How long is delivery?,FAQ",
            "json-ld,Wie lange dauert die Lieferung?,Häufige Fragen"
        ]
    );
    let rejected = p.stdout(&[
        "sql",
        "pipeline.yaml",
        "SELECT source_file, reason FROM pages__rejected",
        "--format",
        "csv",
    ]);
    assert!(
        rejected
            .contains("owi/2026/11/01/stray.parquet,not OWI Parquet: no `url` column (columns: a)"),
        "{rejected}"
    );

    // A new day is new partitions: only they are computed.
    let day2 = p.path("owi/2026/11/02");
    std::fs::create_dir_all(&day2).expect("mkdir");
    let newer = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("url", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["https://new.example/faq"]))],
    )
    .expect("batch");
    write_parquet(&day2.join("TOWI-2026-11-02-dc1-eng-x.parquet"), &newer);
    let log = p.run(&[]);
    assert_eq!(
        log.computed()["pages"],
        vec!["owi/2026/11/02/TOWI-2026-11-02-dc1-eng-x.parquet"]
    );
    assert_eq!(log.computed()["qa"].len(), 1);
}
