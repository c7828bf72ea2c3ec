//! A sentence-transformers model directory's module chain, as
//! `SentenceTransformer(path)` reads it: `modules.json` (Transformer, then
//! Pooling, any Dense, Normalize), `1_Pooling/config.json`'s pooling mode,
//! each Dense module's `config.json` and weights, and the prompts of
//! `config_sentence_transformers.json`. What dflow cannot run the same way
//! is an error naming the file, before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::encoder::{Activation, Pooling};
use crate::error::NeuralError;

/// One entry of `modules.json`.
#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `1_Pooling/config.json`: sentence-transformers 6 names the mode
/// (`pooling_mode: cls`, or a list of modes), earlier versions set one flag
/// per mode.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode: Option<serde_json::Value>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default = "yes")]
    include_prompt: bool,
}

fn yes() -> bool {
    true
}

/// A Dense module's `config.json`.
#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default = "tanh")]
    activation_function: String,
}

fn tanh() -> String {
    Activation::Tanh.torch_name().to_string()
}

/// `config_sentence_transformers.json`, the fields used.
#[derive(Deserialize, Default)]
struct StConfig {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    default_prompt_name: Option<String>,
}

/// A Dense module to load.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSpec {
    /// Its weights (`model.safetensors` in its folder).
    pub weights: PathBuf,
    pub input: usize,
    pub output: usize,
    pub bias: bool,
    pub activation: Activation,
}

/// What a sentence-transformers directory declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StLayout {
    pub pooling: Option<Pooling>,
    pub normalize: bool,
    pub dense: Vec<DenseSpec>,
    /// Prompts by name (`query` → `query: `).
    pub prompts: BTreeMap<String, String>,
    /// The prompt used when a node names none.
    pub default_prompt: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, NeuralError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| NeuralError::json(path.display(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NeuralError::io("cannot read", path, e)),
    }
}

fn format_error(path: &Path, msg: impl std::fmt::Display) -> NeuralError {
    NeuralError::Format(format!("{}: {msg}", path.display()))
}

/// The single pooling mode of a Pooling config.
fn pooling_mode(path: &Path, c: &PoolingConfig) -> Result<Option<Pooling>, NeuralError> {
    if !c.include_prompt {
        return Err(format_error(
            path,
            "`include_prompt: false` (pooling without the prompt's tokens) is not supported; \
             set it to true or embed with a model that pools over the whole input",
        ));
    }
    if let Some(named) = &c.pooling_mode {
        let names: Vec<&str> = match named {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let modes = names
            .iter()
            .map(|n| {
                Ok(match *n {
                    "cls" => Pooling::Cls,
                    "max" => Pooling::Max,
                    "mean" => Pooling::Mean,
                    "mean_sqrt_len_tokens" => Pooling::MeanSqrtLen,
                    "weightedmean" => Pooling::WeightedMean,
                    "lasttoken" => Pooling::LastToken,
                    other => {
                        return Err(format_error(
                            path,
                            format!("pooling mode `{other}` is not supported"),
                        ));
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return one_mode(path, modes);
    }
    let modes: Vec<Pooling> = [
        (c.pooling_mode_cls_token, Pooling::Cls),
        (c.pooling_mode_max_tokens, Pooling::Max),
        (c.pooling_mode_mean_tokens, Pooling::Mean),
        (c.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
        (c.pooling_mode_weightedmean_tokens, Pooling::WeightedMean),
        (c.pooling_mode_lasttoken, Pooling::LastToken),
    ]
    .into_iter()
    .filter_map(|(on, mode)| on.then_some(mode))
    .collect();
    one_mode(path, modes)
}

fn one_mode(path: &Path, modes: Vec<Pooling>) -> Result<Option<Pooling>, NeuralError> {
    match modes.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(format_error(
            path,
            format!(
                "several pooling modes at once ({modes:?}, concatenated by \
                 sentence-transformers) are not supported; keep one"
            ),
        )),
    }
}

fn dense_spec(dir: &Path, folder: &str) -> Result<DenseSpec, NeuralError> {
    let config_path = dir.join(folder).join("config.json");
    let config: DenseConfig = read_json(&config_path)?
        .ok_or_else(|| format_error(&config_path, "missing: a Dense module needs its config"))?;
    let activation = Activation::from_torch(&config.activation_function).ok_or_else(|| {
        format_error(
            &config_path,
            format!(
                "activation `{}` is not supported (Identity, Tanh, ReLU, GELU, Sigmoid are)",
                config.activation_function
            ),
        )
    })?;
    let weights = dir.join(folder).join("model.safetensors");
    if !weights.is_file() {
        return Err(format_error(
            &weights,
            "missing: dflow reads Dense weights from safetensors only; convert \
             `pytorch_model.bin` by loading and saving the model with a current \
             sentence-transformers",
        ));
    }
    Ok(DenseSpec {
        weights,
        input: config.in_features,
        output: config.out_features,
        bias: config.bias,
        activation,
    })
}

/// The layout of the model in `dir`. Without `modules.json`, a
/// `1_Pooling/config.json` alone still gives the pooling.
pub fn read(dir: &Path) -> Result<StLayout, NeuralError> {
    let mut layout = StLayout::default();
    let modules_path = dir.join("modules.json");
    match read_json::<Vec<ModuleEntry>>(&modules_path)? {
        Some(modules) => {
            for (i, m) in modules.iter().enumerate() {
                let kind = m.kind.rsplit('.').next().unwrap_or(&m.kind);
                match kind {
                    "Transformer" if i == 0 => {}
                    "Pooling" if i == 1 => {
                        let path = dir.join(&m.path).join("config.json");
                        if let Some(c) = read_json::<PoolingConfig>(&path)? {
                            layout.pooling = pooling_mode(&path, &c)?;
                        }
                    }
                    "Dense" if i >= 2 && !layout.normalize => {
                        layout.dense.push(dense_spec(dir, &m.path)?);
                    }
                    "Normalize" if i >= 1 && !layout.normalize => layout.normalize = true,
                    _ => {
                        return Err(format_error(
                            &modules_path,
                            format!(
                                "module {i} is `{}`; dflow runs Transformer, Pooling, Dense \
                                 and Normalize in that order",
                                m.kind
                            ),
                        ));
                    }
                }
            }
        }
        None => {
            let path = dir.join("1_Pooling/config.json");
            if let Some(c) = read_json::<PoolingConfig>(&path)? {
                layout.pooling = pooling_mode(&path, &c)?;
            }
        }
    }
    let config_path = dir.join("config_sentence_transformers.json");
    let config: StConfig = read_json(&config_path)?.unwrap_or_default();
    if let Some(name) = &config.default_prompt_name
        && !config.prompts.contains_key(name)
    {
        return Err(format_error(
            &config_path,
            format!("`default_prompt_name` is `{name}`, which is not one of `prompts`"),
        ));
    }
    layout.prompts = config.prompts;
    layout.default_prompt = config.default_prompt_name;
    Ok(layout)
}
