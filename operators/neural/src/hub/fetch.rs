//! The Hub's HTTP side: the revision API, the `resolve` URLs and their
//! ETag headers, and downloads that resume and are checked before they
//! enter the cache. Requests run on a runtime of their own, on a thread of
//! their own, so planning may call them from anywhere.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use url::Url;

use super::HubSettings;
use crate::error::{NeuralError, NeuralResult};

/// Tries of one download before it gives up (each resumes where the last
/// stopped).
const ATTEMPTS: u32 = 6;
/// Redirects followed for one file (the Hub sends LFS files to a CDN, and
/// renamed repositories to their new name).
const MAX_REDIRECTS: usize = 10;
/// The largest revision listing read (a repository of many thousand files
/// lists in a few MB).
const MAX_LISTING_BYTES: usize = 64 << 20;

/// What a resolution downloaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    /// Files downloaded.
    pub files: usize,
    /// Bytes received.
    pub bytes: u64,
    /// Downloads that resumed an interrupted one.
    pub resumed: usize,
    /// Files whose ETag is neither a sha256 nor a git sha1 (a mirror that
    /// is not the Hub), so only their size was checked.
    pub unverified: usize,
    /// Files the cache already held.
    pub reused: usize,
}

impl Fetched {
    pub(super) fn add(&mut self, other: &Fetched) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.resumed += other.resumed;
        self.unverified += other.unverified;
        self.reused += other.reused;
    }
}

/// `GET /api/models/{repo}/revision/{revision}`, the fields used.
#[derive(Debug, Deserialize)]
pub(super) struct RepoInfo {
    pub sha: String,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Sibling {
    pub rfilename: String,
}

/// Why the revision could not be resolved online.
pub(super) enum ApiError {
    /// No answer (connection refused, timeout, server errors): the cache
    /// may stand in.
    Unreachable(String),
    /// An answer that refuses (no such repository, no access).
    Refused(NeuralError),
}

/// A file's headers from `HEAD …/resolve/{commit}/{path}`.
struct FileMeta {
    /// The blob name: the LFS sha256 or the git blob sha1.
    etag: String,
    size: Option<u64>,
    /// Where the bytes are (the CDN for LFS files).
    url: Url,
}

pub(super) struct HubClient<'a> {
    settings: &'a HubSettings,
    endpoint: Url,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

fn hub_error(msg: impl Into<String>) -> NeuralError {
    NeuralError::Hub(msg.into())
}

/// A header's value without quotes or the weak prefix.
fn etag_of(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_string())
}

