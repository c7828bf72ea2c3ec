//! `op: report` — puts the results of any number of `evaluate` nodes side
//! by side: one table (`out`), and in the directory `path` beside the
//! pipeline a Markdown report (one table per metric, languages by systems,
//! the best system of each row in bold) with an SVG bar chart per metric
//! (made with plotters: languages on the x axis, one bar per system).
//!
//! Inputs are named freely (`inputs: { bm25: eval_bm25, base: eval_e5 }`);
//! each must have `evaluate`'s columns.

use dflow_engine::ports::OUT;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{Array, ArrayRef, Float64Array, UInt64Array};
use dflow_engine::datafusion::arrow::record_batch::RecordBatch;
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use dflow_engine::{NodeOutput, PortData};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use dflow_engine::kit::columns::{doubles, string_array, strings};

/// The metrics of `evaluate`, in report order.
pub const METRICS: [&str; 5] = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"];

fn default_title() -> String {
    "Retrieval evaluation".into()
}

/// Params of `op: report`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Directory (relative to the pipeline file, or an object store folder
    /// such as `s3://bucket/report`) that receives `report.md` and the
    /// charts.
    pub path: String,
    #[serde(default = "default_title")]
    pub title: String,
    /// Metrics to report (default: all of `evaluate`'s).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
}

pub struct Report {
    params: ReportParams,
    metrics: Vec<String>,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "report",
        "side-by-side results of evaluate nodes: a table, report.md and an SVG chart per metric",
        |p: ReportParams, _ctx| {
            let metrics = p
                .metrics
                .clone()
                .unwrap_or_else(|| METRICS.iter().map(|m| m.to_string()).collect());
            if let Some(bad) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
                return Err(BuildError::invalid(
                    "/metrics",
                    format!("`{bad}` is not one of {}", METRICS.join(", ")),
                ));
            }
            if p.path.split('/').any(|s| s == "..") {
                return Err(BuildError::invalid("/path", "`..` is not allowed"));
            }
            Ok(Arc::new(Report { params: p, metrics }) as Arc<dyn Operator>)
        },
    );
}

/// (system, language) → metric → value, and query counts.
#[derive(Default)]
struct Results {
    systems: Vec<String>,
    languages: BTreeSet<String>,
    values: BTreeMap<(String, String), BTreeMap<String, f64>>,
    queries: BTreeMap<(String, String), u64>,
}

impl Results {
    /// Languages in report order: sorted, `macro` last.
    fn languages(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .languages
            .iter()
            .filter(|l| *l != "macro")
            .cloned()
            .collect();
        if self.languages.contains("macro") {
            l.push("macro".into());
        }
        l
    }

    fn value(&self, system: &str, lang: &str, metric: &str) -> Option<f64> {
        self.values
            .get(&(system.to_string(), lang.to_string()))
            .and_then(|m| m.get(metric))
            .copied()
    }
}

fn file_name(metric: &str) -> String {
    format!("{}.svg", metric.replace('@', "_at_"))
}

impl Report {
    fn markdown(&self, r: &Results) -> String {
        let mut md = format!("# {}\n\n", self.params.title);
        let _ = writeln!(
            md,
            "Systems: {}. Metrics as trec_eval computes them; `macro` is the mean over languages.\n",
            r.systems.join(", ")
        );
        for metric in &self.metrics {
            let _ = writeln!(md, "## {metric}\n");
            let _ = writeln!(md, "| language | queries | {} |", r.systems.join(" | "));
            let _ = writeln!(md, "|---|---|{}", "---|".repeat(r.systems.len()));
            for lang in r.languages() {
                let vals: Vec<Option<f64>> = r
                    .systems
                    .iter()
                    .map(|s| r.value(s, &lang, metric))
                    .collect();
                let best = vals
                    .iter()
                    .flatten()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                let queries = r
                    .systems
                    .iter()
                    .find_map(|s| r.queries.get(&(s.clone(), lang.clone())))
                    .copied()
                    .unwrap_or(0);
                let cells: Vec<String> = vals
                    .iter()
                    .map(|v| match v {
                        Some(v) if *v == best => format!("**{v:.3}**"),
                        Some(v) => format!("{v:.3}"),
                        None => "–".into(),
                    })
                    .collect();
                let _ = writeln!(md, "| {lang} | {queries} | {} |", cells.join(" | "));
            }
            let _ = writeln!(md, "\n![{metric}]({})\n", file_name(metric));
        }
        md
    }

