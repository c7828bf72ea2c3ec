//! `align` on real data with multilingual-e5-small (needs
//! `DFLOW_TEST_MODELS`, which `.ci/run` sets, and `../shared/data`):
//!
//! - the multi-locale FAQ sites of `../shared/data/faq-pages`: within a
//!   group of `sources.json`, the i-th question of one locale is the i-th of
//!   another where both pages have the same question count. Precision and
//!   recall of the candidates at 0.8, 0.85, 0.9 and 0.95, per group and
//!   overall, are printed (`cargo test --test align_real -- --nocapture`);
//!   the sites whose JSON-LD stayed English on every locale give no pairs.
//!   Burn on 2 CPU cores embeds about 5 QAs a second at 128 tokens, so by
//!   default the first 8 locales of each group are aligned at 64 tokens
//!   (about 2,700 QAs); `DFLOW_ALIGN_FULL=1` aligns every locale at 128
//!   tokens (5,541 QAs, about 20 minutes), which is what BENCHMARKS.md
//!   reports. Only pairs of pages with the same question count in one
//!   group are judged: between pages of different counts the i-th
//!   questions need not correspond.
//! - Tatoeba (`eval/tatoeba-laser`, 29 languages against English, the first
//!   100 pairs of each): bitext precision at the same thresholds.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use common::Project;
use serde_json::Value;

const THRESHOLDS: [f32; 4] = [0.8, 0.85, 0.9, 0.95];

fn e5() -> Option<PathBuf> {
    dflow_engine::testing::test_models("multilingual-e5-small")
}

/// Whether to align every locale at full length (`DFLOW_ALIGN_FULL=1`).
fn full() -> bool {
    std::env::var("DFLOW_ALIGN_FULL").is_ok_and(|v| v == "1")
}

/// The align part of a pipeline, after a node `lang` with FAQ rows.
fn align_nodes(model: &std::path::Path, max_length: usize) -> String {
    format!(
        r#"  e5:     {{ op: model, params: {{ source: "path:{}" }} }}
  emb:
    op: embed
    inputs: {{ rows: lang, model: e5 }}
    params: {{ template: "{{question}} {{answer}}", prefix: "query: ", dimensions: 384, max_length: {max_length} }}
  align:
    op: align
    inputs: {{ qa: emb }}
    params: {{ min_qa_similarity: null, release_threshold: 0.8, min_pairs_per_language_pair: 1 }}
"#,
        model.display()
    )
}

/// Locales aligned per group by default.
const LOCALES: usize = 8;

fn split(row: &str) -> Vec<String> {
    row.split(',').map(str::to_string).collect()
}

