//! BERT and XLM-RoBERTa encoders in Burn, generic over the backend, with
//! the pooling and classification heads sentence-transformers and
//! cross-encoders use. Weights come from [`Weights`] by their Hugging Face
//! names; `Linear` weights are transposed to `[in, out]` on load.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

use crate::config::{EncoderConfig, Family};
use crate::error::NeuralError;
use crate::kernels;
use crate::weights::{Weights, transpose};

/// A dense layer, weight `[in, out]`.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Dense<B> {
    fn load(
        w: &mut Weights,
        name: &str,
        input: usize,
        output: usize,
        dev: &B::Device,
    ) -> Result<Self, NeuralError> {
        let weight = w.take(&format!("{name}.weight"), &[output, input])?;
        let bias = w.take(&format!("{name}.bias"), &[output])?;
        Ok(Self {
            weight: param2(transpose(&weight, output, input), [input, output], dev),
            bias: param1(bias, dev),
        })
    }

    /// `x [n, in] → [n, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.apply(x, Precision::F32)
    }

    /// [`Dense::forward`] with its product in `precision`.
    pub fn apply(&self, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        affine(x, self.weight.val(), self.bias.val(), precision)
    }

    /// GELU (erf) of [`Dense::apply`].
    pub fn apply_gelu(&self, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        let bias = self.bias.val();
        kernels::try_add_bias(product(x, self.weight.val(), precision), &bias, true)
            .unwrap_or_else(|y| gelu(y + bias.unsqueeze_dim(0)))
    }
}

/// Where the dense layers' matrix products run; everything else (layer
/// norms, softmax, the residual stream, the weights themselves and their
/// gradients) stays in f32.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    /// Mixed precision: each product's inputs cast to bfloat16 and its
    /// output back to f32, as PyTorch's autocast does (the casts' backward
    /// casts the gradients, so the weights' gradients arrive in f32).
    /// For GPUs; on the CPU it runs, through f32, slower.
    Bf16,
}

impl Precision {
    /// The default, left out of a node's params (and so of its cache key):
    /// nodes written before `precision` existed keep their cached results.
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }
}

/// `x · weight` in `precision`.
fn product<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    precision: Precision,
) -> Tensor<B, 2> {
    match precision {
        Precision::F32 => x.matmul(weight),
        Precision::Bf16 => x
            .cast(FloatDType::BF16)
            .matmul(weight.cast(FloatDType::BF16))
            .cast(FloatDType::F32),
    }
}

/// `x · weight + bias`.
fn affine<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    precision: Precision,
) -> Tensor<B, 2> {
    kernels::try_add_bias(product(x, weight, precision), &bias, false)
        .unwrap_or_else(|y| y + bias.unsqueeze_dim(0))
}

#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    #[module(skip)]
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    fn load(
        w: &mut Weights,
        name: &str,
        size: usize,
        eps: f64,
        dev: &B::Device,
    ) -> Result<Self, NeuralError> {
        Ok(Self {
            gamma: param1(w.take(&format!("{name}.weight"), &[size])?, dev),
            beta: param1(w.take(&format!("{name}.bias"), &[size])?, dev),
            eps,
        })
    }

    /// Normalises the last dimension of `x [n, d]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let (var, mean) = x.clone().var_mean_bias(1);
        let x = (x - mean) / (var + self.eps).sqrt();
        x * self.gamma.val().unsqueeze_dim(0) + self.beta.val().unsqueeze_dim(0)
    }

    /// Normalises `x + residual` (a post-norm layer's residual connection).
    pub fn forward_residual(&self, x: Tensor<B, 2>, residual: Tensor<B, 2>) -> Tensor<B, 2> {
        kernels::try_add_layer_norm(x, residual, &self.gamma.val(), &self.beta.val(), self.eps)
            .unwrap_or_else(|(x, residual)| self.forward(x + residual))
    }
}

#[derive(Module, Debug)]
pub struct Layer<B: Backend> {
    pub query: Dense<B>,
    pub key: Dense<B>,
    pub value: Dense<B>,
    pub attention_out: Dense<B>,
    pub attention_norm: LayerNorm<B>,
    pub intermediate: Dense<B>,
    pub output: Dense<B>,
    pub output_norm: LayerNorm<B>,
}

