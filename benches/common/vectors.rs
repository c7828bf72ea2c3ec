//! Random unit vectors for the vector benches (`align_bench`,
//! `dense_bench`): a xorshift stream, so every run and every side of a
//! comparison sees the same vectors.

/// `n` unit vectors of `dim` floats, row-major, drawn from the stream
/// `seed` (advanced, so consecutive calls continue it).
pub fn unit_vectors(n: usize, dim: usize, seed: &mut u64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let start = out.len();
        out.extend((0..dim).map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }));
        let row = &mut out[start..];
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    out
}
