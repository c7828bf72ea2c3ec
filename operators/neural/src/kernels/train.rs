//! Fused ops with their own backward for training on `Autodiff<Flex>`.
//!
//! **Bias + GELU** (the feed-forward block's first half): Burn records the
//! bias add and GELU as two ops, and Flex's GELU and its backward call a
//! scalar `erf` and `exp` per element. Here the forward is one pass that
//! keeps the pre-activation `z = x + b`, and the backward one pass,
//! `dz = g ⊙ GELU'(z)` (with the vectorisable `erf`/`exp` of the inference
//! kernels), whose column sums are the bias gradient.
//!
//! **Residual + layer norm**: Burn records the add, mean, variance,
//! centring, division, scale and shift as separate ops over the hidden
//! states. Here the forward is one pass that keeps the normalised rows `x̂`
//! and each row's `1/σ`, and the backward one pass per row:
//! `du = (1/σ)(ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = g ⊙ γ`, the same
//! `du` for the input and the residual, and `Σ g ⊙ x̂`, `Σ g` for γ and β.
//!
//! **Masked softmax** (attention):
//! Under autodiff every Burn op records a node and keeps what its backward
//! needs, so the scaled, masked softmax (scale, add the mask,
//! subtract the row maximum, exp, sum, divide) is six forward passes over
//! the largest tensor of the step (batch × heads × length²) and more
//! backward, each into freshly allocated memory. Here it is one op: the
//! forward is the inference kernel's single pass, and the backward is one
//! pass too, from the saved output: `dx = scale · y ⊙ (g − Σ g ⊙ y)` per
//! row (the mask is a constant and gets no gradient).

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

use super::{
    add_vectors, contiguous, erf, exp, gelu, normalise_row, rows_per_chunk, same, softmax_rows,
    values,
};

/// The training backend these ops apply to.
type Ad = Autodiff<Flex>;

/// [`super::try_masked_softmax`] for an `Autodiff<Flex>` tensor: the
/// softmax as one recorded op; `Err(scores)` for any other backend.
pub(super) fn try_masked_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f32,
    mask: &[f32],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let t: Tensor<Ad, 4> = same(scores)?;
    let [_, heads, rows, s] = t.dims();
    let x = t.into_primitive().tensor();
    if x.primitive.dtype() != DType::F32 {
        return Err(back(x));
    }
    let node = x.node.clone();
    let mut y = contiguous(x.primitive);
    softmax_rows(values(&mut y), mask, heads * rows, s, scale);
    let out = match (MaskedSoftmax { scale, s })
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(back(out))
}

/// [`super::try_add_bias`] with GELU for an `Autodiff<Flex>` tensor:
/// `gelu(x + bias)` as one recorded op; `Err(x)` for any other backend.
pub(super) fn try_add_bias_gelu<B: Backend>(
    x: Tensor<B, 2>,
    bias: &Tensor<B, 1>,
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
    values
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
        .reduce(|| vec![0.0f32; d], add_vectors)
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
    g.par_chunks_mut(rows * d)
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
        .reduce(zeros, |(a, b), (c, e)| {
            (add_vectors(a, c), add_vectors(b, e))
        })
}

/// An autodiff primitive back as a `Tensor<B, D>` (`B` is `Ad` here).
fn back<B: Backend, const D: usize>(t: FloatTensor<Ad>) -> Tensor<B, D> {
    let tensor = Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(t));
    match same::<Tensor<Ad, D>, Tensor<B, D>>(tensor) {
        Ok(t) => t,
        Err(_) => unreachable!("only called on tensors that came from B = Autodiff<Flex>"),
    }
}

/// The backward of the fused softmax; its state is the output `y`.
#[derive(Debug)]
struct MaskedSoftmax {
    scale: f32,
    s: usize,
}