impl<B: Backend> Layer<B> {
    /// The three attention projections as one product, `[n, 3 · hidden]`
    /// with `q`, `k`, `v` side by side (one larger matrix product instead
    /// of three, and one gradient for `x` instead of three to add).
    fn project_qkv(&self, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        let dense = [&self.query, &self.key, &self.value];
        let weight = Tensor::cat(dense.map(|d| d.weight.val()).to_vec(), 1);
        let bias = Tensor::cat(dense.map(|d| d.bias.val()).to_vec(), 0);
        affine(x, weight, bias, precision)
    }
}

/// The heads on top of the encoder.
#[derive(Module, Debug)]
pub struct Heads<B: Backend> {
    /// BERT's pooler (`pooler.dense`, tanh), when the checkpoint has one.
    pub pooler: Option<Dense<B>>,
    /// BERT: `classifier` on the pooled output. RoBERTa:
    /// `classifier.dense` (tanh) then `classifier.out_proj` on `<s>`.
    pub classifier: Option<Dense<B>>,
    pub classifier_dense: Option<Dense<B>>,
    /// sentence-transformers' `Dense` modules after pooling, in order.
    pub st_dense: Vec<StDense<B>>,
}

/// Dropout as BERT trains with it: on the embeddings, on the attention
/// probabilities, and on each sub-layer's output before its residual, each
/// kept value scaled by `1 / (1 − p)`. The masks are drawn from a key the
/// trainer sets per batch (from its seed and the batch's place), one draw
/// after another in the order the forward passes run, so a seed repeats
/// exactly and a resumed training draws what an uninterrupted one would.
#[derive(Clone, Debug)]
pub struct Dropout {
    /// `hidden_dropout_prob`.
    pub hidden: f32,
    /// `attention_probs_dropout_prob`.
    pub attention: f32,
    key: u64,
    drawn: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Dropout {
    pub fn new(hidden: f32, attention: f32, key: u64) -> Self {
        Dropout {
            hidden,
            attention,
            key,
            drawn: Default::default(),
        }
    }

    /// The next mask of `n` values: 0 with probability `p`, else
    /// `1 / (1 − p)`.
    pub fn mask(&self, p: f32, n: usize) -> Vec<f32> {
        use rayon::prelude::*;
        let draw = self
            .drawn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base =
            dflow_engine::kit::rng::splitmix(self.key ^ dflow_engine::kit::rng::splitmix(draw));
        let keep = 1.0 / (1.0 - p);
        // A value is dropped when its 24-bit uniform falls below p.
        let threshold = (f64::from(p) * f64::from(1u32 << 24)) as u64;
        let mut out = vec![0.0f32; n];
        out.par_chunks_mut(1 << 16)
            .enumerate()
            .for_each(|(c, chunk)| {
                let start = (c << 16) as u64;
                for (i, v) in chunk.iter_mut().enumerate() {
                    let z = dflow_engine::kit::rng::splitmix(base.wrapping_add(start + i as u64));
                    *v = if z >> 40 < threshold { 0.0 } else { keep };
                }
            });
        out
    }

    /// `x` with a fresh mask of rate `p` applied (`x` itself when `p` is 0).
    pub fn apply<B: Backend, const D: usize>(&self, x: Tensor<B, D>, p: f32) -> Tensor<B, D> {
        if p <= 0.0 {
            return x;
        }
        let shape = x.dims();
        let n = shape.iter().product();
        let mask = Tensor::<B, D>::from_data(TensorData::new(self.mask(p, n), shape), &x.device());
        x * mask
    }
}

/// The activation of a sentence-transformers `Dense` module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
    Relu,
    Gelu,
    Sigmoid,
}

impl Activation {
    /// From the `activation_function` a `Dense` config names
    /// (`torch.nn.modules.activation.Tanh`).
    pub fn from_torch(name: &str) -> Option<Self> {
        Some(match name.rsplit('.').next()? {
            "Identity" => Activation::Identity,
            "Tanh" => Activation::Tanh,
            "ReLU" => Activation::Relu,
            "GELU" => Activation::Gelu,
            "Sigmoid" => Activation::Sigmoid,
            _ => return None,
        })
    }

