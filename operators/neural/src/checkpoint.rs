//! Training checkpoints: the encoder's weights, the optimiser's state
//! (AdamW's moments) and where the run stood, written into a unit's work
//! directory (`Task::work_dir`, kept by the engine across an interrupted
//! run), so that `train` resumes at the last checkpoint and ends with the
//! same weights as a run that was never interrupted.
//!
//! A checkpoint is written to `next/` and then renamed to `checkpoint/`;
//! `position.json` is written last, so a directory without it is
//! incomplete and ignored. Killed between removing the old checkpoint and
//! the rename, the complete `next/` is used.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::NeuralError;

const CURRENT: &str = "checkpoint";
const NEXT: &str = "next";
const POSITION: &str = "position.json";

/// Where a run stood after an optimiser step, and its log so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Optimiser steps done.
    pub step: usize,
    /// The epoch of the next batch.
    pub epoch: usize,
    /// The next batch's index within that epoch's batches.
    pub next_batch: usize,
    /// The `log` rows so far.
    #[serde(with = "exact")]
    pub log: Vec<LogRow>,
    /// The `eval` rows so far (metrics as bits already).
    #[serde(default)]
    pub eval: Vec<crate::train_eval::EvalRow>,
}

/// A `log` row: one optimiser step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRow {
    /// The step, from 1.
    pub step: u64,
    pub epoch: u32,
    /// The loss, averaged over the step's accumulated batches.
    pub loss: f64,
    pub learning_rate: f64,
}

/// Floats as their bits: serde_json reads decimal numbers fast rather than
/// exactly, and a resumed log must equal an uninterrupted one.
mod exact {
    use super::LogRow;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Bits = (u64, u32, u64, u64);

    pub fn serialize<S: Serializer>(rows: &[LogRow], s: S) -> Result<S::Ok, S::Error> {
        rows.iter()
            .map(|r| (r.step, r.epoch, r.loss.to_bits(), r.learning_rate.to_bits()))
            .collect::<Vec<Bits>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LogRow>, D::Error> {
        let rows = Vec::<Bits>::deserialize(d)?;
        Ok(rows
            .into_iter()
            .map(|(step, epoch, loss, lr)| LogRow {
                step,
                epoch,
                loss: f64::from_bits(loss),
                learning_rate: f64::from_bits(lr),
            })
            .collect())
    }
}

type Bin = BinFileRecorder<FullPrecisionSettings>;

/// A checkpoint file that could not be read or written by the recorder.
fn record_err(what: &str, path: &Path, e: impl std::fmt::Debug) -> NeuralError {
    NeuralError::Backend(format!("{what} {}: {e:?}", path.display()))
}

/// Writes a checkpoint of `module` and `optim` at `position` into `dir`.
pub fn save<B, M, O>(
    dir: &Path,
    module: &M,
    optim: &O,
    position: &Position,
) -> Result<(), NeuralError>
where
    B: AutodiffBackend,
    M: Module<B> + burn::module::AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let next = dir.join(NEXT);
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir_all(&next).map_err(|e| NeuralError::io("creating", &next, e))?;
    let recorder = Bin::default();
    Recorder::<B>::record(
        &recorder,
        module.clone().into_record(),
        next.join("encoder"),
    )
    .map_err(|e| record_err("writing", &next.join("encoder.bin"), e))?;
    Recorder::<B>::record(&recorder, optim.to_record(), next.join("optimizer"))
        .map_err(|e| record_err("writing", &next.join("optimizer.bin"), e))?;
    let json = serde_json::to_vec(position).map_err(NeuralError::Serialize)?;
    std::fs::write(next.join(POSITION), json).map_err(|e| NeuralError::io("writing", &next, e))?;
    let current = dir.join(CURRENT);
    if current.exists() {
        std::fs::remove_dir_all(&current).map_err(|e| NeuralError::io("removing", &current, e))?;
    }
    std::fs::rename(&next, &current).map_err(|e| NeuralError::io("renaming", &next, e))
}

/// The complete checkpoint in `dir`, if any.
fn complete(dir: &Path) -> Option<PathBuf> {
    [CURRENT, NEXT]
        .into_iter()
        .map(|d| dir.join(d))
        .find(|d| d.join(POSITION).is_file())
}

/// Loads the checkpoint in `dir` into `module` and `optim`, and where it
/// stood; both come back unchanged, with `None`, when there is none.
pub fn load<B, M, O>(
    dir: &Path,
    module: M,
    optim: O,
    device: &B::Device,
) -> Result<(M, O, Option<Position>), NeuralError>
where
    B: AutodiffBackend,
    M: Module<B> + burn::module::AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let Some(at) = complete(dir) else {
        return Ok((module, optim, None));
    };
    let text = std::fs::read(at.join(POSITION)).map_err(|e| NeuralError::io("reading", &at, e))?;
    let position: Position = serde_json::from_slice(&text)
        .map_err(|e| NeuralError::json(format!("reading {}", at.join(POSITION).display()), e))?;
    let recorder = Bin::default();
    let record = Recorder::<B>::load(&recorder, at.join("encoder"), device)
        .map_err(|e| record_err("reading", &at.join("encoder.bin"), e))?;
    let module = module.load_record(record);
    let record = Recorder::<B>::load(&recorder, at.join("optimizer"), device)
        .map_err(|e| record_err("reading", &at.join("optimizer.bin"), e))?;
    let optim = optim.load_record(record);
    Ok((module, optim, Some(position)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_exactly() {
        let p = Position {
            step: 3,
            epoch: 1,
            next_batch: 2,
            log: vec![
                LogRow {
                    step: 1,
                    epoch: 0,
                    loss: 0.1 + 0.2,
                    learning_rate: 1e-5 / 3.0,
                },
                LogRow {
                    step: 2,
                    epoch: 0,
                    loss: f64::MIN_POSITIVE,
                    learning_rate: 2.5e-5,
                },
            ],
            eval: vec![crate::train_eval::EvalRow {
                step: 2,
                language: "deu".into(),
                queries: 5,
                metrics: [(1.0f64 / 3.0).to_bits(), 0, 1, 2, 3],
            }],
        };
        let text = serde_json::to_string(&p).expect("json");
        assert_eq!(
            serde_json::from_str::<Position>(&text).expect("read back"),
            p
        );
    }
}