#[test]
fn multi_locale_sites_precision_and_recall() {
    let (Some(pages), Some(model)) = (common::shared_data("faq-pages"), e5()) else {
        return;
    };
    let Some(sources) = common::shared_data("sources.json") else {
        return;
    };
    let sources: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(sources).expect("read")).expect("json");
    // Pages of the alignment groups: file (relative to faq-pages) → group, count.
    let mut groups: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut per_group: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sources {
        let (Some(file), Some(group)) = (s["file"].as_str(), s["group"].as_str()) else {
            continue;
        };
        if group.is_empty() {
            continue;
        }
        let n = per_group.entry(group.to_string()).or_default();
        *n += 1;
        if *n > LOCALES && !full() {
            continue;
        }
        if let Some(rel) = file.strip_prefix("faq-pages/") {
            groups.insert(
                rel.to_string(),
                (
                    group.to_string(),
                    s["questions_jsonld"].as_u64().unwrap_or(0),
                ),
            );
        }
    }
    let p = Project::new("empty");
    // Every page at https://<site>/<file>; the grouped ones are kept by SQL.
    p.write("urls.tsv", &common::site_url_map(&pages));
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: align
nodes:
  pages:  {{ op: html_dir, params: {{ path: "{}", urls: urls.tsv }} }}
  faqs:   {{ op: extract, inputs: {{ pages: pages }}, params: {{ markups: [json-ld] }} }}
  known:
    op: sql
    inputs: {{ t: faqs }}
    params: {{ query: "SELECT url || '#' || CAST(position AS VARCHAR) AS id, url, origin, question, answer, position FROM t WHERE url IN ({})" }}
  lang:   {{ op: langid, inputs: {{ faqs: known }} }}
{}"#,
            pages.display(),
            groups
                .keys()
                .map(|rel| {
                    let (site, file) = rel.split_once('/').expect("site/file");
                    format!("'https://{site}/{file}'")
                })
                .collect::<Vec<_>>()
                .join(", "),
            align_nodes(&model, if full() { 128 } else { 64 })
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);

    // id (`url#position`) → (page, position, language)
    let mut rows: HashMap<String, (String, u32, String)> = HashMap::new();
    for r in p.sql_rows("SELECT id, url, position, language FROM emb") {
        let f = split(&r);
        let page = f[1].trim_start_matches("https://").to_string();
        rows.insert(
            f[0].clone(),
            (page, f[2].parse().expect("position"), f[3].clone()),
        );
    }
    // Gold pairs: same group, same count, same position, other language.
    let mut by_page: HashMap<&str, BTreeMap<u32, (&str, &str)>> = HashMap::new();
    for (id, (page, pos, lang)) in &rows {
        by_page.entry(page).or_default().insert(*pos, (id, lang));
    }
    let mut gold: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let pages_of: Vec<(&String, &(String, u64))> = groups.iter().collect();
    for (i, (a, (ga, na))) in pages_of.iter().enumerate() {
        for (b, (gb, nb)) in &pages_of[i + 1..] {
            if ga != gb || na != nb {
                continue;
            }
            let (Some(qa), Some(qb)) = (by_page.get(a.as_str()), by_page.get(b.as_str())) else {
                continue;
            };
            for (pos, (ida, la)) in qa {
                if let Some((idb, lb)) = qb.get(pos)
                    && la != lb
                {
                    let pair = if ida < idb { (ida, idb) } else { (idb, ida) };
                    gold.entry(ga.clone())
                        .or_default()
                        .insert((pair.0.to_string(), pair.1.to_string()));
                }
            }
        }
    }
    let found: Vec<(String, String, f32)> = p
        .sql_rows("SELECT id1, id2, similarity FROM align__candidates")
        .iter()
        .map(|r| {
            let f = split(r);
            let (a, b) = if f[0] < f[1] {
                (&f[0], &f[1])
            } else {
                (&f[1], &f[0])
            };
            (a.clone(), b.clone(), f[2].parse().expect("similarity"))
        })
        .collect();
    let group_of = |id: &str| {
        rows.get(id)
            .and_then(|(page, _, _)| groups.get(page))
            .map(|(g, _)| g.clone())
            .unwrap_or_default()
    };
    // A pair is judged when its pages are in one group with one count.
    let judged = |a: &str, b: &str| {
        let page = |id: &str| rows.get(id).and_then(|(p, _, _)| groups.get(p));
        matches!((page(a), page(b)), (Some(x), Some(y)) if x == y)
    };

    // English JSON-LD on every locale: no cross-language pairs at all.
    for site in ["mcp-let/", "zxrubbertech/"] {
        let n = found
            .iter()
            .filter(|(a, b, _)| rows[a].0.starts_with(site) || rows[b].0.starts_with(site))
            .count();
        assert_eq!(n, 0, "{site} gave {n} pairs");
    }

    eprintln!(
        "| group | gold | P@0.8 | R@0.8 | P@0.85 | R@0.85 | P@0.9 | R@0.9 | P@0.95 | R@0.95 |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|");
    let all_gold: BTreeSet<(String, String)> = gold.values().flatten().cloned().collect();
    let mut overall = Vec::new();
    let names: Vec<String> = gold
        .keys()
        .cloned()
        .chain(["overall".to_string()])
        .collect();
    for g in &names {
        let gs = if g == "overall" { &all_gold } else { &gold[g] };
        let mut line = format!("| {g} | {} |", gs.len());
        for t in THRESHOLDS {
            let pred: Vec<&(String, String, f32)> = found
                .iter()
                .filter(|(a, b, s)| {
                    *s >= t && judged(a, b) && (g == "overall" || group_of(a) == *g)
                })
                .collect();
            let right = pred
                .iter()
                .filter(|(a, b, _)| gs.contains(&(a.clone(), b.clone())))
                .count();
            let precision = if pred.is_empty() {
                f64::NAN
            } else {
                right as f64 / pred.len() as f64
            };
            let recall = right as f64 / gs.len().max(1) as f64;
            line.push_str(&format!(" {precision:.3} | {recall:.3} |"));
            if g == "overall" {
                overall.push((t, precision, recall));
            }
        }
        eprintln!("{line}");
    }
    // Floors well under what e5-small measures here (see BENCHMARKS.md),
    // so a regression in extraction, embedding or matching shows.
    let at = |t: f32| {
        overall
            .iter()
            .find(|o| o.0 == t)
            .copied()
            .expect("threshold")
    };
    assert!(all_gold.len() > 2000, "{} gold pairs", all_gold.len());
    assert!(at(0.9).1 >= 0.95, "precision at 0.9: {:?}", at(0.9));
    assert!(at(0.8).2 >= 0.75, "recall at 0.8: {:?}", at(0.8));
    assert!(
        at(0.95).1 >= at(0.8).1 - 0.02,
        "precision rises with the threshold: {overall:?}"
    );
}