    /// The name sentence-transformers writes back.
    pub fn torch_name(self) -> &'static str {
        match self {
            Activation::Identity => "torch.nn.modules.linear.Identity",
            Activation::Tanh => "torch.nn.modules.activation.Tanh",
            Activation::Relu => "torch.nn.modules.activation.ReLU",
            Activation::Gelu => "torch.nn.modules.activation.GELU",
            Activation::Sigmoid => "torch.nn.modules.activation.Sigmoid",
        }
    }
}

/// A sentence-transformers `Dense` module (`2_Dense/`): a linear layer on
/// the pooled vector, then its activation.
#[derive(Module, Debug)]
pub struct StDense<B: Backend> {
    pub linear: Dense<B>,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> StDense<B> {
    /// `linear.weight` `[out, in]` and `linear.bias` (zeros when the module
    /// has none) from the module's weights.
    pub fn load(
        w: &mut Weights,
        input: usize,
        output: usize,
        bias: bool,
        activation: Activation,
        dev: &B::Device,
    ) -> Result<Self, NeuralError> {
        let linear = if bias {
            Dense::load(w, "linear", input, output, dev)?
        } else {
            let weight = w.take("linear.weight", &[output, input])?;
            Dense {
                weight: param2(transpose(&weight, output, input), [input, output], dev),
                bias: param1(vec![0.0; output], dev),
            }
        };
        Ok(StDense { linear, activation })
    }

    pub fn forward(&self, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        let y = self.linear.apply(x, precision);
        match self.activation {
            Activation::Identity => y,
            Activation::Tanh => y.tanh(),
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::Gelu => gelu(y),
            Activation::Sigmoid => burn::tensor::activation::sigmoid(y),
        }
    }
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub word: Param<Tensor<B, 2>>,
    pub position: Param<Tensor<B, 2>>,
    pub token_type: Param<Tensor<B, 2>>,
    pub embedding_norm: LayerNorm<B>,
    pub layers: Vec<Layer<B>>,
    pub heads: Heads<B>,
    #[module(skip)]
    pub config: EncoderConfig,
    /// Where the layers' dense products run (f32 as loaded; the `train`,
    /// `embed` and `score` nodes set it from their `precision`).
    #[module(skip)]
    pub precision: Precision,
    /// Dropout while training (`None`: inference and evaluation).
    #[module(skip)]
    pub dropout: Option<Dropout>,
}

/// A padded batch of token ids.
#[derive(Clone, Debug)]
pub struct TokenBatch {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

/// How token states become one vector.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over real tokens (sentence-transformers' default, e5).
    Mean,
    /// The first token's state.
    Cls,
    /// The first token through BERT's pooler (dense + tanh), as LaBSE.
    Pooler,
    /// The largest value of each dimension over real tokens.
    Max,
    /// The sum over real tokens divided by the square root of their count.
    MeanSqrtLen,
    /// Mean over real tokens weighted by position (1, 2, 3, …), as
    /// SGPT.
    WeightedMean,
    /// The last real token's state (decoder embedders).
    LastToken,
}

fn param1<B: Backend>(v: Vec<f32>, dev: &B::Device) -> Param<Tensor<B, 1>> {
    let n = v.len();
    Param::from_tensor(Tensor::from_data(TensorData::new(v, [n]), dev))
}

fn param2<B: Backend>(v: Vec<f32>, shape: [usize; 2], dev: &B::Device) -> Param<Tensor<B, 2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), dev))
}

fn table<B: Backend>(
    w: &mut Weights,
    name: &str,
    rows: usize,
    cols: usize,
    dev: &B::Device,
) -> Result<Param<Tensor<B, 2>>, NeuralError> {
    Ok(param2(w.take(name, &[rows, cols])?, [rows, cols], dev))
}

