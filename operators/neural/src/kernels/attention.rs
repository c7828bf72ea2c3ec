//! Multi-head self-attention as one kernel: `softmax(q kᵀ · scale + mask) v`
//! per sequence and head, read and written in the projections' own layout.
//!
//! Burn spells attention as a reshape of `q`, `k`, `v` to
//! `[batch, heads, seq, head_dim]` (a strided view), a batched matrix
//! product that first copies each operand into contiguous memory, the
//! softmax, another product and a copy back to `[batch · seq, hidden]`.
//! Those copies ran on one thread and, with their page faults, were a
//! quarter of a training step. Here each sequence is one rayon task: its
//! heads' products run on strided views of the fused projection `qkv`
//! (`[batch · seq, 3 · hidden]`, `q`, `k`, `v` side by side, one product
//! of the encoder), through ndarray's matrixmultiply, and the context is
//! written straight into its columns.
//!
//! The backward (`kernels/train.rs` records it) uses the saved
//! probabilities `p`: `dv = pᵀ g`, `dp = g vᵀ`,
//! `ds = scale · p ⊙ (dp − Σ_row dp ⊙ p)`, `dq = ds k`, `dk = dsᵀ q`,
//! written side by side into `dqkv` like the input.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::{exp, max8, sum8};

/// The sizes of one attention call. The input `qkv` is `[batch · seq,
/// 3 · hidden]` (`q`, `k`, `v` side by side in each row) and the context
/// `[batch · seq, hidden]`, both row-major, with `hidden = heads ·
/// head_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// Which third of a `qkv` row.
#[derive(Debug, Clone, Copy)]
enum Part {
    Q = 0,
    K = 1,
    V = 2,
}

impl Shape {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of the context.
    pub fn states(&self) -> usize {
        self.batch * self.seq * self.hidden()
    }

    /// Elements of `qkv` (and of its gradient).
    pub fn inputs(&self) -> usize {
        3 * self.states()
    }

    /// Elements of the probabilities, `[batch, heads, seq, seq]`.
    pub fn probabilities(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }

    /// Where head `h` of `part` starts in a `qkv` row, and the row stride.
    fn input_at(&self, part: Part, h: usize) -> (usize, usize) {
        (
            part as usize * self.hidden() + h * self.head_dim,
            3 * self.hidden(),
        )
    }

    /// Where head `h` starts in a context row, and the row stride.
    fn context_at(&self, h: usize) -> (usize, usize) {
        (h * self.head_dim, self.hidden())
    }

    /// One sequence's `seq × head_dim` block at `(start, stride)` of its
    /// rows.
    fn head<'a>(&self, rows: &'a [f32], (start, stride): (usize, usize)) -> ArrayView2<'a, f32> {
        let (s, d) = (self.seq, self.head_dim);
        ArrayView2::from_shape((s, d).strides((stride, 1)), &rows[start..])
            .expect("the caller checked the lengths against the shape")
    }

    fn head_mut<'a>(
        &self,
        rows: &'a mut [f32],
        (start, stride): (usize, usize),
    ) -> ArrayViewMut2<'a, f32> {
        let (s, d) = (self.seq, self.head_dim);
        ArrayViewMut2::from_shape((s, d).strides((stride, 1)), &mut rows[start..])
            .expect("the caller checked the lengths against the shape")
    }

    fn square<'a>(&self, values: &'a [f32]) -> ArrayView2<'a, f32> {
        ArrayView2::from_shape((self.seq, self.seq), values)
            .expect("the caller checked the lengths against the shape")
    }

    fn square_mut<'a>(&self, values: &'a mut [f32]) -> ArrayViewMut2<'a, f32> {
        ArrayViewMut2::from_shape((self.seq, self.seq), values)
            .expect("the caller checked the lengths against the shape")
    }
}

/// `softmax(row · scale + mask)` in place.
fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
    for (v, m) in row.iter_mut().zip(mask) {
        *v = *v * scale + m;
    }
    let max = max8(row);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum8(row, |v| v);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `g ← scale · y ⊙ (g − Σ g ⊙ y)`: the softmax's backward for one row of
/// outputs `y` and output gradients `g`.
fn softmax_backward_row(y: &[f32], g: &mut [f32], scale: f32) {
    let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
    for (g, y) in g.iter_mut().zip(y) {
        *g = scale * y * (*g - dot);
    }
}

