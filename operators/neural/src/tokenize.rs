//! Tokenisation with the `tokenizers` crate from a `tokenizer.json`:
//! truncation to `max_length`, no fixed padding (each batch is padded to
//! its longest sequence), batches of similar lengths, and pair encoding
//! through the tokenizer's own post-processor (`[CLS] q [SEP] a [SEP]` for
//! BERT, `<s> q </s></s> a </s>` for XLM-R).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use crate::encoder::TokenBatch;
use crate::error::NeuralError;

/// A loaded tokenizer with our truncation and padding policy.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    max_length: usize,
}

/// One encoded input.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl TextTokenizer {
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self, NeuralError> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| {
            NeuralError::tokenizer(format!("cannot load the tokenizer {}", path.display()), e)
        })?;
        // Padding is ours (per batch); truncation is the caller's length.
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_length.max(2),
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| NeuralError::tokenizer(path.display(), e))?;
        let pad_id = ["<pad>", "[PAD]"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .unwrap_or(0);
        Ok(Self {
            inner,
            pad_id,
            max_length: max_length.max(2),
        })
    }

    /// Inputs are truncated to this many tokens.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids it can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes one text with special tokens.
    pub fn encode(&self, text: &str) -> Result<Encoded, NeuralError> {
        let e = self
            .inner
            .encode(text, true)
            .map_err(|e| NeuralError::tokenizer("tokenizing", e))?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
        })
    }

    /// Encodes a (query, document) pair with the tokenizer's template.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<Encoded, NeuralError> {
        let e = self
            .inner
            .encode((first, second), true)
            .map_err(|e| NeuralError::tokenizer("tokenizing", e))?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
        })
    }
}

/// Pads encoded inputs to the longest of them.
pub fn pad(items: &[&Encoded], pad_id: u32) -> TokenBatch {
    let seq = items.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
    let batch = items.len();
    let mut t = TokenBatch {
        ids: vec![pad_id; batch * seq],
        type_ids: vec![0; batch * seq],
        mask: vec![0; batch * seq],
        batch,
        seq,
    };
    for (r, e) in items.iter().enumerate() {
        for (c, (&id, &ty)) in e.ids.iter().zip(&e.type_ids).enumerate() {
            t.ids[r * seq + c] = id;
            t.type_ids[r * seq + c] = ty;
            t.mask[r * seq + c] = 1;
        }
    }
    t
}

/// Indexes of `lengths` grouped into batches of at most `batch_size`,
/// longest first, so that each batch pads as little as possible.
pub fn length_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Indexes of `lengths` grouped for one forward pass each, longest first:
/// a group closes once its padded size (members × its longest) reaches
/// `tokens`. A training batch mixes short questions with long answers;
/// padded as one batch, every text would cost as much as the longest.
/// Grouped, a text pads only to the texts of about its length.
pub fn token_groups(lengths: &[usize], tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut groups = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    for i in order {
        group.push(i);
        let longest = group.first().map_or(1, |&g| lengths[g].max(1));
        if group.len() * longest >= tokens {
            groups.push(std::mem::take(&mut group));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_and_masks() {
        let a = Encoded {
            ids: vec![5, 6, 7],
            type_ids: vec![0, 0, 0],
        };
        let b = Encoded {
            ids: vec![5],
            type_ids: vec![0],
        };
        let t = pad(&[&a, &b], 1);
        assert_eq!((t.batch, t.seq), (2, 3));
        assert_eq!(t.ids, [5, 6, 7, 5, 1, 1]);
        assert_eq!(t.mask, [1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn batches_group_similar_lengths() {
        assert_eq!(
            length_batches(&[3, 10, 1, 9, 2], 2),
            [vec![1, 3], vec![0, 4], vec![2]]
        );
    }

    #[test]
    fn token_groups_close_at_the_padded_size() {
        // Longest first: 10 alone reaches 10 tokens; 9 and 3 pad to 18;
        // 2 and 1 are what is left.
        assert_eq!(
            token_groups(&[3, 10, 1, 9, 2], 10),
            [vec![1], vec![3, 0], vec![4, 2]]
        );
        assert_eq!(token_groups(&[4, 4, 4], 100), [vec![0, 1, 2]]);
        assert_eq!(token_groups(&[0, 0], 1), [vec![0], vec![1]]);
        assert!(token_groups(&[], 8).is_empty());
    }
}
