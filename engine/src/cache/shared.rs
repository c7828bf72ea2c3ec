//! The shared tier of the cache, in an object store (S3, GCS, Azure): what
//! one machine computes, every machine that shares the store finds.
//!
//! Layout under the store URL (`s3://bucket/prefix`):
//!
//! ```text
//! blobs/<2 hex>/<blake3>       the bytes of one file, named by their digest
//! entries/<2 hex>/<key>.json   an entry's manifest: its meta and its files
//! ```
//!
//! Publishing uploads the blobs first (any already there are skipped: equal
//! content has one copy), then the manifest with a create-only put
//! (`If-None-Match: *`). An entry is visible only once its manifest is, so a
//! writer killed half way leaves only blobs nothing names, never an entry
//! that looks whole; and of two writers of one key only one publishes, the
//! other reads the published manifest and checks that it agrees.
//!
//! locks/<pipeline id>.json    the entry keys a pipeline's lock file references
//! leases/<pipeline>.json      which run of a pipeline publishes now ([`crate::cache::lease`])
//!
//! A run registers its pipeline's references when it starts and when it
//! ends. `dflow gc` collects the shared tier ([`SharedCache::collect`]):
//! it keeps every entry a registration references and everything younger
//! than a grace period (what runs on other machines are committing now, and
//! the blobs a manifest not yet published will name), and refuses to collect
//! when a registration cannot be read.
//!
//! The local cache directory stays the working copy: units read their
//! inputs from local files, and an entry found only in the shared tier is
//! pulled (streamed, each file checked against its digest) into the local
//! cache before it is used.

use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::cache::entry::{EntryMeta, META_FILE};
use crate::cache::files::{digest_file, walk_files};
use crate::error::{Error, Result, ResultExt};
use crate::storage::stores::{block_on, read_object, store_error, store_for};
use crate::storage::upload_file;
use crate::storage::{ObjectReader, ObjectUrl};

/// Format of a manifest.
pub const MANIFEST_FORMAT: u32 = 1;

/// Format of a pipeline's registration.
pub const REGISTRATION_FORMAT: u32 = 1;

/// A pipeline's registration in the shared tier.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    /// [`REGISTRATION_FORMAT`].
    pub format: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// Its lock file, as the registering machine names it.
    pub lock: String,
    /// Every entry key the lock file references, sorted.
    pub keys: Vec<String>,
}

/// What a collection of the shared tier removed (or would remove) and kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedGcReport {
    /// Registrations read.
    pub registrations: usize,
    /// Entries kept because a registration references them.
    pub referenced: usize,
    /// Unreferenced entries kept because they are younger than the grace
    /// period.
    pub recent: usize,
    /// Entries removed (their manifests), by key.
    pub removed: Vec<String>,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Bytes freed (blobs and manifests).
    pub bytes: u64,
}

/// An entry as published in the shared tier.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The entry's `meta.json`.
    pub meta: EntryMeta,
    /// Every file of the entry except `meta.json`, sorted by path.
    pub files: Vec<ManifestFile>,
}

/// One file of a published entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the entry directory, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// BLAKE3 of its bytes: the blob that holds them.
    pub blake3: String,
}

/// What publishing an entry found.
#[derive(Clone, Debug, PartialEq)]
pub enum Published {
    /// This writer published it.
    New,
    /// Another writer had published the same files.
    Agreed,
    /// Another writer had published other files under the same key (an
    /// operator that is not deterministic): the published entry stands.
    Disagreed,
}

/// The shared tier: a prefix in an object store.
#[derive(Clone)]
pub struct SharedCache {
    root: ObjectUrl,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedCache({})", self.root)
    }
}

impl SharedCache {
    /// The shared tier at `root`. The store must publish with create-only
    /// puts (S3, GCS, Azure): plain HTTP cannot.
    pub fn open(root: &ObjectUrl) -> Result<Self> {
        if !root.kind().can_create_only() {
            return Err(Error::config(format!(
                "the cache cannot be on {}: it needs a store with create-only puts (s3://, gs://, az://)",
                root.store()
            )));
        }
        Ok(Self {
            root: root.clone(),
            store: store_for(root)?,
        })
    }

