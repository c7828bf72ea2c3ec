//! Multi-head self-attention as one kernel: `softmax(q kᵀ · scale + mask) v`
//! per sequence and head, read and written in the projections' own layout.
//!
//! Burn spells attention as a reshape of `q`, `k`, `v` to
//! `[batch, heads, seq, head_dim]` (a strided view), a batched matrix
//! product that first copies each operand into contiguous memory, the
//! softmax, another product and a copy back to `[batch · seq, hidden]`.
//! Those copies ran on one thread and, with their page faults, were a
//! quarter of a training step. Here each sequence is one rayon task: its
//! heads' products run on strided views of `q`, `k` and `v` (one head is
//! `seq × head_dim` with a row stride of `hidden`), through ndarray's
//! matrixmultiply, and the context is written straight into its columns.
//!
//! The backward (`kernels/train.rs` records it) uses the saved
//! probabilities `p`: `dv = pᵀ g`, `dp = g vᵀ`,
//! `ds = scale · p ⊙ (dp − Σ_row dp ⊙ p)`, `dq = ds k`, `dk = dsᵀ q`.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::{exp, max8, sum8};

/// The sizes of one attention call; `q`, `k`, `v` and the context are
/// `[batch · seq, heads · head_dim]`, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Shape {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of `q` (and `k`, `v`, the context).
    pub fn states(&self) -> usize {
        self.batch * self.seq * self.hidden()
    }

    /// Elements of the probabilities, `[batch, heads, seq, seq]`.
    pub fn probabilities(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }

    /// Head `h` of one sequence's rows (`[seq, hidden]`) as a
    /// `seq × head_dim` view.
    fn head<'a>(&self, rows: &'a [f32], h: usize) -> ArrayView2<'a, f32> {
        let (s, d) = (self.seq, self.head_dim);
        ArrayView2::from_shape((s, d).strides((self.hidden(), 1)), &rows[h * d..])
            .expect("the caller checked the lengths against the shape")
    }

    fn head_mut<'a>(&self, rows: &'a mut [f32], h: usize) -> ArrayViewMut2<'a, f32> {
        let (s, d) = (self.seq, self.head_dim);
        ArrayViewMut2::from_shape((s, d).strides((self.hidden(), 1)), &mut rows[h * d..])
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
pub(super) fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
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
pub(super) fn softmax_backward_row(y: &[f32], g: &mut [f32], scale: f32) {
    let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
    for (g, y) in g.iter_mut().zip(y) {
        *g = scale * y * (*g - dot);
    }
}

/// The context `[batch · seq, hidden]` of `q`, `k`, `v`; `mask` holds
/// `batch · seq` additive values (0 for a real token, a large negative
/// number for padding). When `probabilities` is given (`[batch, heads,
/// seq, seq]`), the softmax outputs are kept there for the backward.
pub(super) fn forward(
    shape: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    scale: f32,
    probabilities: Option<&mut [f32]>,
) -> Vec<f32> {
    let (s, rows) = (shape.seq, shape.seq * shape.hidden());
    let mut context = vec![0.0f32; shape.states()];
    let sequences = context
        .par_chunks_mut(rows)
        .zip(q.par_chunks(rows).zip(k.par_chunks(rows)))
        .zip(v.par_chunks(rows).zip(mask.par_chunks(s)));
    let head = |h: usize,
                p: &mut [f32],
                out: &mut [f32],
                q: &[f32],
                k: &[f32],
                v: &[f32],
                mask: &[f32]| {
        general_mat_mul(
            1.0,
            &shape.head(q, h),
            &shape.head(k, h).t(),
            0.0,
            &mut shape.square_mut(p),
        );
        for row in p.chunks_exact_mut(s) {
            softmax_row(row, mask, scale);
        }
        general_mat_mul(
            1.0,
            &shape.square(p),
            &shape.head(v, h),
            0.0,
            &mut shape.head_mut(out, h),
        );
    };
    match probabilities {
        Some(kept) => sequences
            .zip(kept.par_chunks_mut(shape.heads * s * s))
            .for_each(|(((out, (q, k)), (v, mask)), kept)| {
                for (h, p) in kept.chunks_exact_mut(s * s).enumerate() {
                    head(h, p, out, q, k, v, mask);
                }
            }),
        // Inference: one `seq × seq` scratch per task, reused by each head.
        None => sequences.for_each_init(
            || vec![0.0f32; s * s],
            |p, ((out, (q, k)), (v, mask))| {
                for h in 0..shape.heads {
                    head(h, p, out, q, k, v, mask);
                }
            },
        ),
    }
    context
}

/// Gradients of `q`, `k`, `v` from the context's gradient `g` and the
/// saved `probabilities`.
pub(super) fn backward(
    shape: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probabilities: &[f32],
    g: &[f32],
    scale: f32,
) -> [Vec<f32>; 3] {
    let (s, rows) = (shape.seq, shape.seq * shape.hidden());
    let per_sequence = shape.heads * s * s;
    let zeros = || vec![0.0f32; shape.states()];
    let (mut dq, mut dk, mut dv) = (zeros(), zeros(), zeros());
    dq.par_chunks_mut(rows)
        .zip(dk.par_chunks_mut(rows).zip(dv.par_chunks_mut(rows)))
        .zip(q.par_chunks(rows).zip(k.par_chunks(rows)))
        .zip(v.par_chunks(rows).zip(g.par_chunks(rows)))
        .zip(probabilities.par_chunks(per_sequence))
        .for_each(|((((dq, (dk, dv)), (q, k)), (v, g)), p)| {
            let mut d_scores = vec![0.0f32; s * s];
            for (h, p) in p.chunks_exact(s * s).enumerate() {
                let (probs, g_h) = (shape.square(p), shape.head(g, h));
                general_mat_mul(1.0, &probs.t(), &g_h, 0.0, &mut shape.head_mut(dv, h));
                let mut ds = shape.square_mut(&mut d_scores);
                general_mat_mul(1.0, &g_h, &shape.head(v, h).t(), 0.0, &mut ds);
                for (y, row) in p.chunks_exact(s).zip(d_scores.chunks_exact_mut(s)) {
                    softmax_backward_row(y, row, scale);
                }
                let ds = shape.square(&d_scores);
                general_mat_mul(1.0, &ds, &shape.head(k, h), 0.0, &mut shape.head_mut(dq, h));
                general_mat_mul(
                    1.0,
                    &ds.t(),
                    &shape.head(q, h),
                    0.0,
                    &mut shape.head_mut(dk, h),
                );
            }
        });
    [dq, dk, dv]
}
