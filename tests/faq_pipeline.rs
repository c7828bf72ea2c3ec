//! `html_dir → extract → clean → langid → dedup` through the real binary:
//! on the 195 real FAQ pages of `../shared/data/faq-pages` (when present;
//! CI always has them), and the incremental fold of `dedup` on small CSV
//! releases.

mod common;

use common::Project;

#[test]
fn real_pages_through_extract_clean_langid_dedup() {
    let Some(abs) = common::shared_data("faq-pages") else {
        return;
    };
    let p = Project::new("empty");
    // Every page at https://<site>/<file>: one origin per site, no URL hints.
    p.write("urls.tsv", &common::site_url_map(&abs));
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: faqs
nodes:
  pages:  {{ op: html_dir, params: {{ path: "{}", urls: urls.tsv }} }}
  faqs:   {{ op: extract, inputs: {{ pages: pages }} }}
  clean:  {{ op: clean, inputs: {{ faqs: faqs }} }}
  lang:   {{ op: langid, inputs: {{ faqs: clean }} }}
  unique: {{ op: dedup, inputs: {{ faqs: lang }} }}
"#,
            abs.display()
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["faqs"].len(), 195);
    assert_eq!(log.computed()["unique"].len(), 195);

    let extracted = p.sql_count("SELECT count(*) FROM faqs");
    let cleaned = p.sql_count("SELECT count(*) FROM clean");
    let dropped = p.sql_count("SELECT count(*) FROM clean__rejected");
    assert!(extracted > 5000, "{extracted}");
    assert_eq!(cleaned + dropped, extracted);
    assert!(dropped > 0);
    // Every rule that dropped a row is named.
    let rules = p.sql_rows("SELECT DISTINCT reason FROM clean__rejected ORDER BY 1");
    assert!(
        rules.iter().all(|r| [
            "answer_contains_question_mark",
            "answer_too_many_newlines",
            "answer_too_short",
            "question_too_short",
            "empty_question",
            "empty_answer"
        ]
        .contains(&r.as_str())),
        "{rules:?}"
    );

    // Declared-language traps: the text decides, not `<html lang>`.
    for (page, lang, declared) in [
        ("faq.lb-declared.html", "deu", "lb"),
        ("faq.nl-declared.html", "fra", "nl"),
    ] {
        let rows = p.sql_rows(&format!(
                "SELECT language, html_lang, count(*) AS n FROM lang WHERE url LIKE '%indoorskydive/{page}' GROUP BY 1, 2 ORDER BY n DESC"
            ),
        );
        assert!(
            rows.first()
                .is_some_and(|r| r.starts_with(&format!("{lang},{declared},"))),
            "{page}: {rows:?}"
        );
    }
    // Scripts come from the letters.
    let scripts = p.sql_rows("SELECT DISTINCT script FROM lang WHERE language IN ('rus', 'ara', 'jpn', 'hin', 'tha') ORDER BY 1",
    );
    for s in ["Arab", "Cyrl", "Deva", "Jpan", "Thai"] {
        assert!(
            scripts.iter().any(|x| x == s),
            "{s} missing from {scripts:?}"
        );
    }

    // The English JSON-LD served on every mcp-let locale is one set of
    // pairs: dedup keeps the first page's and names it for the others.
    let dups = p.sql_count("SELECT count(*) FROM unique__rejected WHERE url LIKE '%mcp-let/%' AND reason LIKE 'duplicate_id: first kept in partition%'",
    );
    assert!(dups >= 8, "{dups}");
    let kept = p.sql_count("SELECT count(*) FROM unique");
    let rejected = p.sql_count("SELECT count(*) FROM unique__rejected");
    assert_eq!(kept + rejected, p.sql_count("SELECT count(*) FROM lang"));
    assert_eq!(
        kept,
        p.sql_count("SELECT count(DISTINCT id) FROM lang"),
        "exactly one row per id survives"
    );

    // The row functions agree with the operators.
    let udf =
        p.sql_count("SELECT count(*) FROM (SELECT unnest(extract_faq(html)) AS f FROM pages)");
    assert_eq!(udf, extracted);
    let lang = p
        .sql_rows("SELECT detect_language('Wie lange dauert die Lieferung nach Österreich?') AS l");
    assert_eq!(lang, ["deu"]);
}

