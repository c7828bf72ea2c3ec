//! Writes a model back in the Hugging Face / sentence-transformers layout:
//! `config.json`, `model.safetensors` (the names [`Encoder::load`] reads,
//! `Linear` weights back to `[out, in]`), `tokenizer.json`, `modules.json`,
//! `sentence_bert_config.json`, `1_Pooling/config.json`, each `Dense`
//! module (`2_Dense/`, …), `Normalize` when the vectors are normalised, and
//! the prompts in `config_sentence_transformers.json`. So a model dflow trains loads in
//! Python `sentence-transformers` (and in dflow) as any other checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Param;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;

use crate::config::Family;
use crate::encoder::{Dense, Encoder, LayerNorm, Pooling};
use crate::error::NeuralError;
use crate::model::{CARD_FILE, Model, ModelCard};
use crate::weights::transpose;

/// A tensor to write: its Hugging Face name, shape and values.
pub struct Named {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

fn values<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Result<Vec<f32>, NeuralError> {
    p.val()
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| NeuralError::Backend(format!("reading a weight: {e:?}")))
}

fn dense<B: Backend>(out: &mut Vec<Named>, name: &str, d: &Dense<B>) -> Result<(), NeuralError> {
    let [input, output] = d.weight.val().dims();
    out.push(Named {
        name: format!("{name}.weight"),
        shape: vec![output, input],
        values: transpose(&values(&d.weight)?, input, output),
    });
    out.push(Named {
        name: format!("{name}.bias"),
        shape: vec![output],
        values: values(&d.bias)?,
    });
    Ok(())
}

fn norm<B: Backend>(out: &mut Vec<Named>, name: &str, n: &LayerNorm<B>) -> Result<(), NeuralError> {
    for (suffix, p) in [("weight", &n.gamma), ("bias", &n.beta)] {
        let v = values(p)?;
        out.push(Named {
            name: format!("{name}.{suffix}"),
            shape: vec![v.len()],
            values: v,
        });
    }
    Ok(())
}

fn table<B: Backend>(
    out: &mut Vec<Named>,
    name: &str,
    p: &Param<Tensor<B, 2>>,
) -> Result<(), NeuralError> {
    out.push(Named {
        name: name.to_string(),
        shape: p.val().dims().to_vec(),
        values: values(p)?,
    });
    Ok(())
}

/// Every tensor of the encoder under its Hugging Face name. An encoder with
/// a classification head gets the `bert.`/`roberta.` prefix its
/// `…ForSequenceClassification` class expects; a bare encoder has none (as
/// sentence-transformers saves it).
pub fn named_tensors<B: Backend>(enc: &Encoder<B>) -> Result<Vec<Named>, NeuralError> {
    let mut out = Vec::new();
    let classifier = enc.heads.classifier.is_some();
    let base = match (classifier, enc.config.family) {
        (false, _) => String::new(),
        (true, Family::Bert) => "bert.".into(),
        (true, Family::Roberta) => "roberta.".into(),
    };
    table(
        &mut out,
        &format!("{base}embeddings.word_embeddings.weight"),
        &enc.word,
    )?;
    table(
        &mut out,
        &format!("{base}embeddings.position_embeddings.weight"),
        &enc.position,
    )?;
    table(
        &mut out,
        &format!("{base}embeddings.token_type_embeddings.weight"),
        &enc.token_type,
    )?;
    norm(
        &mut out,
        &format!("{base}embeddings.LayerNorm"),
        &enc.embedding_norm,
    )?;
    for (i, l) in enc.layers.iter().enumerate() {
        let p = format!("{base}encoder.layer.{i}");
        dense(&mut out, &format!("{p}.attention.self.query"), &l.query)?;
        dense(&mut out, &format!("{p}.attention.self.key"), &l.key)?;
        dense(&mut out, &format!("{p}.attention.self.value"), &l.value)?;
        dense(
            &mut out,
            &format!("{p}.attention.output.dense"),
            &l.attention_out,
        )?;
        norm(
            &mut out,
            &format!("{p}.attention.output.LayerNorm"),
            &l.attention_norm,
        )?;
        dense(
            &mut out,
            &format!("{p}.intermediate.dense"),
            &l.intermediate,
        )?;
        dense(&mut out, &format!("{p}.output.dense"), &l.output)?;
        norm(&mut out, &format!("{p}.output.LayerNorm"), &l.output_norm)?;
    }
    if let Some(pooler) = &enc.heads.pooler {
        dense(&mut out, &format!("{base}pooler.dense"), pooler)?;
    }
    match (&enc.heads.classifier, &enc.heads.classifier_dense) {
        (Some(c), None) => dense(&mut out, "classifier", c)?,
        (Some(c), Some(d)) => {
            dense(&mut out, "classifier.dense", d)?;
            dense(&mut out, "classifier.out_proj", c)?;
        }
        _ => {}
    }
    Ok(out)
}

