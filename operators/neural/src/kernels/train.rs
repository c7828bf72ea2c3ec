//! Fused ops with their own backward for training on `Autodiff<Flex>`.
//!
//! **Bias + GELU** (the feed-forward block's first half): Burn records the
//! bias add and GELU as two ops, and Flex's GELU and its backward call a
//! scalar `erf` and `exp` per element. Here the forward is one pass that
//! keeps the pre-activation `z = x + b`, and the backward one pass,
//! `dz = g ⊙ GELU'(z)` (with the vectorisable `erf`/`exp` of the inference
//! kernels), whose column sums are the bias gradient. A bias alone (every
//! other dense layer) is added in place, with nothing kept: its backward
//! passes the gradient through and sums its columns, where Burn's
//! broadcast add allocated a new output and reduced along a strided view.
//!
//! **Residual + layer norm**: Burn records the add, mean, variance,
//! centring, division, scale and shift as separate ops over the hidden
//! states. Here the forward is one pass that keeps the normalised rows `x̂`
//! and each row's `1/σ`, and the backward one pass per row:
//! `du = (1/σ)(ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = g ⊙ γ`, the same
//! `du` for the input and the residual, and `Σ g ⊙ x̂`, `Σ g` for γ and β.
//!
//! **Attention** (`softmax(q kᵀ · scale + mask) v` per sequence and head):
//! Burn records a reshape, two batched products, a scale, a mask add and
//! a softmax of several passes, and copies the strided per-head views into
//! contiguous memory on one thread, forward and backward. Here it is one
//! op over the fused projection `qkv` in its own layout
//! (`kernels/attention.rs`): the forward keeps the probabilities, and the
//! backward computes the gradient of `qkv` (`dq`, `dk`, `dv` side by side)
//! per sequence in parallel (the mask is a constant and gets no gradient).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::attention::{self, Shape};
use super::{
    attend, bias_rows, contiguous, erf, exp, gelu, normalise_row, rows_per_chunk, same,
    sum_in_order, values,
};

/// The training backend these ops apply to.
type Ad = Autodiff<Flex>;

/// [`super::try_attention`] for an `Autodiff<Flex>` tensor: attention as
/// one recorded op; `Err(qkv)` for any other backend.
pub(super) fn try_attention<B: Backend>(
    qkv: Tensor<B, 2>,
    shape: Shape,
    mask: &[f32],
    scale: f32,
    dropout: Option<Vec<f32>>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let qkv: Tensor<Ad, 2> = same(qkv)?;
    let qkv = qkv.into_primitive().tensor();
    if qkv.primitive.dtype() != DType::F32 {
        return Err(back(qkv));
    }
    let node = qkv.node.clone();
    let qkv = contiguous(qkv.primitive);
    let mut probabilities = vec![0.0f32; shape.probabilities()];
    let context = attend(
        shape,
        &qkv,
        mask,
        scale,
        Some(&mut probabilities),
        dropout.as_deref(),
    );
    let out = match (Attention { shape, scale })
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            AttentionState {
                qkv,
                probabilities,
                dropout,
            },
            context,
        ),
        OpsKind::UnTracked(prep) => prep.finish(context),
    };
    Ok(back(out))
}

/// What attention's backward needs: its input and the probabilities.
#[derive(Debug, Clone)]
struct AttentionState {
    qkv: FlexTensor,
    /// `[batch, heads, seq, seq]`.
    probabilities: Vec<f32>,
    /// The dropout mask on the probabilities, the same shape.
    dropout: Option<Vec<f32>>,
}

#[derive(Debug)]
struct Attention {
    shape: Shape,
    scale: f32,
}

impl Backward<Flex, 1> for Attention {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let AttentionState {
            qkv,
            probabilities,
            dropout,
        } = ops.state;
        let (shape, scale) = (self.shape, self.scale);
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let g = contiguous(grad);
            let d_qkv = attention::backward(
                shape,
                &qkv.storage::<f32>()[..shape.inputs()],
                &probabilities,
                &g.storage::<f32>()[..shape.states()],
                scale,
                dropout.as_deref(),
            );
            FlexTensor::from_data(TensorData::new(d_qkv, qkv.layout().shape().clone()))
        });
    }
}

