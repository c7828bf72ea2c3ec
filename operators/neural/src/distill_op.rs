//! `op: distill` — knowledge distillation as WebFAQ 2.0 trains its
//! retrievers: a student bi-encoder (the `model` input) learns a teacher's
//! margins with MarginMSE over every hard negative of a query, optionally
//! plus the in-batch MNRL (`mnrl_weight`). The teacher is whatever scored
//! the negatives: a cross-encoder or bi-encoder `score` node feeding
//! `op: negatives`, whose `grouped` output carries the `negatives`,
//! `scores` and `positive_score` columns this operator reads by default.
//!
//! It is `op: train` with `loss: margin_mse` — one implementation, the same
//! params (see [`TrainParams`]), the same outputs and cache behaviour.

use dflow_engine::Registry;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::train_op::{TrainParams, build};

/// Params of `op: distill`: those of `op: train`, with `loss` fixed to
/// `margin_mse` and `negatives`, `scores` and `positive_score` defaulting
/// to those column names.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct DistillParams(pub TrainParams);

/// Columns `op: negatives`' `grouped` output names the teacher's data.
const TEACHER_COLUMNS: [&str; 3] = ["negatives", "scores", "positive_score"];

impl<'de> Deserialize<'de> for DistillParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            v = serde_json::Value::Object(Default::default());
        }
        let map = v
            .as_object_mut()
            .ok_or_else(|| D::Error::custom("expected a mapping of params"))?;
        match map.get("loss").and_then(|l| l.as_str()) {
            None if !map.contains_key("loss") => {
                map.insert("loss".into(), "margin_mse".into());
            }
            Some("margin_mse") => {}
            _ => {
                return Err(D::Error::custom(
                    "distill trains with margin_mse; for another loss use op: train",
                ));
            }
        }
        for c in TEACHER_COLUMNS {
            map.entry(c).or_insert_with(|| c.into());
        }
        TrainParams::deserialize(v)
            .map(DistillParams)
            .map_err(D::Error::custom)
    }
}

impl JsonSchema for DistillParams {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DistillParams".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        TrainParams::json_schema(generator)
    }
}

pub fn register(registry: &mut Registry) {
    registry.register_with_selection(
        "distill",
        "knowledge distillation: a student bi-encoder trained with MarginMSE on a teacher's scores of every hard negative, plus optional in-batch MNRL",
        // How often to checkpoint does not change the model.
        &["checkpoint_every"],
        |p: DistillParams, _ctx| build(p.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distill_defaults_to_margin_mse_on_the_grouped_columns() {
        let p: DistillParams =
            serde_json::from_value(serde_json::json!({ "batch_size": 4 })).expect("params");
        assert_eq!(p.0.loss, crate::train_op::Loss::MarginMse);
        assert_eq!(p.0.negatives.as_deref(), Some("negatives"));
        assert_eq!(p.0.scores.as_deref(), Some("scores"));
        assert_eq!(p.0.positive_score.as_deref(), Some("positive_score"));
        assert_eq!(p.0.batch_size, 4);
        let e = serde_json::from_value::<DistillParams>(serde_json::json!({ "loss": "mnrl" }))
            .expect_err("mnrl is train's");
        assert!(e.to_string().contains("op: train"), "{e}");
        let e = serde_json::from_value::<DistillParams>(serde_json::json!({ "nope": 1 }))
            .expect_err("unknown field");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