/// The Hugging Face `config.json` of an encoder.
fn hf_config<B: Backend>(enc: &Encoder<B>) -> serde_json::Value {
    let c = &enc.config;
    let (model_type, arch) = match (c.family, enc.heads.classifier.is_some()) {
        (Family::Bert, false) => ("bert", "BertModel"),
        (Family::Bert, true) => ("bert", "BertForSequenceClassification"),
        (Family::Roberta, false) => ("xlm-roberta", "XLMRobertaModel"),
        (Family::Roberta, true) => ("xlm-roberta", "XLMRobertaForSequenceClassification"),
    };
    json!({
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": c.intermediate,
        "vocab_size": c.vocab,
        "max_position_embeddings": c.max_positions,
        "type_vocab_size": c.type_vocab,
        "layer_norm_eps": c.layer_norm_eps,
        "pad_token_id": c.pad_token_id,
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": c.hidden_dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "initializer_range": 0.02,
        "num_labels": c.num_labels,
    })
}

/// A `tokenizer_config.json` that makes transformers use `tokenizer.json`
/// exactly as it is (`PreTrainedTokenizerFast`), not a model family's
/// tokenizer class rebuilt around it (which may swap its normaliser), with
/// the special tokens the file defines.
fn tokenizer_config(
    tokenizer_json: &Path,
    max_length: usize,
) -> Result<serde_json::Value, NeuralError> {
    let text = std::fs::read_to_string(tokenizer_json)
        .map_err(|e| NeuralError::io("reading", tokenizer_json, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| NeuralError::json(tokenizer_json.display(), e))?;
    let added: Vec<&str> = v["added_tokens"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["content"].as_str()).collect())
        .unwrap_or_default();
    let mut config = serde_json::Map::new();
    config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    config.insert("model_max_length".into(), json!(max_length));
    for (key, names) in [
        ("pad_token", ["[PAD]", "<pad>"]),
        ("unk_token", ["[UNK]", "<unk>"]),
        ("cls_token", ["[CLS]", "<s>"]),
        ("sep_token", ["[SEP]", "</s>"]),
        ("mask_token", ["[MASK]", "<mask>"]),
        ("bos_token", ["<s>", "<s>"]),
        ("eos_token", ["</s>", "</s>"]),
    ] {
        if let Some(t) = names.iter().find(|n| added.contains(n)) {
            config.insert(key.into(), json!(t));
        }
    }
    Ok(serde_json::Value::Object(config))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), NeuralError> {
    let text = serde_json::to_string_pretty(v).map_err(NeuralError::Serialize)?;
    std::fs::write(path, text).map_err(|e| NeuralError::io("writing", path, e))
}

/// `tensors` as a safetensors file at `path`, with PyTorch's metadata.
fn write_safetensors(tensors: Vec<Named>, path: &Path) -> Result<(), NeuralError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|t| {
            let b: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name, t.shape, b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| NeuralError::safetensors(format!("tensor {name}"), e))
        })
        .collect::<Result<_, _>>()?;
    let meta: Option<std::collections::HashMap<String, String>> =
        Some([("format".to_string(), "pt".to_string())].into());
    safetensors::serialize_to_file(views, meta, path)
        .map_err(|e| NeuralError::safetensors(format!("writing {}", path.display()), e))
}