#[test]
fn tatoeba_bitext_precision() {
    let (Some(dir), Some(model)) = (common::shared_data("eval/tatoeba-laser"), e5()) else {
        return;
    };
    const PAIRS: usize = 100;
    let mut csv = String::from("id,origin,url,language,question,answer\n");
    let field = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut langs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // tatoeba.xxx-eng.xxx
        let Some(lang) = name
            .strip_prefix("tatoeba.")
            .and_then(|r| r.split_once("-eng."))
            .filter(|(l, ext)| l == ext)
            .map(|(l, _)| l.to_string())
        else {
            continue;
        };
        let other = std::fs::read_to_string(entry.path()).expect("read");
        let eng =
            std::fs::read_to_string(dir.join(format!("tatoeba.{lang}-eng.eng"))).expect("read");
        for (i, (x, e)) in other.lines().zip(eng.lines()).take(PAIRS).enumerate() {
            for (l, text) in [(lang.as_str(), x), ("eng", e)] {
                csv.push_str(&format!(
                    "{l}-{lang}-{i},tatoeba-{lang},tatoeba/{lang}/{i},{l},{},{}\n",
                    field(text),
                    field(text)
                ));
            }
        }
        langs.push(lang);
    }
    assert!(langs.len() >= 29, "{langs:?}");
    let p = Project::new("empty");
    p.write("pairs.csv", &csv);
    p.write(
        "pipeline.yaml",
        &format!(
            r#"version: 1
name: tatoeba
nodes:
  lang: {{ op: csv, params: {{ paths: [pairs.csv] }} }}
{}"#,
            align_nodes(&model, 128).replace("{question} {answer}", "{question}")
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let found: Vec<(bool, f32)> = p
        .sql_rows("SELECT id1, id2, similarity FROM align__candidates")
        .iter()
        .map(|r| {
            let f = split(r);
            // Ids are `{side}-{lang}-{i}`: right when both sides name one i.
            let tail = |s: &str| s.split_once('-').map(|(_, t)| t.to_string());
            (
                tail(&f[0]) == tail(&f[1]),
                f[2].parse().expect("similarity"),
            )
        })
        .collect();
    let total = langs.len() * PAIRS;
    let mut line = String::from("Tatoeba (first 100 pairs × 29 languages):");
    let mut precisions = Vec::new();
    for t in THRESHOLDS {
        let pred: Vec<&(bool, f32)> = found.iter().filter(|(_, s)| *s >= t).collect();
        let right = pred.iter().filter(|(ok, _)| *ok).count();
        let precision = right as f64 / pred.len().max(1) as f64;
        line.push_str(&format!(
            " P@{t} = {precision:.3} ({} pairs, recall {:.3});",
            pred.len(),
            right as f64 / total as f64
        ));
        precisions.push(precision);
    }
    eprintln!("{line}");
    assert!(precisions[2] >= 0.95, "{line}");
}
