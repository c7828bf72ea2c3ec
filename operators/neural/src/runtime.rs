//! Models as the operators see them: loaded once per process for a given
//! artifact, device, length and precision, behind a backend-free trait so operator
//! code does not carry Burn's generics. `device` is `cpu` (Flex) or, in a
//! build with the `cuda` feature, `cuda[:N]`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::backend::Backend;

use crate::config::EncoderConfig;
use crate::encoder::Precision;
use crate::error::NeuralError;
use crate::model::{Model, Profile};

/// A model, whatever its backend.
pub trait TextModel: Send + Sync {
    fn profile(&self) -> &Profile;
    /// What `config.json` says (labels of a classification head).
    fn config(&self) -> &EncoderConfig;
    /// Sequence-classification logits of single texts, in their order.
    fn classify(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, NeuralError>;
    /// Embeddings, in the order of `texts`.
    fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, NeuralError>;
    /// Cross-encoder logits, in the order of `pairs`.
    fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, NeuralError>;
}

impl<B: Backend> TextModel for Model<B>
where
    Model<B>: Send + Sync,
{
    fn profile(&self) -> &Profile {
        &self.profile
    }
    fn config(&self) -> &EncoderConfig {
        &self.encoder.config
    }
    fn classify(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
        Model::classify_texts(self, texts, batch_size)
    }
    fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, NeuralError> {
        Model::embed(self, texts, batch_size)
    }
    fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, NeuralError> {
        Model::score_pairs(self, pairs, batch_size)
    }
}

type Cache = Mutex<HashMap<(String, String, usize, Precision), Arc<dyn TextModel>>>;

/// Loaded models kept per device.
const MODELS_PER_DEVICE: usize = 3;

/// The model in `dir` (whose content digest is `digest`) on `device`, its
/// dense products in `precision`, loaded on first use.
pub fn load(
    dir: &Path,
    digest: &str,
    device: Option<&str>,
    max_length: usize,
    precision: Precision,
) -> Result<Arc<dyn TextModel>, NeuralError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let device = device.unwrap_or("cpu").to_string();
    let key = (digest.to_string(), device.clone(), max_length, precision);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache
        .lock()
        .map_err(|_| NeuralError::internal("model cache poisoned"))?
        .get(&key)
    {
        return Ok(m.clone());
    }
    let model = load_on(dir, &device, max_length, precision)?;
    if let Ok(mut c) = cache.lock() {
        // Keep a few models per device: enough for the nodes of one
        // pipeline that run side by side (an embedder and a teacher) without
        // holding every model a long run has used.
        let on_device: Vec<_> = c
            .keys()
            .filter(|(_, d, _, _)| d == &device)
            .cloned()
            .collect();
        if on_device.len() >= MODELS_PER_DEVICE {
            for k in on_device.into_iter().take(1) {
                c.remove(&k);
            }
        }
        c.insert(key, model.clone());
    }
    Ok(model)
}

/// Where a node's models run: its `resources.device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Burn's Flex backend (the default).
    Cpu,
    /// GPU `N` through Burn's CUDA backend (a build with `--features cuda`).
    Cuda(usize),
}

impl Device {
    /// `cpu` (also when unset), `cuda` (GPU 0) or `cuda:N`.
    pub fn parse(device: Option<&str>) -> Result<Self, NeuralError> {
        match device.unwrap_or("cpu") {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            d => match d.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| {
                    NeuralError::Config(format!("`{d}`: expected cuda:N with N a GPU's index"))
                }),
                None => Err(NeuralError::Config(format!(
                    "unknown device `{d}` (cpu, cuda, cuda:N)"
                ))),
            },
        }
    }
}

/// The error of a device this build cannot use.
pub fn no_cuda(index: usize) -> NeuralError {
    NeuralError::Config(format!(
        "device `cuda:{index}`: this dflow was built without CUDA; rebuild with `cargo build --features cuda`"
    ))
}

fn load_on(
    dir: &Path,
    device: &str,
    max_length: usize,
    precision: Precision,
) -> Result<Arc<dyn TextModel>, NeuralError> {
    match Device::parse(Some(device))? {
        Device::Cpu => Ok(Arc::new(with_precision(
            Model::<crate::Cpu>::load(dir, max_length, &Default::default())?,
            precision,
        ))),
        Device::Cuda(index) => load_cuda(dir, index, max_length, precision),
    }
}

fn with_precision<B: Backend>(mut model: Model<B>, precision: Precision) -> Model<B> {
    model.encoder.precision = precision;
    model
}

#[cfg(feature = "cuda")]
fn load_cuda(
    dir: &Path,
    index: usize,
    max_length: usize,
    precision: Precision,
) -> Result<Arc<dyn TextModel>, NeuralError> {
    let dev = burn::backend::cuda::CudaDevice::new(index);
    Ok(Arc::new(with_precision(
        Model::<burn::backend::Cuda>::load(dir, max_length, &dev)?,
        precision,
    )))
}

#[cfg(not(feature = "cuda"))]
fn load_cuda(
    _dir: &Path,
    index: usize,
    _max_length: usize,
    _precision: Precision,
) -> Result<Arc<dyn TextModel>, NeuralError> {
    Err(no_cuda(index))
}

/// The model on a task's `model` port, on the task's device, and the
/// number of texts per forward pass (`resources.batch_size`, default 32).
pub fn for_task(
    task: &dflow_engine::Task<'_>,
    max_length: usize,
    precision: Precision,
) -> dflow_engine::Result<(Arc<dyn TextModel>, usize)> {
    let art = task.artifact("model")?;
    let model = load(
        &art.dir,
        &art.digest,
        task.resources.device.as_deref(),
        max_length,
        precision,
    )?;
    Ok((model, task.resources.batch_size.unwrap_or(32).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(Device::parse(None).ok(), Some(Device::Cpu));
        assert_eq!(Device::parse(Some("cpu")).ok(), Some(Device::Cpu));
        assert_eq!(Device::parse(Some("cuda")).ok(), Some(Device::Cuda(0)));
        assert_eq!(Device::parse(Some("cuda:3")).ok(), Some(Device::Cuda(3)));
        let bad = Device::parse(Some("cuda:x")).expect_err("not an index");
        assert!(bad.to_string().contains("cuda:N"), "{bad}");
        let unknown = Device::parse(Some("tpu")).expect_err("unknown");
        assert!(
            unknown.to_string().contains("cpu, cuda, cuda:N"),
            "{unknown}"
        );
    }
}