/// [`super::try_add_bias`] for an `Autodiff<Flex>` tensor: `x + bias`,
/// then GELU when `then_gelu`, as one recorded op; `Err(x)` for any other
/// backend.
pub(super) fn try_add_bias<B: Backend>(
    x: Tensor<B, 2>,
    bias: &Tensor<B, 1>,
    then_gelu: bool,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let x: Tensor<Ad, 2> = same(x)?;
    let bias: Tensor<Ad, 1> = match same(bias.clone()) {
        Ok(b) => b,
        Err(_) => return Err(back(x.into_primitive().tensor())),
    };
    let [n, d] = x.dims();
    let x = x.into_primitive().tensor();
    let bias = bias.into_primitive().tensor();
    if x.primitive.dtype() != DType::F32 || bias.primitive.dtype() != DType::F32 {
        return Err(back(x));
    }
    let nodes = [x.node.clone(), bias.node.clone()];
    let b = contiguous(bias.primitive);
    let mut z = contiguous(x.primitive);
    if !then_gelu {
        // The sum is the output, written in place; the backward needs
        // nothing but the incoming gradient.
        bias_rows(values(&mut z), &b.storage::<f32>()[..d], false);
        let out = (AddBias { d })
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateless(z);
        return Ok(back(out));
    }
    let y = bias_gelu_rows(values(&mut z), &b.storage::<f32>()[..d]);
    let y = FlexTensor::from_data(TensorData::new(y, [n, d]));
    let out = match (BiasGelu { d })
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(z, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(back(out))
}

/// The backward of a bias add: the gradient passes to `x` as it is, and
/// its column sums are the bias's.
#[derive(Debug)]
struct AddBias {
    d: usize,
}

impl Backward<Flex, 2> for AddBias {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let [x_node, bias_node] = ops.parents;
        if let Some(node) = bias_node {
            let n = g.layout().shape().num_elements();
            let sums = column_sums(&g.storage::<f32>()[..n], self.d);
            let db = FlexTensor::from_data(TensorData::new(sums, [self.d]));
            grads.register::<Flex>(node.id, db);
        }
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, g);
        }
    }
}

/// `z ← z + bias` row by row (in place), and `gelu(z)` as a new buffer.
fn bias_gelu_rows(z: &mut [f32], bias: &[f32]) -> Vec<f32> {
    let d = bias.len().max(1);
    let mut y = vec![0.0; z.len()];
    z.par_chunks_mut(rows_per_chunk(d) * d)
        .zip(y.par_chunks_mut(rows_per_chunk(d) * d))
        .for_each(|(z, y)| {
            for (z, y) in z.chunks_exact_mut(d).zip(y.chunks_exact_mut(d)) {
                for ((z, y), b) in z.iter_mut().zip(y.iter_mut()).zip(bias) {
                    *z += b;
                    *y = gelu(*z);
                }
            }
        });
    y
}

/// The backward of bias + GELU; its state is the pre-activation `z`.
#[derive(Debug)]
struct BiasGelu {
    d: usize,
}

impl Backward<Flex, 2> for BiasGelu {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let z = contiguous(ops.state);
        let mut g = contiguous(grads.consume::<Flex>(&ops.node));
        let n = z.layout().shape().num_elements();
        gelu_backward_rows(&z.storage::<f32>()[..n], values(&mut g));
        let [x_node, bias_node] = ops.parents;
        if let Some(node) = bias_node {
            let sums = column_sums(values(&mut g), self.d);
            let db = FlexTensor::from_data(TensorData::new(sums, [self.d]));
            grads.register::<Flex>(node.id, db);
        }
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, g);
        }
    }
}

