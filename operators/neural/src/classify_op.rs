//! `op: classify` — a label per row from a sequence-classification
//! checkpoint (`BertForSequenceClassification`,
//! `XLMRobertaForSequenceClassification`), one output partition per input
//! partition: the text of a column or a template (WebFAQ 2.0's topic
//! classifier reads `{question} ### {answer} ### Title: {title} ###
//! Description: {description}`), the label with the highest probability,
//! that probability, and the whole distribution (softmax; sigmoid per label
//! for a `multi_label_classification` checkpoint). The label names are the
//! checkpoint's `id2label`, or `labels` given here for any label map.

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::sync::Arc;

use dflow_engine::datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, StringArray,
};
use dflow_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, Task,
};
use serde::{Deserialize, Serialize};

use crate::embed_op::CHUNK_ROWS;
use crate::text::{Template, texts_of};
use dflow_schemas::{batch_with, schema_with};

fn default_output() -> String {
    "label".into()
}
fn default_max_length() -> usize {
    512
}

/// Params of `op: classify`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyParams {
    /// The text column to classify (or use `template`).
    #[serde(default)]
    pub column: Option<String>,
    /// Text built from columns, e.g. `{question} ### {answer}`.
    #[serde(default)]
    pub template: Option<String>,
    /// The label column's name; `<output>_score` holds the label's
    /// probability and `<output>_probs` every label's, in the head's order.
    #[serde(default = "default_output")]
    pub output: String,
    /// The label names in the head's output order, when the checkpoint's
    /// `id2label` does not name them (or names them otherwise). Their
    /// number must equal the head's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Number of labels the head has: the `<output>_probs` column's size,
    /// checked against the model at run time.
    pub num_labels: usize,
    /// Inputs are truncated to this many tokens (capped by the model).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// `bf16`: the dense layers' products in bfloat16 (mixed precision,
    /// for a GPU); on the CPU it runs slower than `f32`.
    #[serde(default, skip_serializing_if = "crate::encoder::Precision::is_f32")]
    pub precision: crate::encoder::Precision,
}

pub struct Classify {
    params: ClassifyParams,
    template: Template,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "classify",
        "a label, its probability and the distribution per row from a sequence-classification model (per partition)",
        |p: ClassifyParams, _ctx| {
            let template = Template::from_params(p.column.as_deref(), p.template.as_deref())?;
            if p.num_labels < 2 {
                return Err(BuildError::invalid(
                    "/num_labels",
                    "a classifier has at least 2 labels (a one-output head is a score: use op: score)",
                ));
            }
            if let Some(l) = &p.labels
                && l.len() != p.num_labels
            {
                return Err(BuildError::invalid(
                    "/labels",
                    format!("{} names for {} labels", l.len(), p.num_labels),
                ));
            }
            Ok(Arc::new(Classify {
                params: p,
                template,
            }) as Arc<dyn Operator>)
        },
    );
}

/// Probabilities of one row's logits: softmax, or a sigmoid per label.
pub fn probabilities(logits: &[f32], multi_label: bool) -> Vec<f32> {
    if multi_label {
        return logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// The index of the highest probability (the first of ties).
fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

impl Classify {
    fn fields(&self) -> Vec<Field> {
        let o = &self.params.output;
        vec![
            Field::new(o, DataType::Utf8, false),
            Field::new(format!("{o}_score"), DataType::Float32, false),
            Field::new(
                format!("{o}_probs"),
                DataType::FixedSizeList(
                    Arc::new(Field::new("item", DataType::Float32, false)),
                    i32::try_from(self.params.num_labels).unwrap_or(i32::MAX),
                ),
                false,
            ),
        ]
    }

    fn output_schema(&self, input: &Schema) -> SchemaRef {
        schema_with(input, &self.fields())
    }

    /// The label names: the params', else the checkpoint's, checked
    /// against the head.
    fn label_names(&self, config: &crate::config::EncoderConfig) -> Result<Vec<String>> {
        let n = self.params.num_labels;
        if config.num_labels != n {
            return Err(Error::data(format!(
                "the model's classification head has {} outputs; `num_labels` says {n}",
                config.num_labels
            )));
        }
        Ok(self
            .params
            .labels
            .clone()
            .unwrap_or_else(|| config.labels.clone()))
    }
}

impl Operator for Classify {
    /// Encoder work: on a cluster, GPU executors first.
    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::PerPartition {
            port: "rows".into(),
        }
    }

    fn input_ports(&self) -> InputPorts {
        crate::ports::table_and_model("rows")
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        crate::ports::rows_out(inputs, "classify", &self.template, |s| {
            self.output_schema(s)
        })
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let p = &self.params;
        let (model, batch_size) = crate::runtime::for_task(task, p.max_length, p.precision)?;
        let names = self.label_names(model.config())?;
        let multi = model.config().multi_label;
        let input = task.table("rows")?.clone();
        let schema = self.output_schema(&input.schema);
        let n = p.num_labels;
        for batch in input.batches(CHUNK_ROWS) {
            let batch = batch?;
            let texts = texts_of(&batch, &self.template, "")?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let logits = model.classify(&refs, batch_size)?;
            let mut labels = Vec::with_capacity(logits.len());
            let mut scores = Vec::with_capacity(logits.len());
            let mut all = Vec::with_capacity(logits.len() * n);
            for row in &logits {
                if row.len() != n {
                    return Err(Error::internal(format!(
                        "a row of {} logits from a head of {n}",
                        row.len()
                    )));
                }
                let probs = probabilities(row, multi);
                let best = argmax(&probs);
                labels.push(names[best].clone());
                scores.push(probs[best]);
                all.extend(probs);
            }
            let item = Arc::new(Field::new("item", DataType::Float32, false));
            let probs = FixedSizeListArray::try_new(
                item,
                i32::try_from(n).unwrap_or(i32::MAX),
                Arc::new(Float32Array::from(all)),
                None,
            )?;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(labels)),
                Arc::new(Float32Array::from(scores)),
                Arc::new(probs),
            ];
            let out = batch_with(&batch, &schema, columns)?;
            if out.num_rows() > 0 {
                task.outputs.write(OUT, &out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_softmax_or_sigmoid() {
        let p = probabilities(&[1.0, 2.0, 3.0], false);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 2);
        let s = probabilities(&[0.0, 100.0], true);
        assert!((s[0] - 0.5).abs() < 1e-6 && (s[1] - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&[0.2, 0.2]), 0);
    }
}
