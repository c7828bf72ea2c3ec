//! Fused kernels for the encoder on Burn's Flex backend.
//!
//! Between its matrix products the encoder runs a handful of element-wise
//! tails: a bias, GELU, a residual plus layer norm. Burn spells each as
//! several passes over memory (a new tensor per step), and Flex's GELU
//! calls a scalar `erf`. On the CPU those passes cost about as much as the
//! matrix products themselves, so for a plain (not autodiff) f32 Flex
//! tensor the `try_*` functions here do each tail in one parallel pass, in
//! place when the tensor is not shared. Attention (`softmax(q kᵀ · scale +
//! mask) v` per sequence and head) is one kernel as well
//! (`kernels/attention.rs`). For training (`Autodiff<Flex>`), the bias
//! (with or without GELU), residual + layer norm and attention are single
//! ops with their own backward (`kernels/train.rs`). For any other backend
//! or another float type they hand their inputs back untouched (`Err`),
//! and the caller (`encoder.rs`) runs the same maths with Burn's ops —
//! written once, there.
//!
//! `erf` is Abramowitz and Stegun's 7.1.26 (absolute error under 1.5e-7,
//! what PyTorch's vectorised CPU GELU uses) and `exp` a Cephes-style
//! polynomial (relative error about 1e-7); both are branch-free so the
//! compiler vectorises the loops.

use std::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

mod attention;
mod train;

/// Rows handed to one rayon task (at least this many elements).
const CHUNK_ELEMENTS: usize = 16 * 1024;

/// `x` as a `U` when `T` and `U` are the same type.
fn same<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    let taken = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take);
    match (taken, slot) {
        (Some(u), _) => Ok(u),
        (None, Some(x)) => Err(x),
        (None, None) => unreachable!("the slot is only emptied when the types are the same"),
    }
}

/// The tensor as an f32 Flex tensor, contiguous from offset 0, or back
/// unchanged. [`values`] writes it in place, copying first if it is shared.
fn flex_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    let t: Tensor<Flex, D> = same(x)?;
    let prim = t.into_primitive().tensor();
    if prim.dtype() != DType::F32 {
        return Err(back(prim));
    }
    Ok(contiguous(prim))
}

/// The tensor contiguous from offset 0 (copied only when it is not).
fn contiguous(prim: FlexTensor) -> FlexTensor {
    if prim.layout().start_offset() == 0 && prim.layout().contiguous_offsets().is_some() {
        prim
    } else {
        prim.to_contiguous()
    }
}

/// A Flex tensor back as a `Tensor<B, D>` (`B` is Flex whenever one exists).
fn back<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    let tensor = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(t));
    match same::<Tensor<Flex, D>, Tensor<B, D>>(tensor) {
        Ok(t) => t,
        Err(_) => unreachable!("back() is only called on tensors that came from B = Flex"),
    }
}

/// The f32 elements of a contiguous tensor, to write (copy-on-write: a
/// tensor whose storage is shared is copied first).
fn values(t: &mut FlexTensor) -> &mut [f32] {
    let n = t.layout().shape().num_elements();
    &mut t.storage_mut::<f32>()[..n]
}

/// `x [n, d] + bias [d]`, then GELU (erf) when `then_gelu`; `Err(x)` when
/// the fused path does not apply.
pub fn try_add_bias<B: Backend>(
    x: Tensor<B, 2>,
    bias: &Tensor<B, 1>,
    then_gelu: bool,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let [_, d] = x.dims();
    if bias.dims() != [d] {
        return Err(x);
    }
    let mut t = match flex_f32(x) {
        Ok(t) => t,
        // Training: the same pass, recorded as one op with its backward.
        Err(x) => return train::try_add_bias(x, bias, then_gelu),
    };
    let Some(b) = f32_values(bias) else {
        return Err(back(t));
    };
    bias_rows(values(&mut t), &b, then_gelu);
    Ok(back(t))
}

/// Adds `bias` to every row of `values` (rows of `bias.len()`), then GELU
/// when asked. Not generic, so it is compiled (optimised) here whichever
/// crate calls the generic wrappers.
fn bias_rows(values: &mut [f32], bias: &[f32], then_gelu: bool) {
    let d = bias.len().max(1);
    values
        .par_chunks_mut(rows_per_chunk(d) * d)
        .for_each(|chunk| {
            for row in chunk.chunks_exact_mut(d) {
                if then_gelu {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = gelu(*v + b);
                    }
                } else {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
            }
        });
}