impl<B: Backend> Encoder<B> {
    /// Builds the encoder from its config and weights; heads are loaded
    /// when the checkpoint has them.
    pub fn load(
        config: EncoderConfig,
        mut w: Weights,
        dev: &B::Device,
    ) -> Result<Self, NeuralError> {
        let c = &config;
        let (h, eps) = (c.hidden, c.layer_norm_eps);
        let word = table(&mut w, "embeddings.word_embeddings.weight", c.vocab, h, dev)?;
        let position = table(
            &mut w,
            "embeddings.position_embeddings.weight",
            c.max_positions,
            h,
            dev,
        )?;
        let token_type = table(
            &mut w,
            "embeddings.token_type_embeddings.weight",
            c.type_vocab,
            h,
            dev,
        )?;
        let embedding_norm = LayerNorm::load(&mut w, "embeddings.LayerNorm", h, eps, dev)?;
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: Dense::load(&mut w, &format!("{p}.attention.self.query"), h, h, dev)?,
                key: Dense::load(&mut w, &format!("{p}.attention.self.key"), h, h, dev)?,
                value: Dense::load(&mut w, &format!("{p}.attention.self.value"), h, h, dev)?,
                attention_out: Dense::load(
                    &mut w,
                    &format!("{p}.attention.output.dense"),
                    h,
                    h,
                    dev,
                )?,
                attention_norm: LayerNorm::load(
                    &mut w,
                    &format!("{p}.attention.output.LayerNorm"),
                    h,
                    eps,
                    dev,
                )?,
                intermediate: Dense::load(
                    &mut w,
                    &format!("{p}.intermediate.dense"),
                    h,
                    c.intermediate,
                    dev,
                )?,
                output: Dense::load(&mut w, &format!("{p}.output.dense"), c.intermediate, h, dev)?,
                output_norm: LayerNorm::load(
                    &mut w,
                    &format!("{p}.output.LayerNorm"),
                    h,
                    eps,
                    dev,
                )?,
            });
        }
        let pooler = if w.has("pooler.dense.weight") {
            Some(Dense::load(&mut w, "pooler.dense", h, h, dev)?)
        } else {
            None
        };
        let (classifier, classifier_dense) = match c.family {
            Family::Bert if w.has("classifier.weight") => (
                Some(Dense::load(&mut w, "classifier", h, c.num_labels, dev)?),
                None,
            ),
            Family::Roberta if w.has("classifier.out_proj.weight") => (
                Some(Dense::load(
                    &mut w,
                    "classifier.out_proj",
                    h,
                    c.num_labels,
                    dev,
                )?),
                Some(Dense::load(&mut w, "classifier.dense", h, h, dev)?),
            ),
            _ => (None, None),
        };
        Ok(Self {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            heads: Heads {
                pooler,
                classifier,
                classifier_dense,
                st_dense: Vec::new(),
            },
            config,
            precision: Precision::F32,
            dropout: None,
        })
    }

    fn ints(&self, v: Vec<i64>, dev: &B::Device) -> Tensor<B, 1, Int> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), dev)
    }

    /// Token states `[batch, seq, hidden]`.
    pub fn forward(&self, t: &TokenBatch) -> Tensor<B, 3> {
        let dev = self.word.val().device();
        let c = &self.config;
        let (b, s, h) = (t.batch, t.seq, c.hidden);
        let ids = self.ints(t.ids.iter().map(|&i| i64::from(i)).collect(), &dev);
        let types = self.ints(t.type_ids.iter().map(|&i| i64::from(i)).collect(), &dev);
        // BERT counts positions from 0; RoBERTa from the padding index + 1
        // for real tokens, and gives padding the padding index.
        let positions: Vec<i64> = (0..b * s)
            .map(|k| {
                let pos = (k % s) as i64;
                match c.family {
                    Family::Bert => pos,
                    Family::Roberta if t.mask[k] == 1 => pos + 1 + c.pad_token_id as i64,
                    Family::Roberta => c.pad_token_id as i64,
                }
            })
            .collect();
        let positions = self.ints(positions, &dev);
        let x = self.word.val().select(0, ids)
            + self.position.val().select(0, positions)
            + self.token_type.val().select(0, types);
        let drop = self.dropout.as_ref();
        let hidden = |x: Tensor<B, 2>| match drop {
            Some(d) => d.apply(x, d.hidden),
            None => x,
        };
        let mut x = hidden(self.embedding_norm.forward(x));
        let mask: Vec<f32> = t
            .mask
            .iter()
            .map(|&m| if m == 1 { 0.0 } else { -1e9 })
            .collect();
        let (nh, dh) = (c.heads, h / c.heads);
        let scale = 1.0 / (dh as f64).sqrt();
        let precision = self.precision;
        for layer in &self.layers {
            let qkv = layer.project_qkv(x.clone(), precision);
            // One mask per layer, drawn once whichever path runs it.
            let probs_mask = drop
                .filter(|d| d.attention > 0.0)
                .map(|d| d.mask(d.attention, b * nh * s * s));
            let ctx = kernels::try_attention_dropped(
                qkv,
                [b, s, nh],
                &mask,
                scale as f32,
                probs_mask.clone(),
            )
            .unwrap_or_else(|qkv| attention_dropped(qkv, [b, s, nh], &mask, scale, probs_mask));
            let attn = layer
                .attention_norm
                .forward_residual(hidden(layer.attention_out.apply(ctx, precision)), x);
            let ff = hidden(layer.output.apply(
                layer.intermediate.apply_gelu(attn.clone(), precision),
                precision,
            ));
            x = layer.output_norm.forward_residual(ff, attn);
        }
        x.reshape([b, s, h])
    }

    /// One vector per sequence: the states pooled as sentence-transformers'
    /// `Pooling` does, then through the model's `Dense` modules
    /// (`[batch, hidden]`, or the last `Dense`'s width).
    pub fn pool(
        &self,
        states: Tensor<B, 3>,
        t: &TokenBatch,
        pooling: Pooling,
    ) -> Result<Tensor<B, 2>, NeuralError> {
        let pooled = self.pool_states(states, t, pooling)?;
        Ok(self
            .heads
            .st_dense
            .iter()
            .fold(pooled, |x, d| d.forward(x, self.precision)))
    }

    fn pool_states(
        &self,
        states: Tensor<B, 3>,
        t: &TokenBatch,
        pooling: Pooling,
    ) -> Result<Tensor<B, 2>, NeuralError> {
        let [b, s, h] = states.dims();
        let dev = states.device();
        // The mask `[b, s]`, each real token weighted by `weight(position)`.
        let mask = |weight: fn(usize) -> f32| {
            let m: Vec<f32> = t
                .mask
                .iter()
                .enumerate()
                .map(|(i, &m)| m as f32 * weight(i % s))
                .collect();
            Tensor::<B, 2>::from_data(TensorData::new(m, [b, s]), &dev)
        };
        match pooling {
            Pooling::Mean | Pooling::WeightedMean | Pooling::MeanSqrtLen => {
                let m = match pooling {
                    Pooling::WeightedMean => mask(|i| (i + 1) as f32),
                    _ => mask(|_| 1.0),
                };
                let counts = m.clone().sum_dim(1).clamp_min(1e-9); // [b, 1]
                let summed = (states * m.reshape([b, s, 1])).sum_dim(1).reshape([b, h]);
                Ok(match pooling {
                    Pooling::MeanSqrtLen => summed / counts.sqrt(),
                    _ => summed / counts,
                })
            }
            Pooling::Max => {
                // Padding at -1e9, as sentence-transformers sets it.
                let m = mask(|_| 1.0).reshape([b, s, 1]);
                let masked = states * m.clone() + (m.neg() + 1.0) * -1e9;
                Ok(masked.max_dim(1).reshape([b, h]))
            }
            Pooling::LastToken => {
                let last: Vec<i64> = (0..b)
                    .map(|r| {
                        let row = &t.mask[r * s..(r + 1) * s];
                        let pos = row.iter().rposition(|&m| m != 0).unwrap_or(s - 1);
                        (r * s + pos) as i64
                    })
                    .collect();
                let index = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [b]), &dev);
                Ok(states.reshape([b * s, h]).select(0, index))
            }
            Pooling::Cls => Ok(states.slice([0..b, 0..1, 0..h]).reshape([b, h])),
            Pooling::Pooler => {
                let Some(p) = &self.heads.pooler else {
                    return Err(NeuralError::format(
                        "pooling `pooler` needs a checkpoint with `pooler.dense`",
                    ));
                };
                let cls = states.slice([0..b, 0..1, 0..h]).reshape([b, h]);
                Ok(p.forward(cls).tanh())
            }
        }
    }

    /// Sequence-classification logits `[batch, num_labels]`.
    pub fn classify(&self, states: Tensor<B, 3>) -> Result<Tensor<B, 2>, NeuralError> {
        let [b, _, h] = states.dims();
        let cls = states.slice([0..b, 0..1, 0..h]).reshape([b, h]);
        let Some(out) = &self.heads.classifier else {
            return Err(NeuralError::format(
                "this checkpoint has no classification head (`classifier`)",
            ));
        };
        match self.config.family {
            Family::Bert => {
                let Some(p) = &self.heads.pooler else {
                    return Err(NeuralError::format(
                        "a BERT classifier needs `pooler.dense`",
                    ));
                };
                Ok(out.forward(p.forward(cls).tanh()))
            }
            Family::Roberta => {
                let Some(d) = &self.heads.classifier_dense else {
                    return Err(NeuralError::format(
                        "an XLM-R classifier needs `classifier.dense`",
                    ));
                };
                Ok(out.forward(d.forward(cls).tanh()))
            }
        }
    }
}

