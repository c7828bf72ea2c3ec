//! Models from the Hugging Face Hub: `hf:ORG/NAME[@REVISION]` resolved to a
//! commit and downloaded into the standard Hub cache
//! (`models--ORG--NAME/{refs,blobs,snapshots}`), so a cache filled by
//! Python tools is reused and what dflow downloads serves them too.
//!
//! The environment is the one `huggingface_hub` reads: `HF_ENDPOINT`
//! (default `https://huggingface.co`), `HF_HOME` / `HF_HUB_CACHE`,
//! `HF_HUB_OFFLINE` (cache only) and `HF_TOKEN` (or `$HF_HOME/token`). A
//! branch or tag is resolved online on every plan (a new commit upstream
//! means new keys); when the Hub cannot be reached, the commit the cache
//! last resolved is used, as `huggingface_hub` does. Each file is checked
//! against its ETag (sha256 for LFS files, the git blob sha1 for the rest)
//! before it enters the cache; an interrupted download resumes.

mod fetch;
#[doc(hidden)]
pub mod test_hub;

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::error::{NeuralError, NeuralResult};

pub use fetch::Fetched;

/// The files of a repository dflow loads when `include` is not given: the
/// configuration, tokenizer and safetensors weights at the top level and in
/// sentence-transformers' module folders (`1_Pooling`, `2_Dense`). Other
/// weight formats (`pytorch_model.bin`, ONNX, TF, Flax) are never read.
pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*/*.json",
    "*/*.safetensors",
];

