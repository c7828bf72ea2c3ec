//! Training losses of bi-encoders, as sentence-transformers defines them,
//! on Burn tensors (so an autodiff backend gives their gradients).
//!
//! - [`mnrl`]: MultipleNegativesRankingLoss — each anchor against every
//!   positive and every hard negative of the batch, cosine similarities
//!   times `scale` (20), cross-entropy with the anchor's own positive as the
//!   label. Candidates are ordered as sentence-transformers concatenates
//!   them: all positives, then all first negatives, then all second ones.
//! - [`margin_mse`]: MarginMSELoss — the mean squared error between the
//!   student's `s(q, p) − s(q, n)` (dot products) and the teacher's margin,
//!   over every hard negative of each query.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::encoder::{Encoder, normalize};
use crate::error::NeuralError;
use crate::model::{Model, Profile};
use crate::tokenize::{Encoded, TextTokenizer, pad, token_groups};

/// Padded tokens per forward pass of [`embed_with`]: a group of texts of
/// about one length closes at this size (4 texts of 128 tokens, or 25
/// questions of 20). On 2 CPU threads, 512 and 1,024 ran a MiniLM training
/// step equally fast, 2,048 3% and 4,096 15% slower, one padded batch 40%.
pub const GROUP_TOKENS: usize = 512;

/// Pooled (and, if the model says so, normalised) embeddings `[n, hidden]`
/// of `texts` in their order: the forward pass of training, where
/// gradients flow back into the encoder.
pub fn embed_tensor<B: Backend>(
    model: &Model<B>,
    texts: &[&str],
) -> Result<Tensor<B, 2>, NeuralError> {
    embed_with(&model.encoder, &model.tokenizer, &model.profile, texts)
}

/// [`embed_tensor`] on a model's parts (a training loop owns the encoder
/// separately, since each optimiser step returns a new one).
pub fn embed_with<B: Backend>(
    encoder: &Encoder<B>,
    tokenizer: &TextTokenizer,
    profile: &Profile,
    texts: &[&str],
) -> Result<Tensor<B, 2>, NeuralError> {
    embed_grouped(encoder, tokenizer, profile, texts, GROUP_TOKENS)
}

/// [`embed_with`] with the texts run in groups of about one length
/// ([`token_groups`] with `group_tokens`), each padded only to its own
/// longest text, and the pooled rows put back in the texts' order. Each
/// text's embedding is what it would be alone: attention is masked, and
/// every other layer works on one token at a time.
pub fn embed_grouped<B: Backend>(
    encoder: &Encoder<B>,
    tokenizer: &TextTokenizer,
    profile: &Profile,
    texts: &[&str],
    group_tokens: usize,
) -> Result<Tensor<B, 2>, NeuralError> {
    if texts.is_empty() {
        return Err(NeuralError::data("no texts to embed"));
    }
    let encoded: Vec<Encoded> = texts
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let groups = token_groups(&lengths, group_tokens);
    let mut pooled = Vec::with_capacity(groups.len());
    for group in &groups {
        let items: Vec<&Encoded> = group.iter().map(|&i| &encoded[i]).collect();
        let batch = pad(&items, tokenizer.pad_id());
        let states = encoder.forward(&batch);
        pooled.push(encoder.pool(states, &batch, profile.pooling)?);
    }
    let mut rows = Tensor::cat(pooled, 0);
    let order: Vec<usize> = groups.concat();
    if order.iter().enumerate().any(|(k, &i)| k != i) {
        // Row k holds text order[k]; text i's row is where it went.
        let mut row_of = vec![0i64; order.len()];
        for (k, &i) in order.iter().enumerate() {
            row_of[i] = k as i64;
        }
        let n = row_of.len();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(row_of, [n]), &rows.device());
        rows = rows.select(0, index);
    }
    Ok(if profile.normalize {
        normalize(rows)
    } else {
        rows
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

/// MarginMSELoss over every (query, hard negative) pair: `queries` and
/// `positives` `[b, h]`, `negatives` `[m, h]` where negative `j` belongs to
/// query `owners[j]`, and the teacher's margins `[m]` (`positive_score −
/// score_j`). The mean, over the `m` pairs, of the squared difference
/// between the student's margin `q·p − q·n_j` (dot products) and the
/// teacher's: sentence-transformers' MarginMSELoss with `k` negatives per
/// query when every query has `k` (its loss is the mean over the `[b, k]`
/// margins), and the same mean when queries have different numbers.
pub fn margin_mse<B: Backend>(
    queries: Tensor<B, 2>,
    positives: Tensor<B, 2>,
    negatives: Tensor<B, 2>,
    owners: &[usize],
    teacher: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let [b, _] = queries.dims();
    let m = owners.len();
    let dev = queries.device();
    let index = Tensor::<B, 1, Int>::from_data(
        TensorData::new(owners.iter().map(|&i| i as i64).collect::<Vec<_>>(), [m]),
        &dev,
    );
    let pos = (queries.clone() * positives).sum_dim(1).reshape([b]);
    let neg = (queries.select(0, index.clone()) * negatives)
        .sum_dim(1)
        .reshape([m]);
    let diff = pos.select(0, index) - neg - teacher;
    (diff.clone() * diff).mean()
}