/// Layer norm over the last dimension of `x + residual` (both `[n, d]`)
/// with `gamma`, `beta` (`[d]`); `Err((x, residual))` when the fused path
/// does not apply.
#[allow(clippy::type_complexity)]
pub fn try_add_layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    residual: Tensor<B, 2>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    let [_, d] = x.dims();
    if residual.dims() != x.dims() || gamma.dims() != [d] || beta.dims() != [d] {
        return Err((x, residual));
    }
    let mut t = match flex_f32(x) {
        Ok(t) => t,
        // Training: residual + layer norm recorded as one op.
        Err(x) => return train::try_add_layer_norm(x, residual, gamma, beta, eps as f32),
    };
    let (Some(g), Some(b)) = (f32_values(gamma), f32_values(beta)) else {
        return Err((back(t), residual));
    };
    match flex_f32(residual) {
        Ok(r) => {
            layer_norm_rows(values(&mut t), r.storage::<f32>(), &g, &b, eps as f32);
            Ok(back(t))
        }
        Err(residual) => Err((back(t), residual)),
    }
}

/// `values[r] = norm(values[r] + residual[r]) · gamma + beta` per row.
fn layer_norm_rows(values: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = gamma.len().max(1);
    let rows = rows_per_chunk(d);
    values
        .par_chunks_mut(rows * d)
        .zip(residual.par_chunks(rows * d))
        .for_each(|(chunk, res)| {
            for (row, res) in chunk.chunks_exact_mut(d).zip(res.chunks_exact(d)) {
                normalise_row(row, res, eps);
                for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                    *v = *v * g + b;
                }
            }
        });
}

/// `row ← (row + residual − μ) / σ` (μ, σ² of `row + residual`); returns
/// `1/σ`. Layer norm's first half, for inference and training alike.
#[inline(always)]
fn normalise_row(row: &mut [f32], residual: &[f32], eps: f32) -> f32 {
    for (v, r) in row.iter_mut().zip(residual) {
        *v += r;
    }
    let d = row.len().max(1) as f32;
    let mean = sum8(row, |v| v) / d;
    let var = sum8(row, |v| (v - mean) * (v - mean)) / d;
    let inv = 1.0 / (var + eps).sqrt();
    for v in row.iter_mut() {
        *v = (*v - mean) * inv;
    }
    inv
}

/// The element-wise sum of per-chunk partial vectors, in chunk order.
/// rayon's `reduce` would combine them in an order that follows work
/// stealing, and float addition is not associative: training steps would
/// not repeat exactly from one run to the next.
fn sum_in_order(parts: Vec<Vec<f32>>, d: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; d];
    for part in parts {
        sums.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
    }
    sums
}

/// Self-attention's core, `softmax(q kᵀ · scale + mask) v` for each
/// sequence and head ([`attention`]), with `qkv` the fused projection
/// `[batch · seq, 3 · hidden]` (`q`, `k`, `v` side by side) and the context
/// returned as `[batch · seq, hidden]`; `mask` holds `batch · seq`
/// additive values (0 for a real token, a large negative number for
/// padding). `Err(qkv)` when the fused path does not apply.
pub fn try_attention<B: Backend>(
    qkv: Tensor<B, 2>,
    shape: [usize; 3],
    mask: &[f32],
    scale: f32,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    try_attention_dropped(qkv, shape, mask, scale, None)
}

/// [`try_attention`] in training, with `dropout` (`[batch, heads, seq,
/// seq]`, 0 or `1 / (1 − p)` per attention probability) applied to the
/// probabilities in the forward and in the backward. Only the recorded
/// (autodiff) path takes a mask; `Err(qkv)` otherwise.
pub fn try_attention_dropped<B: Backend>(
    qkv: Tensor<B, 2>,
    [batch, seq, heads]: [usize; 3],
    mask: &[f32],
    scale: f32,
    dropout: Option<Vec<f32>>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let [n, width] = qkv.dims();
    let fits = n == batch * seq
        && heads > 0
        && width % (3 * heads) == 0
        && mask.len() == n
        && dropout
            .as_ref()
            .is_none_or(|d| d.len() == batch * heads * seq * seq);
    if !fits {
        return Err(qkv);
    }
    let shape = attention::Shape {
        batch,
        seq,
        heads,
        head_dim: width / (3 * heads),
    };
    match flex_f32(qkv) {
        Ok(qkv) if dropout.is_none() => Ok(back(attend(shape, &qkv, mask, scale, None, None))),
        Ok(qkv) => Err(back(qkv)),
        // Training: the same kernel, recorded as one op with its backward.
        Err(qkv) => train::try_attention(qkv, shape, mask, scale, dropout),
    }
}