/// `g ← g ⊙ GELU'(z)`, with `GELU'(z) = Φ(z) + z·φ(z)`.
fn gelu_backward_rows(z: &[f32], g: &mut [f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    g.par_chunks_mut(super::CHUNK_ELEMENTS)
        .zip(z.par_chunks(super::CHUNK_ELEMENTS))
        .for_each(|(g, z)| {
            for (g, &z) in g.iter_mut().zip(z) {
                let cdf = 0.5 * (1.0 + erf(z * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = INV_SQRT_2PI * exp(-0.5 * z * z);
                *g *= cdf + z * pdf;
            }
        });
}

/// The sums of each of the `d` columns of row-major `values`.
fn column_sums(values: &[f32], d: usize) -> Vec<f32> {
    let d = d.max(1);
    let parts = values
        .par_chunks(rows_per_chunk(d) * d)
        .map(|chunk| {
            let mut sums = vec![0.0f32; d];
            for row in chunk.chunks_exact(d) {
                for (s, v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
            sums
        })
        .collect::<Vec<_>>();
    sum_in_order(parts, d)
}

/// The fused `LayerNorm(x + residual)`; `Err((x, residual))` for any other
/// backend.
#[allow(clippy::type_complexity)]
pub(super) fn try_add_layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    residual: Tensor<B, 2>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f32,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    let x: Tensor<Ad, 2> = match same(x) {
        Ok(x) => x,
        Err(x) => return Err((x, residual)),
    };
    let as_ad = |t: Tensor<B, 1>| same::<Tensor<B, 1>, Tensor<Ad, 1>>(t).ok();
    let (Some(residual), Some(gamma), Some(beta)) = (
        same::<Tensor<B, 2>, Tensor<Ad, 2>>(residual).ok(),
        as_ad(gamma.clone()),
        as_ad(beta.clone()),
    ) else {
        unreachable!("x is an Autodiff<Flex> tensor, so B is Autodiff<Flex>");
    };
    let [n, d] = x.dims();
    let [x, residual, gamma, beta] = [
        x.into_primitive().tensor(),
        residual.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
    ];
    if [&x, &residual, &gamma, &beta]
        .iter()
        .any(|t| t.primitive.dtype() != DType::F32)
    {
        return Err((back(x), back(residual)));
    }
    let nodes = [
        x.node.clone(),
        residual.node.clone(),
        gamma.node.clone(),
        beta.node.clone(),
    ];
    let gamma = contiguous(gamma.primitive).storage::<f32>()[..d].to_vec();
    let beta = contiguous(beta.primitive).storage::<f32>()[..d].to_vec();
    let residual = contiguous(residual.primitive);
    let mut normed = contiguous(x.primitive);
    let mut inv_std = vec![0.0f32; n];
    let y = layer_norm_rows(
        values(&mut normed),
        &residual.storage::<f32>()[..n * d],
        &mut inv_std,
        &gamma,
        &beta,
        eps,
    );
    let y = FlexTensor::from_data(TensorData::new(y, [n, d]));
    let out = match LayerNormOp
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            NormState {
                normed,
                inv_std,
                gamma,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(back(out))
}

/// Rows of `u` (= x, in place) become `x̂ = (u + residual − μ)/σ`; each
/// row's `1/σ` goes to `inv_std`; returns `x̂ · γ + β`.
fn layer_norm_rows(
    u: &mut [f32],
    residual: &[f32],
    inv_std: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    let d = gamma.len().max(1);
    let rows = rows_per_chunk(d);
    let mut y = vec![0.0f32; u.len()];
    u.par_chunks_mut(rows * d)
        .zip(residual.par_chunks(rows * d))
        .zip(inv_std.par_chunks_mut(rows))
        .zip(y.par_chunks_mut(rows * d))
        .for_each(|(((u, r), inv), y)| {
            for (((u, r), inv), y) in u
                .chunks_exact_mut(d)
                .zip(r.chunks_exact(d))
                .zip(inv.iter_mut())
                .zip(y.chunks_exact_mut(d))
            {
                *inv = normalise_row(u, r, eps);
                for (((u, y), g), b) in u.iter().zip(y.iter_mut()).zip(gamma).zip(beta) {
                    *y = u * g + b;
                }
            }
        });
    y
}

/// What the layer norm's backward needs.
#[derive(Debug, Clone)]
struct NormState {
    /// `x̂`, `[n, d]`.
    normed: FlexTensor,
    /// `1/σ` per row.
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
}

#[derive(Debug)]
struct LayerNormOp;

impl Backward<Flex, 4> for LayerNormOp {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let NormState {
            normed,
            inv_std,
            gamma,
        } = ops.state;
        let d = gamma.len();
        let mut g = contiguous(grads.consume::<Flex>(&ops.node));
        let n = inv_std.len();
        let (d_gamma, d_beta) = layer_norm_backward_rows(
            &normed.storage::<f32>()[..n * d],
            &inv_std,
            &gamma,
            values(&mut g),
        );
        let [x_node, residual_node, gamma_node, beta_node] = ops.parents;
        let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [d]));
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, vector(d_gamma));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, vector(d_beta));
        }
        if let Some(node) = residual_node {
            grads.register::<Flex>(node.id, g.clone());
        }
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, g);
        }
    }
}