    /// Takes the lease of pipeline `name` (`leases/<name>.json`) for this
    /// run: one run of a pipeline at a time publishes to the tier
    /// ([`crate::cache::lease`]). With `wait`, waits for a live holder.
    pub fn lease(
        &self,
        name: &str,
        wait: bool,
        on_wait: &dyn Fn(&str),
    ) -> Result<crate::cache::lease::Lease> {
        crate::cache::lease::take(
            self.store.clone(),
            self.url(&format!("leases/{name}.json")),
            crate::cache::lease::lease_ttl(),
            wait,
            on_wait,
        )
    }

    /// The store URL of the tier.
    pub fn root(&self) -> &ObjectUrl {
        &self.root
    }

    fn url(&self, rel: &str) -> ObjectUrl {
        self.root.join(rel)
    }

    fn manifest_url(&self, key: &str) -> ObjectUrl {
        let shard = key.get(..2).unwrap_or("00");
        self.url(&format!("entries/{shard}/{key}.json"))
    }

    /// Where the blob of a file with digest `blake3` is.
    pub fn blob_url(&self, blake3: &str) -> ObjectUrl {
        let shard = blake3.get(..2).unwrap_or("00");
        self.url(&format!("blobs/{shard}/{blake3}"))
    }

    /// Whether a manifest is published under `key` (one HEAD).
    pub fn has(&self, key: &str) -> Result<bool> {
        let url = self.manifest_url(key);
        let store = self.store.clone();
        let path = url.object_path();
        match block_on(async move { store.head(&path).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e, format_args!("reading {url}"))),
        }
    }

    /// The manifest published under `key`, if any.
    pub fn manifest(&self, key: &str) -> Result<Option<Manifest>> {
        let url = self.manifest_url(key);
        let got = read_object(&self.store, &url)?;
        let Some(bytes) = got else { return Ok(None) };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(format!("{url} is not a dflow manifest: {e}")))?;
        if manifest.format != MANIFEST_FORMAT || manifest.meta.key != key {
            return Err(Error::data(format!(
                "{url} is of another format or names another entry"
            )));
        }
        Ok(Some(manifest))
    }

    /// Writes the files of `manifest` and its `meta.json` into `dir` (an
    /// empty staging directory), each streamed from its blob and checked
    /// against its size and digest.
    pub fn pull(&self, manifest: &Manifest, dir: &Path) -> Result<()> {
        for file in &manifest.files {
            let rel = safe_relative(&file.path)?;
            let dest = dir.join(&rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("creating {}", parent.display()))?;
            }
            let url = self.blob_url(&file.blake3);
            let mut reader = ObjectReader::with_size(self.store.clone(), url.clone(), file.bytes);
            let mut out = HashingWriter {
                file: File::create(&dest).context(|| format!("creating {}", dest.display()))?,
                hasher: blake3::Hasher::new(),
            };
            let n =
                std::io::copy(&mut reader, &mut out).context(|| format!("downloading {url}"))?;
            let digest = out.hasher.finalize().to_hex().to_string();
            if n != file.bytes || digest != file.blake3 {
                return Err(Error::data(format!(
                    "{url} does not hold the bytes its name promises ({n} bytes, digest {digest}): the shared cache is damaged; delete that blob and rerun"
                )));
            }
            out.file
                .sync_all()
                .context(|| format!("writing {}", dest.display()))?;
        }
        let meta = serde_json::to_vec_pretty(&manifest.meta)?;
        crate::cache::files::write_synced(&dir.join(META_FILE), &meta)
    }

    /// Publishes the whole entry in `dir` (a committed local entry).
    pub fn publish(&self, dir: &Path, meta: &EntryMeta) -> Result<Published> {
        let mut files = Vec::new();
        for path in walk_files(dir) {
            let rel = path
                .strip_prefix(dir)
                .map_err(|_| Error::internal(format!("{} is outside its entry", path.display())))?
                .to_string_lossy()
                .replace('\\', "/");
            if rel == META_FILE {
                continue;
            }
            let (blake3, bytes) = digest_file(&path)?;
            self.upload_blob(&path, &blake3, bytes)?;
            files.push(ManifestFile {
                path: rel,
                bytes,
                blake3,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            meta: meta.clone(),
            files,
        };
        let url = self.manifest_url(&meta.key);
        let body = serde_json::to_vec_pretty(&manifest)?;
        let store = self.store.clone();
        let path = url.object_path();
        let put = block_on(async move {
            store
                .put_opts(
                    &path,
                    PutPayload::from(body),
                    PutOptions::from(PutMode::Create),
                )
                .await
        })?;
        match put {
            Ok(_) => Ok(Published::New),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let theirs = self.manifest(&meta.key)?.ok_or_else(|| {
                    Error::Store(format!(
                        "{url} exists, yet cannot be read back: check the store"
                    ))
                })?;
                Ok(if theirs.files == manifest.files {
                    Published::Agreed
                } else {
                    Published::Disagreed
                })
            }
            Err(e) => Err(store_error(e, format_args!("publishing {url}"))),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        let url = self.url(rel);
        let store = self.store.clone();
        let prefix = url.object_path();
        block_on(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })?
            .map_err(|e| store_error(e, format_args!("listing {url}")))
    }

    fn delete(&self, path: ObjectPath) -> Result<()> {
        let url = self.root.with_key(path.as_ref());
        let store = self.store.clone();
        match block_on(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e, format_args!("deleting {url}"))),
        }
    }

    /// Checks the published entries `keys`: each has a manifest, and each
    /// blob its manifest names is there with the recorded size (one HEAD
    /// per blob; the digests were checked when the blobs were written and
    /// are checked again by every pull). Returns the manifest URL and the
    /// problem of each entry that fails; with `repair`, removes the
    /// manifests of damaged entries, so that the next run publishes them
    /// again from a local copy or recomputes them.
    pub fn verify(&self, keys: &[String], repair: bool) -> Result<Vec<(String, String)>> {
        let mut problems = Vec::new();
        for key in keys {
            let url = self.manifest_url(key);
            let Some(manifest) = self.manifest(key)? else {
                problems.push((url.to_string(), "not published".to_string()));
                continue;
            };
            let mut damage = None;
            for file in &manifest.files {
                let blob = self.blob_url(&file.blake3);
                let store = self.store.clone();
                let path = blob.object_path();
                match block_on(async move { store.head(&path).await })? {
                    Ok(meta) if meta.size == file.bytes => {}
                    Ok(meta) => {
                        damage = Some(format!(
                            "{blob} ({}) is {} bytes where the manifest records {}",
                            file.path, meta.size, file.bytes
                        ));
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        damage = Some(format!("{blob} ({}) is missing", file.path));
                    }
                    Err(e) => return Err(store_error(e, format_args!("reading {blob}"))),
                }
                if damage.is_some() {
                    break;
                }
            }
            if let Some(damage) = damage {
                if repair {
                    self.delete(url.object_path())?;
                }
                problems.push((url.to_string(), damage));
            }
        }
        Ok(problems)
    }

    /// Registers the pipeline `name` whose lock file is `lock_path` (on
    /// this machine) as referencing `keys`. The registration's name is a
    /// digest of the machine and the lock file's path, so two checkouts of
    /// one pipeline, on one machine or two, keep separate registrations.
    pub fn register(&self, lock_path: &Path, name: &str, keys: Vec<String>) -> Result<()> {
        let lock = std::path::absolute(lock_path)?
            .to_string_lossy()
            .into_owned();
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        let mut hasher = blake3::Hasher::new();
        hasher.update(machine.trim().as_bytes());
        hasher.update(b"\0");
        hasher.update(lock.as_bytes());
        let id = hasher.finalize().to_hex();
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        let registration = Registration {
            format: REGISTRATION_FORMAT,
            pipeline: name.to_string(),
            lock,
            keys,
        };
        let url = self.url(&format!("locks/{safe}-{}.json", &id.as_str()[..16]));
        let body = serde_json::to_vec_pretty(&registration)?;
        let store = self.store.clone();
        let path = url.object_path();
        block_on(async move { store.put(&path, PutPayload::from(body)).await })?
            .map(|_| ())
            .map_err(|e| store_error(e, format_args!("registering the pipeline at {url}")))
    }

    /// Collects the shared tier: removes the manifests no registration
    /// (nor `own`, the collecting pipeline's keys) references and that are
    /// older than `grace`, then the blobs no remaining manifest names and
    /// older than `grace`. A registration that cannot be read stops it
    /// before anything is removed.
    pub fn collect(
        &self,
        own: &[String],
        grace: std::time::Duration,
        dry_run: bool,
    ) -> Result<SharedGcReport> {
        let mut report = SharedGcReport::default();
        let mut referenced: std::collections::BTreeSet<String> = own.iter().cloned().collect();
        for object in self.list("locks")? {
            let url = self.root.with_key(object.location.as_ref());
            // Gone since the listing: that pipeline unregistered.
            let Some(bytes) = read_object(&self.store, &url)? else {
                continue;
            };
            let reg: Registration = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Bookkeeping(format!(
                    "{url} is not a pipeline registration dflow can read ({e}); nothing was collected: fix or delete it"
                ))
            })?;
            if reg.format != REGISTRATION_FORMAT {
                return Err(Error::Bookkeeping(format!(
                    "{url} is of registration format {}, not {REGISTRATION_FORMAT}; nothing was collected",
                    reg.format
                )));
            }
            report.registrations += 1;
            referenced.extend(reg.keys);
        }
        let cutoff = cutoff_ms(grace);
        let mut kept_blobs = std::collections::BTreeSet::new();
        let mut garbage = Vec::new();
        for object in self.list("entries")? {
            let key = object
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .unwrap_or_default()
                .to_string();
            let keep = if referenced.contains(&key) {
                report.referenced += 1;
                true
            } else if object.last_modified.timestamp_millis() > cutoff {
                report.recent += 1;
                true
            } else {
                false
            };
            if keep {
                if let Some(m) = self.manifest(&key)? {
                    kept_blobs.extend(m.files.into_iter().map(|f| f.blake3));
                }
            } else {
                garbage.push((key, object));
            }
        }
        for (key, object) in garbage {
            report.bytes += object.size;
            if !dry_run {
                self.delete(object.location)?;
            }
            report.removed.push(key);
        }
        for object in self.list("blobs")? {
            let digest = object.location.filename().unwrap_or_default();
            if kept_blobs.contains(digest) || object.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            report.bytes += object.size;
            report.blobs_removed += 1;
            if !dry_run {
                self.delete(object.location)?;
            }
        }
        report.removed.sort();
        Ok(report)
    }

    fn upload_blob(&self, path: &Path, blake3: &str, bytes: u64) -> Result<()> {
        let url = self.blob_url(blake3);
        let store = self.store.clone();
        let key = url.object_path();
        let exists = block_on({
            let (store, key) = (store.clone(), key.clone());
            async move { store.head(&key).await }
        })?;
        match exists {
            Ok(meta) if meta.size == bytes => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e, format_args!("reading {url}"))),
        }
        upload_file(&self.store, &url, path)
    }
}

/// The time `grace` ago, in milliseconds since the Unix epoch (the
/// store's clock and ours are taken to agree within the grace period).
fn cutoff_ms(grace: std::time::Duration) -> i64 {
    let now = crate::cache::files::unix_ms() as i64;
    now.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX))
}

/// A manifest's path as a relative path that stays inside the entry (a
/// manifest is input from a shared store: `..` or an absolute path in it
/// must not write elsewhere).
fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(Error::data(format!(
            "a shared-cache manifest names the file `{path}`, which would be outside its entry"
        )));
    }
    Ok(p.to_path_buf())
}

struct HashingWriter {
    file: File,
    hasher: blake3::Hasher,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_entry() {
        assert!(safe_relative("parts/out-0.parquet").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