/// Self-attention's core with Burn's ops, for backends without the fused
/// kernel ([`kernels::try_attention`], which computes the same):
/// `softmax(q kᵀ · scale + mask) v` per sequence and head, with `qkv`
/// `[batch · seq, 3 · hidden]` (`q`, `k`, `v` side by side), the result
/// `[batch · seq, hidden]` and `mask` additive per token.
pub fn attention<B: Backend>(
    qkv: Tensor<B, 2>,
    shape: [usize; 3],
    mask: &[f32],
    scale: f64,
) -> Tensor<B, 2> {
    attention_dropped(qkv, shape, mask, scale, None)
}

/// [`attention`] with a dropout mask (`[batch, heads, seq, seq]`, 0 or
/// `1 / (1 − p)`) on the attention probabilities.
pub fn attention_dropped<B: Backend>(
    qkv: Tensor<B, 2>,
    [b, s, heads]: [usize; 3],
    mask: &[f32],
    scale: f64,
    dropout: Option<Vec<f32>>,
) -> Tensor<B, 2> {
    let [n, width] = qkv.dims();
    let h = width / 3;
    let part = |i: usize| {
        qkv.clone()
            .slice([0..n, i * h..(i + 1) * h])
            .reshape([b, s, heads, h / heads])
            .swap_dims(1, 2)
    };
    let bias = Tensor::<B, 2>::from_data(TensorData::new(mask.to_vec(), [b, s]), &qkv.device())
        .reshape([b, 1, 1, s]);
    let scores = part(0).matmul(part(1).swap_dims(2, 3));
    let mut probs = softmax(scores * scale + bias, 3);
    if let Some(m) = dropout {
        probs =
            probs * Tensor::<B, 4>::from_data(TensorData::new(m, [b, heads, s, s]), &qkv.device());
    }
    probs.matmul(part(2)).swap_dims(1, 2).reshape([b * s, h])
}

/// L2-normalises rows.
pub fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod dropout_tests {
    use super::Dropout;

    #[test]
    fn masks_drop_at_the_rate_asked_and_repeat_per_key() {
        let d = Dropout::new(0.1, 0.1, 42);
        let m = d.mask(0.1, 1_000_000);
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        assert!((dropped - 0.1).abs() <= 0.001, "dropped {dropped}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        // The next draw differs; the same key draws the same sequence.
        let next = d.mask(0.1, 1000);
        let again = Dropout::new(0.1, 0.1, 42);
        assert_eq!(again.mask(0.1, 1_000_000), m);
        assert_eq!(again.mask(0.1, 1000), next);
        assert_ne!(next, m[..1000]);
        assert_ne!(Dropout::new(0.1, 0.1, 43).mask(0.1, 1000), m[..1000]);
        let half = Dropout::new(0.5, 0.0, 7).mask(0.5, 1_000_000);
        let dropped = half.iter().filter(|&&v| v == 0.0).count() as f64 / 1e6;
        assert!((dropped - 0.5).abs() <= 0.005, "dropped {dropped}");
    }
}