fn size_of(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// An ETag usable as a file name in `blobs/`.
fn usable_etag(etag: &str) -> bool {
    !etag.is_empty()
        && etag.len() <= 128
        && !etag.starts_with('.')
        && etag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl<'a> HubClient<'a> {
    pub fn new(settings: &'a HubSettings) -> NeuralResult<Self> {
        let endpoint = Url::parse(&settings.endpoint).map_err(|e| {
            NeuralError::config(format!(
                "HF_ENDPOINT `{}` is not a URL: {e}",
                settings.endpoint
            ))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(NeuralError::config(format!(
                "HF_ENDPOINT `{}`: only http and https endpoints are supported",
                settings.endpoint
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("dflow/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| NeuralError::internal(format!("HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NeuralError::internal(format!("HTTP runtime: {e}")))?;
        Ok(HubClient {
            settings,
            endpoint,
            http,
            runtime,
        })
    }

    /// `endpoint/seg/seg/…`, each segment percent-encoded.
    fn url<'s>(&self, segments: impl IntoIterator<Item = &'s str>) -> NeuralResult<Url> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| {
                NeuralError::config(format!(
                    "HF_ENDPOINT `{}` cannot take a path",
                    self.settings.endpoint
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The token goes to the endpoint's own host only, never to a CDN.
    fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, url.clone())
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(token) = &self.settings.token
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default()
        {
            req = req.bearer_auth(token);
        }
        req
    }

    /// What an answer that refuses means, for `what` (`repo@rev`, a file).
    fn refusal(&self, what: &str, status: StatusCode) -> NeuralError {
        let hint = match status.as_u16() {
            401 | 403 if self.settings.token.is_some() => {
                "the token (HF_TOKEN) cannot read it: accept the model's terms on the Hub, \
                 or use a token with access"
            }
            401 | 403 => "it is private or gated: set HF_TOKEN to a token that can read it",
            404 => "check the name and the revision",
            _ => "the Hub refused the request",
        };
        hub_error(format!(
            "{what} on {}: {status}; {hint}",
            self.settings.endpoint
        ))
    }

    /// The commit `revision` names and the files of the repository there.
    pub fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo, ApiError> {
        let mut segs: Vec<&str> = vec!["api", "models"];
        segs.extend(repo.split('/'));
        segs.extend(["revision", revision]);
        let url = self.url(segs).map_err(ApiError::Refused)?;
        let what = format!("{repo}@{revision}");
        self.runtime.block_on(async {
            let mut last = String::new();
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
                let resp = match self.request(reqwest::Method::GET, &url).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        last = e.to_string();
                        if e.is_connect() {
                            break;
                        }
                        continue;
                    }
                };
                let status = resp.status();
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    last = format!("{status}");
                    continue;
                }
                if !status.is_success() {
                    return Err(ApiError::Refused(self.refusal(&what, status)));
                }
                let body = read_capped(resp, MAX_LISTING_BYTES)
                    .await
                    .map_err(|e| ApiError::Unreachable(e.to_string()))?;
                return serde_json::from_slice(&body).map_err(|e| {
                    ApiError::Refused(hub_error(format!(
                        "{what}: {} answered a listing that is not the Hub's ({e}); \
                         is HF_ENDPOINT a Hugging Face Hub?",
                        self.settings.endpoint
                    )))
                });
            }
            Err(ApiError::Unreachable(format!(
                "{}: {last}",
                self.settings.endpoint
            )))
        })
    }

    /// The blob name, size and location of `path` at `commit`.
    async fn file_meta(&self, repo: &str, commit: &str, path: &str) -> NeuralResult<FileMeta> {
        let mut segs: Vec<&str> = repo.split('/').collect();
        segs.extend(["resolve", commit]);
        segs.extend(path.split('/'));
        let mut url = self.url(segs)?;
        let what = format!("{repo}@{commit}/{path}");
        for _ in 0..MAX_REDIRECTS {
            let resp = self
                .request(reqwest::Method::HEAD, &url)
                .send()
                .await
                .map_err(|e| hub_error(format!("{what}: {e}")))?;
            let status = resp.status();
            let h = resp.headers();
            let linked = etag_of(h, "x-linked-etag");
            if status.is_redirection() {
                let location = h
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| hub_error(format!("{what}: a redirect without a Location")))?;
                let next = url
                    .join(location)
                    .map_err(|e| hub_error(format!("{what}: redirect to `{location}`: {e}")))?;
                // An LFS file: its headers are here, its bytes at the CDN.
                if let Some(etag) = linked {
                    return Ok(FileMeta {
                        etag,
                        size: size_of(h, "x-linked-size"),
                        url: next,
                    });
                }
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(self.refusal(&what, status));
            }
            let etag = linked.or_else(|| etag_of(h, "etag")).ok_or_else(|| {
                hub_error(format!(
                    "{what}: {} gave no ETag; is HF_ENDPOINT a Hugging Face Hub?",
                    self.settings.endpoint
                ))
            })?;
            let size = size_of(h, "x-linked-size").or_else(|| size_of(h, "content-length"));
            return Ok(FileMeta { etag, size, url });
        }
        Err(hub_error(format!(
            "{what}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// `path` of `repo` at `commit` into the cache entry `entry`: the blob
    /// downloaded (or found) under `blobs/`, then linked at `target`.
    pub fn file_into_cache(
        &self,
        entry: &Path,
        repo: &str,
        commit: &str,
        path: &str,
        target: &Path,
    ) -> NeuralResult<Fetched> {
        self.runtime.block_on(async {
            let meta = self.file_meta(repo, commit, path).await?;
            let what = format!("{repo}@{commit}/{path}");
            if !usable_etag(&meta.etag) {
                return Err(hub_error(format!(
                    "{what}: the ETag `{}` is not a blob name; is HF_ENDPOINT a Hugging Face Hub?",
                    meta.etag
                )));
            }
            let blobs = entry.join("blobs");
            mkdirs(&blobs)?;
            let blob = blobs.join(&meta.etag);
            // Another process fetching the same blob holds this lock.
            let lock_dir = entry
                .parent()
                .map(|c| c.join(".locks"))
                .unwrap_or_else(|| entry.join(".locks"))
                .join(entry.file_name().unwrap_or_default());
            mkdirs(&lock_dir)?;
            let lock_path = lock_dir.join(format!("{}.lock", meta.etag));
            let lock = std::fs::File::create(&lock_path)
                .map_err(|e| NeuralError::io("cannot create", &lock_path, e))?;
            lock.lock()
                .map_err(|e| NeuralError::io("cannot lock", &lock_path, e))?;
            let mut fetched = Fetched::default();
            if blob.exists() {
                fetched.reused = 1;
            } else {
                let part = blobs.join(format!("{}.incomplete", meta.etag));
                let (bytes, resumed) = self.download(&what, &meta, &part).await?;
                let verified = verify(&what, &part, &meta)?;
                std::fs::rename(&part, &blob)
                    .map_err(|e| NeuralError::io("cannot move", &part, e))?;
                fetched = Fetched {
                    files: 1,
                    bytes,
                    resumed: usize::from(resumed),
                    unverified: usize::from(!verified),
                    reused: 0,
                };
            }
            link(&blob, target, path)?;
            Ok(fetched)
        })
    }

    /// The bytes of `meta.url` into `part`, resuming what an earlier try
    /// (of this run or an interrupted one) left there. Returns the bytes
    /// received and whether a download was resumed.
    async fn download(
        &self,
        what: &str,
        meta: &FileMeta,
        part: &Path,
    ) -> NeuralResult<(u64, bool)> {
        let mut received = 0u64;
        let mut resumed = false;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
            if meta.size.is_some_and(|s| have > s) {
                have = 0;
            }
            if have > 0 && meta.size == Some(have) {
                return Ok((received, resumed));
            }
            match self.try_download(what, meta, part, have).await {
                Ok(Try::Done { bytes, from }) => {
                    return Ok((received + bytes, resumed || from > 0));
                }
                Ok(Try::Partial { bytes, from, why }) => {
                    received += bytes;
                    resumed |= from > 0;
                    last = why;
                }
                Err(Attempt::Again(why)) => last = why,
                Err(Attempt::Fatal(e)) => return Err(e),
            }
            // A later try resumes from what is on disk now.
            resumed |= std::fs::metadata(part)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        }
        Err(hub_error(format!(
            "{what}: the download failed {ATTEMPTS} times (last: {last}); \
             run again to resume from the {} bytes kept in {}",
            std::fs::metadata(part).map(|m| m.len()).unwrap_or(0),
            part.display()
        )))
    }

    /// One GET from byte `have`, following redirects.
    async fn try_download(
        &self,
        what: &str,
        meta: &FileMeta,
        part: &Path,
        have: u64,
    ) -> Result<Try, Attempt> {
        let mut url = meta.url.clone();
        let mut resp = None;
        for _ in 0..MAX_REDIRECTS {
            let mut req = self.request(reqwest::Method::GET, &url);
            if have > 0 {
                req = req.header(header::RANGE, format!("bytes={have}-"));
            }
            let r = req
                .send()
                .await
                .map_err(|e| Attempt::Again(e.to_string()))?;
            if r.status().is_redirection() {
                let next = r
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        Attempt::Fatal(hub_error(format!("{what}: a redirect without a Location")))
                    })?;
                url = next;
                continue;
            }
            resp = Some(r);
            break;
        }
        let mut resp = resp.ok_or_else(|| {
            Attempt::Fatal(hub_error(format!(
                "{what}: more than {MAX_REDIRECTS} redirects"
            )))
        })?;
        let status = resp.status();
        let from = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let start = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(have) {
                    truncate(part).map_err(Attempt::Fatal)?;
                    return Err(Attempt::Again(format!(
                        "asked for bytes from {have}, the server sent another range"
                    )));
                }
                have
            }
            // A server that ignores ranges sends it all again.
            StatusCode::OK => 0,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                truncate(part).map_err(Attempt::Fatal)?;
                return Err(Attempt::Again(format!("{status}")));
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                return Err(Attempt::Again(format!("{s}")));
            }
            s => return Err(Attempt::Fatal(self.refusal(what, s))),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(from > 0)
            .truncate(from == 0)
            .open(part)
            .map_err(|e| Attempt::Fatal(NeuralError::io("cannot write", part, e)))?;
        let mut at = from;
        let mut bytes = 0u64;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    at += chunk.len() as u64;
                    bytes += chunk.len() as u64;
                    if meta.size.is_some_and(|s| at > s) {
                        drop(file);
                        truncate(part).map_err(Attempt::Fatal)?;
                        return Err(Attempt::Fatal(hub_error(format!(
                            "{what}: the server sent more than the {} bytes it announced",
                            meta.size.unwrap_or_default()
                        ))));
                    }
                    file.write_all(&chunk)
                        .map_err(|e| Attempt::Fatal(NeuralError::io("cannot write", part, e)))?;
                }
                Ok(None) => break,
                Err(e) => {
                    file.flush().ok();
                    return Ok(Try::Partial {
                        bytes,
                        from,
                        why: e.to_string(),
                    });
                }
            }
        }
        file.sync_all()
            .map_err(|e| Attempt::Fatal(NeuralError::io("cannot write", part, e)))?;
        match meta.size {
            Some(s) if at < s => Ok(Try::Partial {
                bytes,
                from,
                why: format!("the connection ended at byte {at} of {s}"),
            }),
            _ => Ok(Try::Done { bytes, from }),
        }
    }
}