impl Backward<Flex, 1> for MaskedSoftmax {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = contiguous(ops.state);
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let mut g = contiguous(grad);
            let n = y.layout().shape().num_elements();
            softmax_backward_rows(&y.storage::<f32>()[..n], values(&mut g), self.s, self.scale);
            g
        });
    }
}

/// `g ← scale · y ⊙ (g − Σ_row g ⊙ y)`, rows of `s` values.
fn softmax_backward_rows(y: &[f32], g: &mut [f32], s: usize, scale: f32) {
    let s = s.max(1);
    let rows = rows_per_chunk(s);
    g.par_chunks_mut(rows * s)
        .zip(y.par_chunks(rows * s))
        .for_each(|(g, y)| {
            for (g, y) in g.chunks_exact_mut(s).zip(y.chunks_exact(s)) {
                let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
                for (g, y) in g.iter_mut().zip(y) {
                    *g = scale * y * (*g - dot);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::activation::softmax;

    fn max_diff<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn fused_softmax_has_burns_forward_and_gradient() {
        let dev = Default::default();
        let (b, h, s) = (2, 3, 5);
        let x = Tensor::<Flex, 4>::random([b, h, s, s], Distribution::Default, &dev);
        let upstream = Tensor::<Flex, 4>::random([b, h, s, s], Distribution::Default, &dev);
        // The second sequence has two padding positions.
        let mask: Vec<f32> = (0..b * s)
            .map(|k| if k >= 2 * s - 2 { -1e9 } else { 0.0 })
            .collect();
        let bias =
            Tensor::<Ad, 2>::from_data(burn::tensor::TensorData::new(mask.clone(), [b, s]), &dev)
                .reshape([b, 1, 1, s]);
        let scale = 0.4;

        let run = |fused: bool| {
            let x = Tensor::<Ad, 4>::from_inner(x.clone()).require_grad();
            let y = if fused {
                try_masked_softmax(x.clone(), scale, &mask).expect("autodiff Flex is fused")
            } else {
                softmax(x.clone() * scale + bias.clone(), 3)
            };
            let grads = (y.clone() * Tensor::from_inner(upstream.clone()))
                .sum()
                .backward();
            let dx = x.grad(&grads).expect("x has a gradient");
            (y.inner(), dx)
        };
        let (y_fused, dx_fused) = run(true);
        let (y_burn, dx_burn) = run(false);
        assert!(max_diff(y_fused, y_burn) < 1e-6);
        let d = max_diff(dx_fused, dx_burn);
        assert!(d < 1e-5, "gradient differs by {d}");
    }

    #[test]
    fn fused_bias_gelu_has_burns_forward_and_gradients() {
        let dev = Default::default();
        let (n, d) = (7, 6);
        let x = Tensor::<Flex, 2>::random([n, d], Distribution::Normal(0.0, 2.0), &dev);
        let b = Tensor::<Flex, 1>::random([d], Distribution::Default, &dev);
        let upstream = Tensor::<Flex, 2>::random([n, d], Distribution::Default, &dev);
        let run = |fused: bool| {
            let x = Tensor::<Ad, 2>::from_inner(x.clone()).require_grad();
            let b = Tensor::<Ad, 1>::from_inner(b.clone()).require_grad();
            let y = if fused {
                try_add_bias_gelu(x.clone(), &b).expect("autodiff Flex is fused")
            } else {
                burn::tensor::activation::gelu(x.clone() + b.clone().unsqueeze())
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
        assert!(max_diff(y_fused, y_burn) < 1e-5);
        assert!(max_diff(dx_fused, dx_burn) < 1e-5);
        assert!(max_diff(db_fused, db_burn) < 1e-5);
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

    #[test]
    fn other_backends_are_handed_back() {
        let dev = Default::default();
        let x = Tensor::<Flex, 4>::random([1, 1, 2, 2], Distribution::Default, &dev);
        assert!(try_masked_softmax(x, 1.0, &[0.0, 0.0]).is_err());
    }
}