/// Where the Hub is and where its cache lives, from the environment.
#[derive(Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT` without a trailing slash.
    pub endpoint: String,
    /// The hub cache directory (`HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache: PathBuf,
    /// `HF_TOKEN` or the token file; sent only to the endpoint's host.
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE`: never touch the network.
    pub offline: bool,
}

impl std::fmt::Debug for HubSettings {
    // The token never reaches a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSettings")
            .field("endpoint", &self.endpoint)
            .field("cache", &self.cache)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .finish()
    }
}

fn truthy(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "on"))
}

impl HubSettings {
    /// The settings `huggingface_hub` would use in this environment.
    pub fn from_env() -> NeuralResult<Self> {
        let home = std::env::var_os("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("huggingface"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
            })
            .ok_or_else(|| NeuralError::config("neither HF_HOME nor HOME is set"))?;
        let cache = std::env::var_os("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token = std::env::var("HF_TOKEN")
            .ok()
            .or_else(|| std::fs::read_to_string(home.join("token")).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        Ok(HubSettings {
            endpoint: endpoint.trim().trim_end_matches('/').to_string(),
            cache,
            token,
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
        })
    }
}

/// Which files of a repository to take.
#[derive(Clone, Debug)]
pub struct Include(Vec<Pattern>);

impl Include {
    /// Glob patterns over paths in the repository; `*` does not cross `/`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> NeuralResult<Self> {
        patterns
            .iter()
            .map(|p| {
                Pattern::new(p.as_ref()).map_err(|e| {
                    NeuralError::config(format!("`{}` is not a glob pattern: {e}", p.as_ref()))
                })
            })
            .collect::<NeuralResult<_>>()
            .map(Include)
    }

    pub fn default_set() -> Self {
        Include(
            DEFAULT_INCLUDE
                .iter()
                .filter_map(|p| Pattern::new(p).ok())
                .collect(),
        )
    }

    pub fn matches(&self, path: &str) -> bool {
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        self.0.iter().any(|p| p.matches_with(path, opts))
    }
}

/// A repository at one commit, with the files taken from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// `ORG/NAME`.
    pub repo: String,
    /// The resolved commit (40 hex digits, or the revision as given when
    /// only the cache was read and it named no commit).
    pub commit: String,
    /// `snapshots/<commit>` in the cache.
    pub dir: PathBuf,
    /// Paths in the repository, sorted.
    pub files: Vec<String>,
    /// What this resolution downloaded (nothing when the cache had it all).
    pub fetched: Fetched,
}

impl Snapshot {
    /// Each file with the name the lock file records for it
    /// (`hf:ORG/NAME@COMMIT/PATH`): the pinned commit, and the same cache
    /// keys on every machine wherever its Hub cache lives.
    pub fn named_files(&self) -> Vec<(String, PathBuf)> {
        self.files
            .iter()
            .map(|f| {
                (
                    format!("hf:{}@{}/{f}", self.repo, self.commit),
                    self.dir.join(f),
                )
            })
            .collect()
    }
}

/// The cache directory of one repository.
fn repo_dir(settings: &HubSettings, repo: &str) -> PathBuf {
    settings
        .cache
        .join(format!("models--{}", repo.replace('/', "--")))
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path inside a repository that is safe to join under the cache: no
/// absolute paths, `..`, empty segments or backslashes (a hostile listing
/// must not write outside the snapshot).
fn safe_repo_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Files under `dir` (following links), as paths relative to it with `/`,
/// sorted.
pub(crate) fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // `is_dir` follows links: snapshot files are links to blobs.
            if p.is_dir() {
                stack.push(p);
            } else if p.exists()
                && let Ok(rel) = p.strip_prefix(dir)
            {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// `repo@revision` from the cache alone.
fn from_cache(
    settings: &HubSettings,
    repo: &str,
    revision: &str,
    include: &Include,
    why: &str,
) -> NeuralResult<Snapshot> {
    let entry = repo_dir(settings, repo);
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(entry.join("refs").join(revision))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| revision.to_string())
    };
    let dir = entry.join("snapshots").join(&commit);
    let files: Vec<String> = files_in(&dir)
        .into_iter()
        .filter(|f| include.matches(f))
        .collect();
    if files.is_empty() {
        return Err(NeuralError::Hub(format!(
            "{repo}@{revision} is not in the Hugging Face cache ({}) and {why}; {}, \
             or use a `path:` source",
            settings.cache.display(),
            if settings.offline {
                "unset HF_HUB_OFFLINE to download it"
            } else {
                "check the network and HF_ENDPOINT"
            }
        )));
    }
    Ok(Snapshot {
        repo: repo.to_string(),
        commit,
        dir,
        files,
        fetched: Fetched::default(),
    })
}

/// `repo@revision` resolved to a commit, its `include`d files present in
/// the cache (downloaded and checked where missing).
pub fn snapshot(
    settings: &HubSettings,
    repo: &str,
    revision: &str,
    include: &Include,
) -> NeuralResult<Snapshot> {
    if settings.offline {
        return from_cache(settings, repo, revision, include, "HF_HUB_OFFLINE is set");
    }
    // The HTTP client runs its own runtime: on a thread of its own, so
    // that planning may call this from inside another runtime.
    std::thread::scope(|s| {
        s.spawn(|| online(settings, repo, revision, include))
            .join()
            .map_err(|_| NeuralError::internal("the Hub download thread panicked"))?
    })
}

fn online(
    settings: &HubSettings,
    repo: &str,
    revision: &str,
    include: &Include,
) -> NeuralResult<Snapshot> {
    let entry = repo_dir(settings, repo);
    let client = fetch::HubClient::new(settings)?;
    let info = match client.repo_info(repo, revision) {
        Ok(info) => info,
        // As huggingface_hub: no connection, use what the cache resolved.
        Err(fetch::ApiError::Unreachable(why)) => {
            return from_cache(
                settings,
                repo,
                revision,
                include,
                &format!("the Hub cannot be reached ({why})"),
            );
        }
        Err(fetch::ApiError::Refused(e)) => return Err(e),
    };
    if !is_commit(&info.sha) {
        return Err(NeuralError::Hub(format!(
            "{}: the Hub resolved {repo}@{revision} to `{}`, which is not a commit id",
            settings.endpoint, info.sha
        )));
    }
    let mut files = Vec::new();
    for f in info.siblings.iter().map(|s| s.rfilename.as_str()) {
        if !safe_repo_path(f) {
            return Err(NeuralError::Hub(format!(
                "{repo}@{}: the Hub lists a file `{f}` that is not a relative path; refusing",
                info.sha
            )));
        }
        if include.matches(f) {
            files.push(f.to_string());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(NeuralError::Hub(format!(
            "{repo}@{revision} has no file matching `include` ({} files listed); \
             name the files to take in `include`",
            info.siblings.len()
        )));
    }
    let dir = entry.join("snapshots").join(&info.sha);
    let mut fetched = Fetched::default();
    for f in &files {
        let target = dir.join(f);
        if target.exists() {
            fetched.reused += 1;
            continue;
        }
        fetched.add(&client.file_into_cache(&entry, repo, &info.sha, f, &target)?);
    }
    if revision != info.sha {
        let r = entry.join("refs").join(revision);
        if std::fs::read_to_string(&r).ok().as_deref() != Some(info.sha.as_str()) {
            write_ref(&r, &info.sha)?;
        }
    }
    Ok(Snapshot {
        repo: repo.to_string(),
        commit: info.sha,
        dir,
        files,
        fetched,
    })
}

/// `refs/<revision>`, replaced whole.
fn write_ref(path: &Path, commit: &str) -> NeuralResult<()> {
    let parent = path
        .parent()
        .ok_or_else(|| NeuralError::internal("a ref path has a parent"))?;
    std::fs::create_dir_all(parent).map_err(|e| NeuralError::io("cannot create", parent, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, commit).map_err(|e| NeuralError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NeuralError::io("cannot write", path, e))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::test_hub::{COMMIT, Faults, RepoFile, TestHub};
    use super::*;

    const REPO: &str = "org/tiny";

    fn files() -> BTreeMap<String, RepoFile> {
        let git = |s: &str| RepoFile {
            bytes: s.as_bytes().to_vec(),
            lfs: false,
        };
        let lfs = |n: usize| RepoFile {
            bytes: (0..n).map(|i| (i * 7 % 251) as u8).collect(),
            lfs: true,
        };
        BTreeMap::from([
            ("config.json".into(), git("{\"model_type\":\"bert\"}")),
            ("tokenizer.json".into(), git("{\"version\":\"1.0\"}")),
            ("model.safetensors".into(), lfs(300_000)),
            (
                "1_Pooling/config.json".into(),
                git("{\"pooling_mode_cls_token\":true}"),
            ),
            ("pytorch_model.bin".into(), lfs(1000)),
            ("onnx/model.onnx".into(), lfs(1000)),
        ])
    }

    fn settings(endpoint: &str, cache: &Path) -> HubSettings {
        HubSettings {
            endpoint: endpoint.to_string(),
            cache: cache.to_path_buf(),
            token: None,
            offline: false,
        }
    }

    /// A Hub with `faults`, and its repository resolved into a new cache.
    fn first_resolution(
        files: BTreeMap<String, RepoFile>,
        faults: Faults,
    ) -> (TestHub, tempfile::TempDir, NeuralResult<Snapshot>) {
        let hub = TestHub::start(REPO, files, faults);
        let cache = tempfile::tempdir().expect("test setup");
        let snap = snapshot(
            &settings(&hub.endpoint, cache.path()),
            REPO,
            "main",
            &Include::default_set(),
        );
        (hub, cache, snap)
    }

    fn downloads(hub: &TestHub) -> Vec<String> {
        hub.hits()
            .into_iter()
            .filter(|h| h.method == "GET" && !h.path.starts_with("/api/"))
            .map(|h| h.path)
            .collect()
    }

    #[test]
    fn downloads_into_the_hub_cache_layout_once() {
        let hub = TestHub::start(REPO, files(), Faults::default());
        let cache = tempfile::tempdir().expect("test setup");
        let s = settings(&hub.endpoint, cache.path());
        let snap = snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        assert_eq!(snap.commit, COMMIT);
        assert_eq!(
            snap.files,
            [
                "1_Pooling/config.json",
                "config.json",
                "model.safetensors",
                "tokenizer.json"
            ]
        );
        assert_eq!(snap.fetched.files, 4);
        assert_eq!(snap.fetched.unverified, 0);
        let entry = cache.path().join("models--org--tiny");
        assert_eq!(
            std::fs::read_to_string(entry.join("refs/main")).expect("test setup"),
            COMMIT
        );
        // Snapshot files are relative links to blobs named by ETag.
        let weights = entry
            .join("snapshots")
            .join(COMMIT)
            .join("model.safetensors");
        assert_eq!(
            std::fs::read_link(&weights).expect("test setup"),
            Path::new("../../blobs").join(hub.etag("model.safetensors"))
        );
        assert_eq!(
            std::fs::read_link(
                entry
                    .join("snapshots")
                    .join(COMMIT)
                    .join("1_Pooling/config.json")
            )
            .expect("test setup"),
            Path::new("../../../blobs").join(hub.etag("1_Pooling/config.json"))
        );
        assert_eq!(
            std::fs::read(&weights).expect("test setup"),
            files()["model.safetensors"].bytes
        );
        assert_eq!(
            snap.named_files()[2].0,
            format!("hf:org/tiny@{COMMIT}/model.safetensors")
        );
        // Nothing fetched twice: the second resolution only asks the API.
        let before = downloads(&hub).len();
        let again = snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        assert_eq!(again.fetched.files, 0);
        assert_eq!(again.fetched.reused, 4);
        assert_eq!(downloads(&hub).len(), before);
        assert!(!downloads(&hub).iter().any(|p| p.contains("pytorch_model")));
    }

    #[test]
    fn a_dropped_download_resumes_from_where_it_stopped() {
        let (hub, _cache, snap) = first_resolution(
            files(),
            Faults {
                drop_first: vec!["model.safetensors".into()],
                ..Faults::default()
            },
        );
        let snap = snap.expect("resumed");
        assert_eq!(snap.fetched.resumed, 1);
        let ranges: Vec<_> = hub.hits().into_iter().filter_map(|h| h.range).collect();
        assert_eq!(ranges, ["bytes=150000-"]);
        assert_eq!(
            std::fs::read(snap.dir.join("model.safetensors")).expect("test setup"),
            files()["model.safetensors"].bytes
        );
    }

    #[test]
    fn a_corrupted_file_is_refused_and_not_kept() {
        let (hub, cache, snap) = first_resolution(
            files(),
            Faults {
                corrupt: vec!["model.safetensors".into()],
                ..Faults::default()
            },
        );
        let e = snap.expect_err("must fail").to_string();
        assert!(e.contains("org/tiny@"), "{e}");
        assert!(e.contains("model.safetensors"), "{e}");
        assert!(e.contains("do not match the Hub's ETag"), "{e}");
        let blobs = cache.path().join("models--org--tiny/blobs");
        let kept: Vec<_> = std::fs::read_dir(&blobs)
            .expect("test setup")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&hub.etag("model.safetensors")))
            .collect();
        assert!(kept.is_empty(), "{kept:?}");
        assert!(
            !cache
                .path()
                .join("models--org--tiny/snapshots")
                .join(COMMIT)
                .join("model.safetensors")
                .exists()
        );
    }

    #[test]
    fn gated_repositories_need_the_token_which_never_reaches_the_cdn() {
        let faults = Faults {
            token: Some("hf_secret".into()),
            ..Faults::default()
        };
        let hub = TestHub::start(REPO, files(), faults);
        let cache = tempfile::tempdir().expect("test setup");
        let mut s = settings(&hub.endpoint, cache.path());
        let e = snapshot(&s, REPO, "main", &Include::default_set())
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("401"), "{e}");
        assert!(e.contains("set HF_TOKEN"), "{e}");
        s.token = Some("hf_secret".into());
        assert!(!format!("{s:?}").contains("hf_secret"));
        snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        let cdn: Vec<_> = hub
            .hits()
            .into_iter()
            .filter(|h| h.path.starts_with("/cdn/"))
            .collect();
        assert!(!cdn.is_empty());
        assert!(cdn.iter().all(|h| !h.authorized), "{cdn:?}");
    }

    #[test]
    fn missing_repositories_and_revisions_say_so() {
        let hub = TestHub::start(REPO, files(), Faults::default());
        let cache = tempfile::tempdir().expect("test setup");
        let s = settings(&hub.endpoint, cache.path());
        let e = snapshot(&s, "org/nope", "main", &Include::default_set())
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("org/nope@main"), "{e}");
        assert!(e.contains("404"), "{e}");
        let e = snapshot(&s, REPO, "v9", &Include::default_set())
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("org/tiny@v9"), "{e}");
        let e = snapshot(
            &s,
            REPO,
            "main",
            &Include::new(&["*.gguf"]).expect("test setup"),
        )
        .expect_err("must fail")
        .to_string();
        assert!(e.contains("no file matching `include`"), "{e}");
    }

    #[test]
    fn offline_or_unreachable_the_cache_stands_in() {
        let hub = TestHub::start(REPO, files(), Faults::default());
        let cache = tempfile::tempdir().expect("test setup");
        let mut s = settings(&hub.endpoint, cache.path());
        s.offline = true;
        let e = snapshot(&s, REPO, "main", &Include::default_set())
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("HF_HUB_OFFLINE"), "{e}");
        s.offline = false;
        let online = snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        s.offline = true;
        let offline = snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        assert_eq!(offline.commit, online.commit);
        assert_eq!(offline.files, online.files);
        // A port nobody listens on: the cached commit is used.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
        let dead = format!("http://{}", closed.local_addr().expect("test setup"));
        drop(closed);
        let mut s = settings(&dead, cache.path());
        s.offline = false;
        let cached = snapshot(&s, REPO, "main", &Include::default_set()).expect("test setup");
        assert_eq!(cached.commit, COMMIT);
        let e = snapshot(&s, "org/other", "main", &Include::default_set())
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("cannot be reached"), "{e}");
    }

    #[test]
    fn listings_that_escape_the_snapshot_are_refused() {
        let mut f = files();
        f.insert(
            "../../evil.json".into(),
            RepoFile {
                bytes: b"{}".to_vec(),
                lfs: false,
            },
        );
        let (_hub, _cache, snap) = first_resolution(f, Faults::default());
        let e = snap.expect_err("must fail").to_string();
        assert!(e.contains("not a relative path"), "{e}");
    }
}