/// `g ← du` row by row; returns (Σ g ⊙ x̂, Σ g) over the rows.
fn layer_norm_backward_rows(
    normed: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    g: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len().max(1);
    let rows = rows_per_chunk(d);
    let zeros = || (vec![0.0f32; d], vec![0.0f32; d]);
    let parts = g
        .par_chunks_mut(rows * d)
        .zip(normed.par_chunks(rows * d))
        .zip(inv_std.par_chunks(rows))
        .map(|((g, xh), inv)| {
            let (mut dg, mut db) = zeros();
            for ((g, xh), inv) in g.chunks_exact_mut(d).zip(xh.chunks_exact(d)).zip(inv) {
                let (mut mean_gh, mut mean_ghx) = (0.0f32, 0.0f32);
                for (((g, xh), gamma), (dg, db)) in g
                    .iter()
                    .zip(xh)
                    .zip(gamma)
                    .zip(dg.iter_mut().zip(db.iter_mut()))
                {
                    *dg += g * xh;
                    *db += g;
                    let gh = g * gamma;
                    mean_gh += gh;
                    mean_ghx += gh * xh;
                }
                mean_gh /= d as f32;
                mean_ghx /= d as f32;
                for ((g, xh), gamma) in g.iter_mut().zip(xh).zip(gamma) {
                    *g = inv * (*g * gamma - mean_gh - xh * mean_ghx);
                }
            }
            (dg, db)
        })
        .collect::<Vec<_>>();
    let (dg, db): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    (sum_in_order(dg, d), sum_in_order(db, d))
}

