//! Exact dense retrieval: the `k` corpus rows with the largest dot product
//! (the cosine, for normalised vectors) for each query. Queries go in
//! blocks of [`QUERY_BLOCK`] (in parallel), the corpus in tiles of
//! [`CORPUS_TILE`] rows through ndarray's matrix product, and each query
//! keeps a running top `k`, so memory is one tile of scores per thread
//! (16 MB), not queries × corpus, and the vectors are read in place.

use ndarray::ArrayView2;
use rayon::prelude::*;

/// Queries per block (one block per rayon task).
pub const QUERY_BLOCK: usize = 256;
/// Corpus rows per tile.
pub const CORPUS_TILE: usize = 16_384;

/// A query's best corpus rows: (row, score), best first.
pub type Hits = Vec<(usize, f32)>;

/// Vectors that do not split into rows of the given dimension.
#[derive(Debug, thiserror::Error)]
#[error("vectors of {queries} and {corpus} floats do not split into rows of {dim}")]
pub struct ShapeError {
    /// Floats in the queries.
    pub queries: usize,
    /// Floats in the corpus.
    pub corpus: usize,
    /// The dimension asked for.
    pub dim: usize,
}

/// Keeps the `k` best of `hits` (unordered).
fn keep_best(hits: &mut Hits, k: usize) {
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        hits.truncate(k);
    }
}

/// The top `k` corpus rows of each query, best first (ties: lower row
/// first). `queries` and `corpus` are row-major with `dim` columns.
pub fn top_k(
    queries: &[f32],
    corpus: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Hits>, ShapeError> {
    let shape_error = || ShapeError {
        queries: queries.len(),
        corpus: corpus.len(),
        dim,
    };
    if dim == 0 || !queries.len().is_multiple_of(dim) || !corpus.len().is_multiple_of(dim) {
        return Err(shape_error());
    }
    let (nq, nc) = (queries.len() / dim, corpus.len() / dim);
    if k == 0 || nc == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    let blocks: Vec<Vec<Hits>> = queries
        .par_chunks(QUERY_BLOCK * dim)
        .map(|block| {
            let rows = block.len() / dim;
            let q = ArrayView2::from_shape((rows, dim), block).map_err(|_| shape_error())?;
            let mut best: Vec<Hits> = vec![Vec::with_capacity(2 * k); rows];
            for (t, tile) in corpus.chunks(CORPUS_TILE * dim).enumerate() {
                let offset = t * CORPUS_TILE;
                let c = ArrayView2::from_shape((tile.len() / dim, dim), tile)
                    .map_err(|_| shape_error())?;
                let scores = q.dot(&c.t());
                for (hits, row) in best.iter_mut().zip(scores.rows()) {
                    hits.extend(row.iter().enumerate().map(|(j, &s)| (offset + j, s)));
                    keep_best(hits, k);
                }
            }
            for hits in &mut best {
                hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            }
            Ok(best)
        })
        .collect::<Result<_, ShapeError>>()?;
    Ok(blocks.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top k by sorting every score: what `top_k` must equal.
    fn brute(queries: &[f32], corpus: &[f32], dim: usize, k: usize) -> Vec<Hits> {
        queries
            .chunks(dim)
            .map(|q| {
                let mut all: Hits = corpus
                    .chunks(dim)
                    .enumerate()
                    .map(|(j, c)| (j, q.iter().zip(c).map(|(a, b)| a * b).sum()))
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(k);
                all
            })
            .collect()
    }

    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        (0..n * dim)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn equals_brute_force_across_blocks_and_tiles() {
        let dim = 8;
        // More queries than a block and more rows than a tile.
        let queries = vectors(QUERY_BLOCK + 3, dim, 1);
        let corpus = vectors(CORPUS_TILE + 500, dim, 2);
        let got = top_k(&queries, &corpus, dim, 10).expect("top_k");
        let want = brute(&queries, &corpus, dim, 10);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            let gi: Vec<usize> = g.iter().map(|h| h.0).collect();
            let wi: Vec<usize> = w.iter().map(|h| h.0).collect();
            assert_eq!(gi, wi);
            for (a, b) in g.iter().zip(w) {
                assert!((a.1 - b.1).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn small_corpus_and_bad_shapes() {
        let got = top_k(&[1.0, 0.0], &[0.0, 1.0, 1.0, 0.0], 2, 5).expect("top_k");
        assert_eq!(got, vec![vec![(1, 1.0), (0, 0.0)]]);
        assert_eq!(top_k(&[1.0], &[], 1, 3).expect("empty"), vec![Vec::new()]);
        assert!(top_k(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2, 1).is_err());
    }
}