const PIPELINE: &str = r#"version: 1
name: fold
nodes:
  raw:    { op: csv, params: { paths: ["data/*.csv"] } }
  unique: { op: dedup, inputs: { faqs: raw }, params: { near_duplicates: flag, near_threshold: 0.7 } }
"#;

const HEADER: &str = "id,origin,url,question,answer\n";

#[test]
fn dedup_folds_a_new_release_in_without_recomputing_the_old() {
    let p = Project::new("empty");
    p.write("pipeline.yaml", PIPELINE);
    p.write(
        "data/r1.csv",
        &format!("{HEADER}a1,https://a.com,https://a.com/1,How long does delivery to Austria take?,Two days\na2,https://a.com,https://a.com/1,Can I pay by card?,Yes\na1,https://a.com,https://a.com/2,How long does delivery to Austria take?,Two days\n"),
    );
    p.write(
        "data/r2.csv",
        &format!("{HEADER}b1,https://b.com,https://b.com/1,Where is the shop?,Berlin\n"),
    );
    let first = p.run(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.computed()["unique"], ["data/r1.csv", "data/r2.csv"]);

    // A new release: only its unit runs, against the stored state.
    p.write(
        "data/r3.csv",
        &format!("{HEADER}a1,https://a.com,https://a.com/3,How long does delivery to Austria take?,Two days\nc1,https://a.com,https://a.com/4,How long does the delivery to Austria take?,Three days\nc2,https://c.com,https://c.com/1,How long does delivery to Austria take?,Two days\n"),
    );
    let second = p.run(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.computed()["unique"], ["data/r3.csv"]);
    assert_eq!(second.hits()["unique"], ["data/r1.csv", "data/r2.csv"]);
    assert_eq!(
        p.sql_rows("SELECT url, reason FROM unique__rejected ORDER BY url"),
        [
            "https://a.com/2,duplicate_id: first kept in partition `data/r1.csv`",
            "https://a.com/3,duplicate_id: first kept in partition `data/r1.csv`"
        ]
    );
    // Near-duplicates within an origin are flagged, across origins not.
    assert_eq!(
        p.sql_rows(
            "SELECT id, near_duplicate_of FROM \"unique\" WHERE near_duplicate_of IS NOT NULL"
        ),
        ["c1,a1"]
    );

    // Changing an old release recomputes it and every later one.
    p.write(
        "data/r2.csv",
        &format!("{HEADER}b1,https://b.com,https://b.com/1,Where is the shop now?,Berlin\n"),
    );
    let third = p.run(&[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.computed()["unique"], ["data/r2.csv", "data/r3.csv"]);
    assert_eq!(third.hits()["unique"], ["data/r1.csv"]);

    // Nothing changed: nothing runs.
    let fourth = p.run(&[]);
    assert!(!fourth.computed().contains_key("unique"));
}

#[test]
fn the_bundled_faqs_pipeline_up_to_dedup() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let p = Project::new("empty");
    common::copy_dir(&root.join("faqs"), &p.path("faqs"));
    std::fs::copy(root.join("faqs.yaml"), p.pipeline()).expect("copy pipeline");
    // Everything before the model (which comes from PyPI).
    let log = p.run(&["--until", "unique"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(
        p.sql_rows("SELECT language, script, count(*) FROM \"unique\" GROUP BY 1, 2 ORDER BY 1"),
        [
            "deu,Latn,3",
            "eng,Latn,4",
            "fra,Latn,2",
            "jpn,Jpan,2",
            "rus,Cyrl,2",
            "spa,Latn,2"
        ]
    );
    assert_eq!(
        p.sql_rows("SELECT question, reason FROM clean__rejected"),
        ["Do you bake on public holidays?,answer_too_short"]
    );
    assert_eq!(
        p.sql_rows("SELECT url, reason FROM faqs__rejected"),
        [
            "https://lindenhof.example/ja/faq,JSON-LD block 2: invalid JSON at line 1 column 36: EOF while parsing a list"
        ]
    );
    // The prefixes WebFAQ strips are gone.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM clean WHERE question LIKE 'Q:%' OR answer LIKE 'A:%'"),
        0
    );
}
