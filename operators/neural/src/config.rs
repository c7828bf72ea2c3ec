//! The encoder's shape, read from a Hugging Face `config.json` (BERT,
//! RoBERTa, XLM-RoBERTa) or given by a weights file that carries it.

use serde::Deserialize;

use crate::error::NeuralError;

/// Which position scheme and head layout a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// BERT: positions from 0, pooler `pooler.dense`, classifier on the
    /// pooled output.
    Bert,
    /// RoBERTa / XLM-RoBERTa: positions start after the padding index,
    /// classifier `classifier.dense` + `classifier.out_proj` on `<s>`.
    Roberta,
}

/// What the encoder is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    /// Labels of a sequence-classification head (1 = a relevance score).
    pub num_labels: usize,
    /// The head's label names by output index (`id2label`; `LABEL_i` where
    /// the checkpoint names none).
    pub labels: Vec<String>,
    /// `problem_type: multi_label_classification`: each label is a yes/no
    /// of its own (sigmoid), not one of many (softmax).
    pub multi_label: bool,
    /// `hidden_dropout_prob` (training only).
    pub hidden_dropout: f32,
    /// `attention_probs_dropout_prob` (training only).
    pub attention_dropout: f32,
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    num_labels: Option<usize>,
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    problem_type: Option<String>,
    #[serde(default = "bert_dropout")]
    hidden_dropout_prob: f32,
    #[serde(default = "bert_dropout")]
    attention_probs_dropout_prob: f32,
}

/// transformers' default dropout rates for BERT and XLM-R.
fn bert_dropout() -> f32 {
    0.1
}

fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}

/// `id2label` as names by index: every index from 0 to `num_labels − 1`
/// once, or `LABEL_i` for a checkpoint that names none.
fn label_names(
    id2label: Option<&serde_json::Map<String, serde_json::Value>>,
    num_labels: usize,
) -> Result<Vec<String>, NeuralError> {
    let Some(map) = id2label else {
        return Ok((0..num_labels).map(|i| format!("LABEL_{i}")).collect());
    };
    if map.len() != num_labels {
        return Err(NeuralError::Format(format!(
            "config.json: id2label names {} labels but num_labels is {num_labels}; \
             make them agree with the classification head",
            map.len()
        )));
    }
    let mut names = vec![None; num_labels];
    for (k, v) in map {
        let i: usize = k.parse().ok().filter(|&i| i < num_labels).ok_or_else(|| {
            NeuralError::Format(format!(
                "config.json: id2label key `{k}` is not an index below {num_labels}"
            ))
        })?;
        names[i] = Some(match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.unwrap_or_else(|| format!("LABEL_{i}")))
        .collect())
}

impl EncoderConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self, NeuralError> {
        let c: HfConfig =
            serde_json::from_str(text).map_err(|e| NeuralError::json("config.json", e))?;
        let family = match c.model_type.as_deref() {
            Some("bert") | None => Family::Bert,
            Some("roberta" | "xlm-roberta" | "camembert") => Family::Roberta,
            Some(other) => {
                return Err(NeuralError::Format(format!(
                    "config.json: model_type `{other}` is not supported (bert, roberta, xlm-roberta)"
                )));
            }
        };
        if let Some(act) = &c.hidden_act
            && act != "gelu"
        {
            return Err(NeuralError::Format(format!(
                "config.json: hidden_act `{act}` is not supported (gelu)"
            )));
        }
        if let Some(p) = &c.position_embedding_type
            && p != "absolute"
        {
            return Err(NeuralError::Format(format!(
                "config.json: position_embedding_type `{p}` is not supported (absolute)"
            )));
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(NeuralError::Format(format!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            )));
        }
        let num_labels = c
            .num_labels
            .or_else(|| c.id2label.as_ref().map(|m| m.len()))
            .unwrap_or(1)
            .max(1);
        let labels = label_names(c.id2label.as_ref(), num_labels)?;
        Ok(Self {
            family,
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            type_vocab: c.type_vocab_size,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id: c.pad_token_id.unwrap_or(match family {
                Family::Bert => 0,
                Family::Roberta => 1,
            }),
            num_labels,
            labels,
            multi_label: c.problem_type.as_deref() == Some("multi_label_classification"),
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        })
    }

    /// The longest input the position table allows.
    pub fn max_tokens(&self) -> usize {
        match self.family {
            Family::Bert => self.max_positions,
            Family::Roberta => self.max_positions.saturating_sub(self.pad_token_id + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bert_and_xlmr_configs() {
        let bert = EncoderConfig::from_hf_json(
            r#"{"model_type":"bert","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
                "intermediate_size":64,"vocab_size":100,"max_position_embeddings":64}"#,
        )
        .expect("bert");
        assert_eq!(bert.family, Family::Bert);
        assert_eq!(bert.max_tokens(), 64);
        let xlmr = EncoderConfig::from_hf_json(
            r#"{"model_type":"xlm-roberta","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
                "intermediate_size":64,"vocab_size":100,"max_position_embeddings":66,"pad_token_id":1,
                "type_vocab_size":1,"layer_norm_eps":1e-5,"id2label":{"0":"LABEL_0"}}"#,
        )
        .expect("xlmr");
        assert_eq!(xlmr.family, Family::Roberta);
        assert_eq!(xlmr.max_tokens(), 64);
        assert_eq!(xlmr.num_labels, 1);
    }

    #[test]
    fn unsupported_configs_say_why() {
        let e = EncoderConfig::from_hf_json(
            r#"{"model_type":"gpt2","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
                "intermediate_size":64,"vocab_size":100,"max_position_embeddings":64}"#,
        )
        .expect_err("gpt2");
        assert!(e.to_string().contains("gpt2"), "{e}");
    }
}