    fn chart(&self, r: &Results, metric: &str, path: &Path) -> std::result::Result<(), String> {
        let langs = r.languages();
        let width =
            (160 + 70 * langs.len() as u32 * r.systems.len().max(1) as u32).clamp(480, 2400);
        let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
        let e = |e: &dyn std::fmt::Display| format!("drawing {metric}: {e}");
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{} — {metric}", self.params.title),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..langs.len().max(1) as f64, 0f64..1f64)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(metric)
            .draw()
            .map_err(|x| e(&x))?;
        let n = r.systems.len().max(1) as f64;
        let w = 0.8 / n;
        for (j, system) in r.systems.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let bars: Vec<Rectangle<(f64, f64)>> = langs
                .iter()
                .enumerate()
                .filter_map(|(i, lang)| {
                    let v = r.value(system, lang, metric)?;
                    let x0 = i as f64 + 0.1 + j as f64 * w;
                    Some(Rectangle::new([(x0, 0.0), (x0 + w, v)], color.filled()))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|x| e(&x))?
                .label(system.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
        let style = ("sans-serif", 13)
            .into_font()
            .into_text_style(&root)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, lang) in langs.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(lang.clone(), (px, py + 6), style.clone()))
                .map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
        Ok(())
    }
}

impl Operator for Report {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::AnyTables
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        for (name, ty) in inputs {
            let PortType::Table(s) = ty else {
                return Err(Error::config(format!(
                    "report: input `{name}` is not a table"
                )));
            };
            let needed = ["system", "language"]
                .into_iter()
                .chain(self.metrics.iter().map(String::as_str));
            for col in needed {
                if s.field_with_name(col).is_err() {
                    return Err(Error::config(format!(
                        "report: input `{name}` has no column `{col}`; report takes `evaluate` outputs"
                    )));
                }
            }
        }
        Ok(BTreeMap::from([
            (OUT.to_string(), PortType::Table(dflow_schemas::results())),
            ("files".to_string(), PortType::Artifact),
        ]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let mut r = Results::default();
        for name in task.inputs.keys().cloned().collect::<Vec<_>>() {
            for batch in task.table(&name)?.clone().batches(8192) {
                let batch = batch?;
                let (sys, lang) = (strings(&batch, "system")?, strings(&batch, "language")?);
                let queries = doubles(&batch, "queries").ok();
                let mut cols: Vec<(String, Float64Array)> = Vec::new();
                for m in METRICS {
                    cols.push((m.to_string(), doubles(&batch, m)?));
                }
                for i in 0..batch.num_rows() {
                    let key = (sys.value(i).to_string(), lang.value(i).to_string());
                    if !r.systems.contains(&key.0) {
                        r.systems.push(key.0.clone());
                    }
                    r.languages.insert(key.1.clone());
                    if let Some(q) = &queries {
                        r.queries.insert(key.clone(), q.value(i) as u64);
                    }
                    let entry = r.values.entry(key).or_default();
                    for (m, v) in &cols {
                        if v.is_valid(i) {
                            entry.insert(m.clone(), v.value(i));
                        }
                    }
                }
            }
        }
        // The stacked table, in report order.
        let mut keys: Vec<&(String, String)> = r.values.keys().collect();
        keys.sort_by_key(|(s, l)| {
            (
                l == "macro",
                l.clone(),
                r.systems.iter().position(|x| x == s),
            )
        });
        let metric_col = |m: &str| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                keys.iter()
                    .map(|k| r.values[*k].get(m).copied().unwrap_or(f64::NAN)),
            ))
        };
        let mut cols: Vec<ArrayRef> = vec![
            string_array(keys.iter().map(|k| k.0.as_str())),
            string_array(keys.iter().map(|k| k.1.as_str())),
            Arc::new(UInt64Array::from_iter_values(
                keys.iter().map(|k| r.queries.get(*k).copied().unwrap_or(0)),
            )),
        ];
        cols.extend(METRICS.iter().map(|m| metric_col(m)));
        let table = RecordBatch::try_new(dflow_schemas::results(), cols)?;
        if table.num_rows() > 0 {
            task.outputs.write(OUT, &table)?;
        }
        let dir = task.outputs.artifact_dir("files")?;
        std::fs::write(dir.join("report.md"), self.markdown(&r))?;
        for metric in &self.metrics {
            self.chart(&r, metric, &dir.join(file_name(metric)))
                .map_err(Error::internal)?;
        }
        Ok(())
    }

    fn publish(&self, ctx: &PlanContext, outputs: &NodeOutput) -> Result<()> {
        let Some(PortData::Artifact { dir, .. }) = outputs.ports.get("files") else {
            return Err(Error::internal("report has no files artifact"));
        };
        dflow_engine::ops::export::publish_to(dir, &self.params.path, ctx)
    }
}