/// [`attention::forward`] on a contiguous f32 `qkv`, the context as a
/// `[batch · seq, hidden]` tensor; the probabilities are kept in
/// `probabilities` when given.
fn attend(
    shape: attention::Shape,
    qkv: &FlexTensor,
    mask: &[f32],
    scale: f32,
    probabilities: Option<&mut [f32]>,
    dropout: Option<&[f32]>,
) -> FlexTensor {
    let n = shape.inputs();
    let context = attention::forward(
        shape,
        &qkv.storage::<f32>()[..n],
        mask,
        scale,
        probabilities,
        dropout,
    );
    let rows = shape.batch * shape.seq;
    FlexTensor::from_data(TensorData::new(
        context,
        [rows, shape.states() / rows.max(1)],
    ))
}

/// A small vector's values (a bias, a norm's scale), when it is f32 Flex.
fn f32_values<B: Backend>(v: &Tensor<B, 1>) -> Option<Vec<f32>> {
    let t: Tensor<Flex, 1> = same(v.clone()).ok()?;
    let prim = t.into_primitive().tensor();
    if prim.dtype() != DType::F32 {
        return None;
    }
    prim.into_data().into_vec::<f32>().ok()
}

fn rows_per_chunk(d: usize) -> usize {
    CHUNK_ELEMENTS.div_ceil(d.max(1))
}

/// GELU with the exact (erf) form: `x/2 · (1 + erf(x/√2))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf, Abramowitz and Stegun 7.1.26 (absolute error < 1.5e-7). Written
/// with bit operations instead of `abs`/`copysign` calls so loops over it
/// vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const SIGN: u32 = 0x8000_0000;
    let a = f32::from_bits(x.to_bits() & !SIGN);
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_72) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    f32::from_bits(y.to_bits() | (x.to_bits() & SIGN))
}

/// e^x for x ≤ 88 (0 below -87): Cephes' polynomial after range reduction
/// by ln 2. Branch-free and without float-to-int casts (rounding and 2^n
/// come from the 2^23 mantissa trick), so loops over it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const MANTISSA: f32 = 8_388_608.0; // 2^23: 2^23 + k has k in its mantissa
    let keep = 0u32.wrapping_sub(u32::from(x >= -87.0));
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    // n + 127 is an integer in [1, 254]: the exponent bits of 2^n.
    let biased = (n + (127.0 + MANTISSA)).to_bits() & 0xff;
    let y = p * f32::from_bits(biased << 23);
    f32::from_bits(y.to_bits() & keep)
}

/// Sum of a row in 8 independent lanes (a vectorisable reduction).
/// Element `i` always goes to lane `i % 8`, the tail too, so zeros
/// appended to a row leave its sum's bits unchanged: a softmax row does
/// not depend on how far its batch is padded.
#[inline(always)]
fn sum8(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += f(v);
    }
    acc.iter().sum::<f32>()
}