/// Writes `model` into `out` in the sentence-transformers layout, with the
/// `tokenizer.json` it was loaded with and `readme` as `README.md`.
pub fn save_sentence_transformers<B: Backend>(
    model: &Model<B>,
    tokenizer_json: &Path,
    out: &Path,
    readme: &str,
) -> Result<(), NeuralError> {
    std::fs::create_dir_all(out.join("1_Pooling"))
        .map_err(|e| NeuralError::io("creating", out, e))?;
    write_safetensors(
        named_tensors(&model.encoder)?,
        &out.join("model.safetensors"),
    )?;
    write_json(&out.join("config.json"), &hf_config(&model.encoder))?;
    std::fs::copy(tokenizer_json, out.join("tokenizer.json"))
        .map_err(|e| NeuralError::io("copying", tokenizer_json, e))?;
    write_json(
        &out.join("tokenizer_config.json"),
        &tokenizer_config(tokenizer_json, model.tokenizer.max_length())?,
    )?;
    let p = &model.profile;
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    for d in &model.encoder.heads.st_dense {
        let idx = modules.len();
        let folder = format!("{idx}_Dense");
        let dir = out.join(&folder);
        std::fs::create_dir_all(&dir).map_err(|e| NeuralError::io("creating", &dir, e))?;
        let mut tensors = Vec::new();
        dense(&mut tensors, "linear", &d.linear)?;
        write_safetensors(tensors, &dir.join("model.safetensors"))?;
        let [input, output] = d.linear.weight.val().dims();
        write_json(
            &dir.join("config.json"),
            &json!({
                "in_features": input,
                "out_features": output,
                "bias": true,
                "activation_function": d.activation.torch_name(),
            }),
        )?;
        modules.push(json!({"idx": idx, "name": idx.to_string(), "path": folder, "type": "sentence_transformers.models.Dense"}));
    }
    if p.normalize {
        let idx = modules.len();
        let folder = format!("{idx}_Normalize");
        modules.push(json!({"idx": idx, "name": idx.to_string(), "path": folder, "type": "sentence_transformers.models.Normalize"}));
        std::fs::create_dir_all(out.join(&folder))
            .map_err(|e| NeuralError::io("creating", &folder, e))?;
    }
    if !p.prompts.is_empty() {
        write_json(
            &out.join("config_sentence_transformers.json"),
            &json!({
                "prompts": p.prompts,
                "default_prompt_name": p.default_prompt,
            }),
        )?;
    }
    write_json(
        &out.join("modules.json"),
        &serde_json::Value::Array(modules),
    )?;
    write_json(
        &out.join("sentence_bert_config.json"),
        &json!({"max_seq_length": model.tokenizer.max_length(), "do_lower_case": false}),
    )?;
    let mut pooling = BTreeMap::from([
        (
            "word_embedding_dimension",
            json!(model.encoder.config.hidden),
        ),
        // Pooler pooling is CLS to sentence-transformers (the card
        // keeps the difference).
        (
            "pooling_mode_cls_token",
            json!(matches!(p.pooling, Pooling::Cls | Pooling::Pooler)),
        ),
        (
            "pooling_mode_mean_tokens",
            json!(p.pooling == Pooling::Mean),
        ),
        ("pooling_mode_max_tokens", json!(p.pooling == Pooling::Max)),
        (
            "pooling_mode_mean_sqrt_len_tokens",
            json!(p.pooling == Pooling::MeanSqrtLen),
        ),
        (
            "pooling_mode_weightedmean_tokens",
            json!(p.pooling == Pooling::WeightedMean),
        ),
        (
            "pooling_mode_lasttoken",
            json!(p.pooling == Pooling::LastToken),
        ),
    ]);
    pooling.insert("include_prompt", json!(true));
    write_json(&out.join("1_Pooling/config.json"), &json!(pooling))?;
    std::fs::write(out.join("README.md"), readme)
        .map_err(|e| NeuralError::io("writing", "README.md", e))?;
    // dflow's own card keeps what the layout cannot say (pooler pooling).
    let card = ModelCard {
        name: Some(p.name.clone()),
        pooling: Some(p.pooling),
        normalize: Some(p.normalize),
        weights: None,
    };
    let card = serde_json::to_value(&card).map_err(NeuralError::Serialize)?;
    write_json(&out.join(CARD_FILE), &card)?;
    Ok(())
}