/// The context `[batch · seq, hidden]` of `qkv`; `mask` holds
/// `batch · seq` additive values (0 for a real token, a large negative
/// number for padding). When `probabilities` is given (`[batch, heads,
/// seq, seq]`), the softmax outputs are kept there for the backward, and
/// `dropout` (the same shape: 0 or `1 / (1 − p)` per probability), when
/// given, multiplies the probabilities before they weight the values.
pub(super) fn forward(
    shape: Shape,
    qkv: &[f32],
    mask: &[f32],
    scale: f32,
    probabilities: Option<&mut [f32]>,
    dropout: Option<&[f32]>,
) -> Vec<f32> {
    let s = shape.seq;
    let mut context = vec![0.0f32; shape.states()];
    let sequences = context
        .par_chunks_mut(s * shape.hidden())
        .zip(qkv.par_chunks(3 * s * shape.hidden()))
        .zip(mask.par_chunks(s));
    let head = |h: usize,
                p: &mut [f32],
                out: &mut [f32],
                qkv: &[f32],
                mask: &[f32],
                drop: Option<&[f32]>| {
        let q = shape.head(qkv, shape.input_at(Part::Q, h));
        let k = shape.head(qkv, shape.input_at(Part::K, h));
        general_mat_mul(1.0, &q, &k.t(), 0.0, &mut shape.square_mut(p));
        for row in p.chunks_exact_mut(s) {
            softmax_row(row, mask, scale);
        }
        let v = shape.head(qkv, shape.input_at(Part::V, h));
        let mut out = shape.head_mut(out, shape.context_at(h));
        match drop {
            Some(m) => {
                let dropped: Vec<f32> = p.iter().zip(m).map(|(p, m)| p * m).collect();
                general_mat_mul(1.0, &shape.square(&dropped), &v, 0.0, &mut out);
            }
            None => general_mat_mul(1.0, &shape.square(p), &v, 0.0, &mut out),
        }
    };
    let per_sequence = shape.heads * s * s;
    match probabilities {
        Some(kept) => sequences
            .zip(kept.par_chunks_mut(per_sequence))
            .enumerate()
            .for_each(|(i, (((out, qkv), mask), kept))| {
                let drop = dropout.map(|d| &d[i * per_sequence..(i + 1) * per_sequence]);
                for (h, p) in kept.chunks_exact_mut(s * s).enumerate() {
                    let drop_h = drop.map(|d| &d[h * s * s..(h + 1) * s * s]);
                    head(h, p, out, qkv, mask, drop_h);
                }
            }),
        // Inference: one `seq × seq` scratch per task, reused by each head.
        None => sequences.for_each_init(
            || vec![0.0f32; s * s],
            |p, ((out, qkv), mask)| {
                for h in 0..shape.heads {
                    head(h, p, out, qkv, mask, None);
                }
            },
        ),
    }
    context
}

/// The gradient of `qkv` (`[batch · seq, 3 · hidden]`, like the input)
/// from the context's gradient `g`, the saved `probabilities` and the
/// forward's `dropout` mask.
pub(super) fn backward(
    shape: Shape,
    qkv: &[f32],
    probabilities: &[f32],
    g: &[f32],
    scale: f32,
    dropout: Option<&[f32]>,
) -> Vec<f32> {
    let s = shape.seq;
    let mut d_qkv = vec![0.0f32; shape.inputs()];
    d_qkv
        .par_chunks_mut(3 * s * shape.hidden())
        .zip(qkv.par_chunks(3 * s * shape.hidden()))
        .zip(g.par_chunks(s * shape.hidden()))
        .zip(probabilities.par_chunks(shape.heads * s * s))
        .enumerate()
        .for_each(|(i, (((d_qkv, qkv), g), p))| {
            let per_sequence = shape.heads * s * s;
            let drop = dropout.map(|d| &d[i * per_sequence..(i + 1) * per_sequence]);
            let mut d_scores = vec![0.0f32; s * s];
            for (h, p) in p.chunks_exact(s * s).enumerate() {
                let drop_h = drop.map(|d| &d[h * s * s..(h + 1) * s * s]);
                let (q_at, k_at, v_at) = (
                    shape.input_at(Part::Q, h),
                    shape.input_at(Part::K, h),
                    shape.input_at(Part::V, h),
                );
                let g_h = shape.head(g, shape.context_at(h));
                // The values were weighted by the dropped probabilities.
                let dropped: Option<Vec<f32>> =
                    drop_h.map(|m| p.iter().zip(m).map(|(p, m)| p * m).collect());
                let weights = shape.square(dropped.as_deref().unwrap_or(p));
                general_mat_mul(
                    1.0,
                    &weights.t(),
                    &g_h,
                    0.0,
                    &mut shape.head_mut(d_qkv, v_at),
                );
                let v = shape.head(qkv, v_at);
                general_mat_mul(1.0, &g_h, &v.t(), 0.0, &mut shape.square_mut(&mut d_scores));
                if let Some(m) = drop_h {
                    for (d, m) in d_scores.iter_mut().zip(m) {
                        *d *= m;
                    }
                }
                for (y, row) in p.chunks_exact(s).zip(d_scores.chunks_exact_mut(s)) {
                    softmax_backward_row(y, row, scale);
                }
                let ds = shape.square(&d_scores);
                let (q, k) = (shape.head(qkv, q_at), shape.head(qkv, k_at));
                general_mat_mul(1.0, &ds, &k, 0.0, &mut shape.head_mut(d_qkv, q_at));
                general_mat_mul(1.0, &ds.t(), &q, 0.0, &mut shape.head_mut(d_qkv, k_at));
            }
        });
    d_qkv
}