/// Maximum of a row in 8 independent lanes.
#[inline(always)]
fn max8(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;
    use burn::tensor::activation::gelu;

    fn max_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
        let a = a.into_data().into_vec::<f32>().expect("f32");
        let b = b.into_data().into_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn exp_and_erf_match_the_standard_library() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let want = x.exp();
            assert!((exp(x) - want).abs() <= want * 4e-7, "exp({x})");
            let erf_want = libm_erf(x);
            let tolerance = if x.abs() > 3.0 { 2e-5 } else { 5e-7 };
            assert!((erf(x) - erf_want).abs() < tolerance, "erf({x})");
        }
        assert_eq!(exp(-200.0), 0.0);
    }

    /// erf by its Taylor series in f64, as a reference (to |x| ≤ 3).
    fn libm_erf(x: f32) -> f32 {
        let x = f64::from(x);
        // Series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)), fine to |x| ≤ 3.
        if x.abs() > 3.0 {
            // 1 - erfc(x), erfc(3) = 2.2e-5: the series cancels too badly here.
            return (1.0 - 1e-5f64).copysign(x) as f32;
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
    }

    #[test]
    fn fused_kernels_match_burn_ops_on_flex() {
        let dev = Default::default();
        let x = Tensor::<Cpu, 2>::random([37, 48], Distribution::Normal(0.0, 3.0), &dev);
        let r = Tensor::<Cpu, 2>::random([37, 48], Distribution::Default, &dev);
        let bias = Tensor::<Cpu, 1>::random([48], Distribution::Default, &dev);
        let gamma = Tensor::<Cpu, 1>::random([48], Distribution::Default, &dev);
        let fused = |t: Result<Tensor<Cpu, 2>, Tensor<Cpu, 2>>| t.expect("the fused path");
        let d = max_diff(
            fused(try_add_bias(x.clone(), &bias, false)),
            x.clone() + bias.clone().unsqueeze_dim(0),
        );
        assert!(d < 1e-6, "bias {d}");
        let d = max_diff(
            fused(try_add_bias(x.clone(), &bias, true)),
            gelu(x.clone() + bias.clone().unsqueeze_dim(0)),
        );
        assert!(d < 1e-5, "gelu {d}");
        let want = {
            let y = x.clone() + r.clone();
            let (var, mean) = y.clone().var_mean_bias(1);
            (y - mean) / (var + 1e-12).sqrt() * gamma.clone().unsqueeze_dim(0)
                + bias.clone().unsqueeze_dim(0)
        };
        let got = try_add_layer_norm(x.clone(), r.clone(), &gamma, &bias, 1e-12)
            .map_err(|_| "declined")
            .expect("the fused path");
        let d = max_diff(got, want);
        assert!(d < 1e-5, "layer norm {d}");
        // A view (not contiguous) is copied first.
        let view = x.clone().swap_dims(0, 1);
        let bias37 = Tensor::<Cpu, 1>::random([37], Distribution::Default, &dev);
        let d = max_diff(
            fused(try_add_bias(view.clone(), &bias37, false)),
            view + bias37.clone().unsqueeze_dim(0),
        );
        assert!(d < 1e-6, "view {d}");
        let before = x.clone().into_data();
        let _ = try_add_bias(x.clone(), &bias, false);
        assert_eq!(
            x.clone().into_data(),
            before,
            "a shared input is left as it was"
        );
        // Shapes that do not fit are declined, not misread.
        assert!(try_add_bias(x.clone(), &bias37, false).is_err());
        let r_short = Tensor::<Cpu, 2>::random([36, 48], Distribution::Default, &dev);
        assert!(try_add_layer_norm(x, r_short, &gamma, &bias, 1e-12).is_err());
    }

    /// `batch · seq` additive mask values: sequence `i` has `i` padding
    /// positions at its end.
    fn padding_mask(b: usize, s: usize) -> Vec<f32> {
        (0..b * s)
            .map(|k| if k % s < s - k / s { 0.0 } else { -1e9 })
            .collect()
    }

    #[test]
    fn attention_matches_burn_ops_and_ignores_padding() {
        let dev = Default::default();
        let (b, s, heads, dh) = (3, 5, 2, 4);
        let h = heads * dh;
        let qkv = Tensor::<Cpu, 2>::random([b * s, 3 * h], Distribution::Normal(0.0, 2.0), &dev);
        let mask = padding_mask(b, s);
        let want = crate::encoder::attention(qkv.clone(), [b, s, heads], &mask, 0.3);
        let got = try_attention(qkv.clone(), [b, s, heads], &mask, 0.3).expect("the fused path");
        let d = max_diff(got.clone(), want);
        assert!(d < 1e-5, "attention {d}");
        // A padded key gets no weight: changing its value changes nothing.
        let mut moved = qkv.clone().into_data().into_vec::<f32>().expect("f32");
        let last_row = (2 * s + s - 1) * 3 * h;
        moved[last_row + 2 * h..last_row + 3 * h].fill(1e6);
        let moved = Tensor::<Cpu, 2>::from_data(TensorData::new(moved, [b * s, 3 * h]), &dev);
        let moved = try_attention(moved, [b, s, heads], &mask, 0.3).expect("the fused path");
        assert!(
            max_diff(moved, got) < 1e-5,
            "padding leaked into the context"
        );
        // Shapes that do not fit are declined, not misread.
        assert!(try_attention(qkv.clone(), [b, s, 5], &mask, 0.3).is_err());
        assert!(try_attention(qkv, [b, s, heads], &mask[1..], 0.3).is_err());
    }

    #[test]
    fn autodiff_tensors_get_fused_ops_with_their_own_backward() {
        type Ad = Autodiff<Cpu>;
        let dev = Default::default();
        let x = Tensor::<Ad, 2>::random([4, 6], Distribution::Default, &dev);
        let bias = Tensor::<Ad, 1>::random([6], Distribution::Default, &dev);
        // Bias (with or without GELU), layer norm and attention have their
        // own backward there (kernels/train.rs).
        assert!(try_add_bias(x.clone(), &bias, false).is_ok());
        assert!(try_add_layer_norm(x.clone(), x.clone(), &bias, &bias, 1e-12).is_ok());
        assert!(try_add_bias(x.clone(), &bias, true).is_ok());
        let short = Tensor::<Ad, 1>::random([5], Distribution::Default, &dev);
        assert!(try_add_bias(x.clone(), &short, true).is_err());
        let qkv = Tensor::<Ad, 2>::random([2, 12], Distribution::Default, &dev);
        let attend = |mask: &[f32]| try_attention(qkv.clone(), [1, 2, 2], mask, 1.0).is_ok();
        assert!(attend(&[0.0, 0.0]));
        assert!(!attend(&[0.0]));
    }
}
