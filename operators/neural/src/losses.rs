//! Training losses of bi-encoders, as sentence-transformers defines them,
//! on Burn tensors (so an autodiff backend gives their gradients).
//!
//! - [`mnrl`]: MultipleNegativesRankingLoss — each anchor against every
//!   positive and every hard negative of the batch, cosine similarities
//!   times `scale` (20), cross-entropy with the anchor's own positive as the
//!   label. Candidates are ordered as sentence-transformers concatenates
//!   them: all positives, then all first negatives, then all second ones.
//! - [`margin_mse`]: MarginMSELoss — the mean squared error between the
//!   student's `s(q, p) − s(q, n)` (dot products) and the teacher's margin.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::encoder::{Encoder, normalize};
use crate::model::{Model, Profile};
use crate::tokenize::{Encoded, TextTokenizer, pad};

/// Pooled (and, if the model says so, normalised) embeddings `[n, hidden]`
/// of `texts` in their order, as one padded batch: the forward pass of
/// training, where gradients flow back into the encoder.
pub fn embed_tensor<B: Backend>(model: &Model<B>, texts: &[&str]) -> Result<Tensor<B, 2>, String> {
    embed_with(&model.encoder, &model.tokenizer, &model.profile, texts)
}

/// [`embed_tensor`] on a model's parts (a training loop owns the encoder
/// separately, since each optimiser step returns a new one).
pub fn embed_with<B: Backend>(
    encoder: &Encoder<B>,
    tokenizer: &TextTokenizer,
    profile: &Profile,
    texts: &[&str],
) -> Result<Tensor<B, 2>, String> {
    let encoded: Vec<Encoded> = texts
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect::<Result<_, _>>()?;
    let items: Vec<&Encoded> = encoded.iter().collect();
    let batch = pad(&items, tokenizer.pad_id());
    let states = encoder.forward(&batch);
    let pooled = encoder.pool(states, &batch, profile.pooling)?;
    Ok(if profile.normalize {
        normalize(pooled)
    } else {
        pooled
    })
}

/// MultipleNegativesRankingLoss of anchors `[b, h]` against candidates
/// `[b · (1 + negatives), h]` (positives first), cosine times `scale`.
pub fn mnrl<B: Backend>(
    anchors: Tensor<B, 2>,
    candidates: Tensor<B, 2>,
    scale: f32,
) -> Tensor<B, 1> {
    let [b, _] = anchors.dims();
    let scores = normalize(anchors).matmul(normalize(candidates).transpose()) * scale;
    let log_probs = log_softmax(scores, 1);
    let dev = log_probs.device();
    let labels: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new((0..b as i64).collect::<Vec<_>>(), [b, 1]),
        &dev,
    );
    log_probs.gather(1, labels).mean().neg()
}

/// The symmetric variant: also each positive against all anchors.
pub fn mnrl_symmetric<B: Backend>(
    anchors: Tensor<B, 2>,
    candidates: Tensor<B, 2>,
    scale: f32,
) -> Tensor<B, 1> {
    let [b, h] = anchors.dims();
    let positives = candidates.clone().slice([0..b, 0..h]);
    let forward = mnrl(anchors.clone(), candidates, scale);
    let backward = mnrl(positives, anchors, scale);
    (forward + backward) / 2.0
}

/// MarginMSELoss: `queries`, `positives`, `negatives` `[b, h]`, teacher
/// margins `[b]`.
pub fn margin_mse<B: Backend>(
    queries: Tensor<B, 2>,
    positives: Tensor<B, 2>,
    negatives: Tensor<B, 2>,
    teacher: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let [b, _] = queries.dims();
    let pos = (queries.clone() * positives).sum_dim(1).reshape([b]);
    let neg = (queries * negatives).sum_dim(1).reshape([b]);
    let diff = pos - neg - teacher;
    (diff.clone() * diff).mean()
}