/// How one GET ended.
enum Try {
    Done { bytes: u64, from: u64 },
    Partial { bytes: u64, from: u64, why: String },
}

enum Attempt {
    /// Worth another try (a dropped connection, a server error).
    Again(String),
    Fatal(NeuralError),
}

fn mkdirs(dir: &Path) -> NeuralResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| NeuralError::io("cannot create", dir, e))
}

fn truncate(part: &Path) -> NeuralResult<()> {
    match std::fs::remove_file(part) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NeuralError::io("cannot remove", part, e)),
    }
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > cap {
            return Err(format!("an answer over {cap} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The downloaded bytes against the ETag: an LFS file's is its sha256, a
/// git file's the sha1 of `blob {len}\0{bytes}`. Returns whether the ETag
/// could be checked; a mismatch removes the bytes and is an error.
fn verify(what: &str, part: &Path, meta: &FileMeta) -> NeuralResult<bool> {
    let len = std::fs::metadata(part)
        .map_err(|e| NeuralError::io("cannot read", part, e))?
        .len();
    if let Some(size) = meta.size
        && size != len
    {
        truncate(part)?;
        return Err(hub_error(format!(
            "{what}: {len} bytes arrived, the Hub announced {size}; removed, run again"
        )));
    }
    let hex = meta.etag.to_ascii_lowercase();
    let is_hex = hex.bytes().all(|b| b.is_ascii_hexdigit());
    let got = match (is_hex, hex.len()) {
        (true, 64) => digest_file::<Sha256>(part, None)?,
        (true, 40) => digest_file::<Sha1>(part, Some(len))?,
        _ => return Ok(false),
    };
    if got != hex {
        truncate(part)?;
        return Err(hub_error(format!(
            "{what}: the downloaded bytes do not match the Hub's ETag ({hex}, got {got}); \
             the file was refused and removed. Run again; if it persists, the server or a \
             proxy alters the file"
        )));
    }
    Ok(true)
}

/// Hex digest of a file; `git_blob_len` prefixes git's blob header.
fn digest_file<D: Digest>(path: &Path, git_blob_len: Option<u64>) -> NeuralResult<String> {
    let mut hasher = D::new();
    if let Some(len) = git_blob_len {
        hasher.update(format!("blob {len}\0").as_bytes());
    }
    let mut file =
        std::fs::File::open(path).map_err(|e| NeuralError::io("cannot read", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| NeuralError::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `target` (in `snapshots/<commit>/`) pointing at `blob`, relatively, as
/// the Hub cache does (a copy where links cannot be made).
fn link(blob: &Path, target: &Path, repo_path: &str) -> NeuralResult<()> {
    if let Some(parent) = target.parent() {
        mkdirs(parent)?;
    }
    if std::fs::symlink_metadata(target).is_ok() {
        std::fs::remove_file(target).map_err(|e| NeuralError::io("cannot replace", target, e))?;
    }
    // From snapshots/<commit>/<dirs…>/ up to the repository entry.
    let up = 2 + repo_path.matches('/').count();
    let mut rel = PathBuf::new();
    for _ in 0..up {
        rel.push("..");
    }
    rel.push("blobs");
    rel.push(blob.file_name().unwrap_or_default());
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&rel, target);
    #[cfg(not(unix))]
    let linked = std::fs::copy(blob, target).map(|_| ());
    linked.map_err(|e| NeuralError::io("cannot link", target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_digests_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let dir = tempfile::tempdir().expect("test setup");
        let f = dir.path().join("x");
        std::fs::write(&f, b"hello\n").expect("test setup");
        assert_eq!(
            digest_file::<Sha1>(&f, Some(6)).expect("test setup"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn etags_that_are_not_blob_names_are_refused() {
        assert!(usable_etag("ce013625030ba8dba906f756967f9e9ca394464a"));
        assert!(!usable_etag("../../etc/passwd"));
        assert!(!usable_etag(".hidden"));
        assert!(!usable_etag(""));
    }
}