/// An autodiff primitive back as a `Tensor<B, D>` (`B` is `Ad` here).
fn back<B: Backend, const D: usize>(t: FloatTensor<Ad>) -> Tensor<B, D> {
    let tensor = Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(t));
    match same::<Tensor<Ad, D>, Tensor<B, D>>(tensor) {
        Ok(t) => t,
        Err(_) => unreachable!("only called on tensors that came from B = Autodiff<Flex>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn max_diff<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// The fused attention against Burn's ops, forward and gradient, with
    /// the probabilities dropped by `dropout` when given.
    fn fused_attention_matches_burn(dropout: Option<Vec<f32>>) {
        let dev = Default::default();
        let (b, s, heads, dh) = (2, 5, 3, 4);
        let h = heads * dh;
        let qkv = Tensor::<Flex, 2>::random([b * s, 3 * h], Distribution::Default, &dev);
        let upstream = Tensor::<Flex, 2>::random([b * s, h], Distribution::Default, &dev);
        // The second sequence has two padding positions.
        let mask: Vec<f32> = (0..b * s)
            .map(|i| if i >= 2 * s - 2 { -1e9 } else { 0.0 })
            .collect();
        let shape = Shape {
            batch: b,
            seq: s,
            heads,
            head_dim: dh,
        };
        let scale = 0.4;
        let run = |fused: bool| {
            let qkv = Tensor::<Ad, 2>::from_inner(qkv.clone()).require_grad();
            let y = if fused {
                try_attention(qkv.clone(), shape, &mask, scale, dropout.clone())
                    .expect("autodiff Flex is fused")
            } else {
                crate::encoder::attention_dropped(
                    qkv.clone(),
                    [b, s, heads],
                    &mask,
                    f64::from(scale),
                    dropout.clone(),
                )
            };
            let grads = (y.clone() * Tensor::from_inner(upstream.clone()))
                .sum()
                .backward();
            (y.inner(), qkv.grad(&grads).expect("a gradient"))
        };
        let (y_fused, d_fused) = run(true);
        let (y_burn, d_burn) = run(false);
        assert!(max_diff(y_fused, y_burn) < 1e-5, "context");
        // q, k and v's gradients, side by side like the input.
        assert!(max_diff(d_fused, d_burn) < 1e-5, "dqkv");
    }

    #[test]
    fn fused_attention_has_burns_forward_and_gradient() {
        fused_attention_matches_burn(None);
    }

    #[test]
    fn fused_attention_dropout_has_burns_forward_and_gradient() {
        let drop = crate::encoder::Dropout::new(0.0, 0.3, 9);
        let mask = drop.mask(0.3, 2 * 3 * 5 * 5);
        assert!(mask.contains(&0.0) && mask.iter().any(|&m| m > 1.0));
        fused_attention_matches_burn(Some(mask));
    }

    #[test]
    fn fused_bias_and_bias_gelu_have_burns_forward_and_gradients() {
        let dev = Default::default();
        let (n, d) = (7, 6);
        let x = Tensor::<Flex, 2>::random([n, d], Distribution::Normal(0.0, 2.0), &dev);
        let b = Tensor::<Flex, 1>::random([d], Distribution::Default, &dev);
        let upstream = Tensor::<Flex, 2>::random([n, d], Distribution::Default, &dev);
        for then_gelu in [false, true] {
            let run = |fused: bool| {
                let x = Tensor::<Ad, 2>::from_inner(x.clone()).require_grad();
                let b = Tensor::<Ad, 1>::from_inner(b.clone()).require_grad();
                let y = if fused {
                    try_add_bias(x.clone(), &b, then_gelu).expect("autodiff Flex is fused")
                } else if then_gelu {
                    burn::tensor::activation::gelu(x.clone() + b.clone().unsqueeze())
                } else {
                    x.clone() + b.clone().unsqueeze()
                };
                let grads = (y.clone() * Tensor::from_inner(upstream.clone()))
                    .sum()
                    .backward();
                let dx = x.grad(&grads).expect("x has a gradient");
                let db = b.grad(&grads).expect("the bias has a gradient");
                (y.inner(), dx, db)
            };
            let (y_fused, dx_fused, db_fused) = run(true);
            let (y_burn, dx_burn, db_burn) = run(false);
            assert!(max_diff(y_fused, y_burn) < 1e-5, "gelu {then_gelu}: output");
            assert!(max_diff(dx_fused, dx_burn) < 1e-5, "gelu {then_gelu}: dx");
            assert!(
                max_diff(db_fused, db_burn) < 1e-5,
                "gelu {then_gelu}: dbias"
            );
        }
    }

    #[test]
    fn fused_layer_norm_has_burns_forward_and_gradients() {
        let dev = Default::default();
        let (n, d) = (5, 8);
        let rand = |shape: [usize; 2]| {
            Tensor::<Flex, 2>::random(shape, Distribution::Normal(0.5, 2.0), &dev)
        };
        let (x, r, upstream) = (rand([n, d]), rand([n, d]), rand([n, d]));
        let gamma = Tensor::<Flex, 1>::random([d], Distribution::Normal(1.0, 0.3), &dev);
        let beta = Tensor::<Flex, 1>::random([d], Distribution::Default, &dev);
        let eps = 1e-12;
        let run = |fused: bool| {
            let leaf2 = |t: &Tensor<Flex, 2>| Tensor::<Ad, 2>::from_inner(t.clone()).require_grad();
            let leaf1 = |t: &Tensor<Flex, 1>| Tensor::<Ad, 1>::from_inner(t.clone()).require_grad();
            let (x, r, g, b) = (leaf2(&x), leaf2(&r), leaf1(&gamma), leaf1(&beta));
            let y = if fused {
                match try_add_layer_norm(x.clone(), r.clone(), &g, &b, eps) {
                    Ok(y) => y,
                    Err(_) => panic!("autodiff Flex is fused"),
                }
            } else {
                let u = x.clone() + r.clone();
                let (var, mean) = u.clone().var_mean_bias(1);
                (u - mean) / (var + f64::from(eps)).sqrt() * g.clone().unsqueeze_dim(0)
                    + b.clone().unsqueeze_dim(0)
            };
            let grads = (y.clone() * Tensor::from_inner(upstream.clone()))
                .sum()
                .backward();
            let grad2 = |t: &Tensor<Ad, 2>| t.grad(&grads).expect("a gradient");
            let grad1 = |t: &Tensor<Ad, 1>| t.grad(&grads).expect("a gradient");
            (y.inner(), grad2(&x), grad2(&r), grad1(&g), grad1(&b))
        };
        let fused = run(true);
        let burn = run(false);
        assert!(max_diff(fused.0, burn.0) < 1e-5, "output");
        assert!(max_diff(fused.1, burn.1) < 1e-4, "dx");
        assert!(max_diff(fused.2, burn.2) < 1e-4, "dresidual");
        assert!(max_diff(fused.3, burn.3) < 1e-4, "dgamma");
        assert!(max_diff(fused.4, burn.4) < 1e-4, "dbeta");
    }

    /// The bias and layer-norm gradients sum over rows in chunks run in
    /// parallel; the chunks' sums are added in chunk order, so a training
    /// step repeats bit for bit however rayon scheduled them.
    #[test]
    fn column_sums_add_chunks_in_order_every_time() {
        let d = 384;
        let rows = 40 * rows_per_chunk(d) + 7;
        let values: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919 % 10007) as f32 - 5000.0) * 1e-3)
            .collect();
        let mut want = vec![0.0f32; d];
        for chunk in values.chunks(rows_per_chunk(d) * d) {
            let mut part = vec![0.0f32; d];
            for row in chunk.chunks_exact(d) {
                part.iter_mut().zip(row).for_each(|(p, v)| *p += v);
            }
            want.iter_mut().zip(&part).for_each(|(w, p)| *w += p);
        }
        for _ in 0..20 {
            let got = column_sums(&values, d);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "the sums depend on scheduling"
            );
        }
    }

    #[test]
    fn other_backends_are_handed_back() {
        let dev = Default::default();
        let x = Tensor::<Flex, 2>::random([2, 12], Distribution::Default, &dev);
        let shape = Shape {
            batch: 1,
            seq: 2,
            heads: 2,
            head_dim: 2,
        };
        let handed_back = try_attention(x, shape, &[0.0, 0.0], 1.0, None);
        assert!(handed_back.is_err());
    }
}
