//! A local copy of a folder in an object store, for inputs that must be
//! local files (model weights, which are memory-mapped): each object is
//! downloaded once and again only when its size or entity tag changes.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ResultExt};
use crate::storage::list::{ListedFile, list_matching};
use crate::storage::location::ObjectUrl;
use crate::storage::reader::ObjectReader;
use crate::storage::stores::store_for;

/// Beside the mirrored files: what they are, by relative path (the
/// object's size and tag).
const STAMPS: &str = "stamps.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Stamp {
    size: u64,
    e_tag: Option<String>,
}

/// Where folders of stores are mirrored: `$DFLOW_MIRROR_DIR`, else
/// `$XDG_CACHE_HOME/dflow/mirror`, else `~/.cache/dflow/mirror`.
pub fn mirror_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("DFLOW_MIRROR_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("dflow").join("mirror")
}

/// Mirrors every object under the folder `url` into a directory of its own
/// under [`mirror_root`] (`<digest of the URL>/files/`), and returns that
/// directory. Objects whose size and entity tag are unchanged are not
/// downloaded again; local files the folder no longer has are removed. An
/// empty folder is an error.
pub fn mirror_folder(url: &ObjectUrl) -> Result<PathBuf> {
    let id = blake3::hash(url.to_string().as_bytes()).to_hex();
    let base = mirror_root().join(&id.as_str()[..32]);
    let dest = base.join("files");
    let folder = url.key().trim_end_matches('/');
    let listed = list_matching(&url.with_key(&format!("{folder}/**")))?;
    if listed.is_empty() {
        return Err(Error::data(format!(
            "{url} holds no files (a model folder must)"
        )));
    }
    std::fs::create_dir_all(&dest).context(|| format!("creating {}", dest.display()))?;
    let stamps_path = base.join(STAMPS);
    let stamps: BTreeMap<String, Stamp> = std::fs::read(&stamps_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut wanted = BTreeMap::new();
    for ListedFile {
        url: file,
        size,
        e_tag,
    } in listed
    {
        let rel = file
            .key()
            .strip_prefix(&format!("{folder}/"))
            .unwrap_or(file.key())
            .to_string();
        let local = inside(&dest, &rel, &file)?;
        let stamp = Stamp { size, e_tag };
        let fresh = stamps.get(&rel) == Some(&stamp)
            && std::fs::metadata(&local).is_ok_and(|m| m.len() == size);
        if !fresh {
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("creating {}", parent.display()))?;
            }
            download(&file, size, &local)?;
        }
        wanted.insert(rel, stamp);
    }
    for old in stamps.keys().filter(|k| !wanted.contains_key(*k)) {
        if let Ok(local) = inside(&dest, old, url) {
            let _ = std::fs::remove_file(local);
        }
    }
    write_stamps(&stamps_path, &wanted)?;
    Ok(dest)
}

/// `rel` under `dest`, refusing keys that would leave it (`..`, absolute).
fn inside(dest: &Path, rel: &str, url: &ObjectUrl) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::data(format!(
            "{url}: the key `{rel}` cannot be mirrored to a local file"
        )));
    }
    Ok(dest.join(p))
}

/// Mirrors the single object `url` (a small input a key must hash: a URL
/// map, a seed list) into `<mirror root>/<digest of the URL>/file`, again
/// only when its size or entity tag changes; returns the local path.
pub fn mirror_file(url: &ObjectUrl) -> Result<PathBuf> {
    let id = blake3::hash(url.to_string().as_bytes()).to_hex();
    let base = mirror_root().join(&id.as_str()[..32]);
    let local = base.join("file");
    let stamps_path = base.join(STAMPS);
    let [ListedFile { size, e_tag, .. }] = <[ListedFile; 1]>::try_from(list_matching(url)?)
        .map_err(|_| Error::data(format!("{url} is not one object")))?;
    let stamp = Stamp { size, e_tag };
    let known: Option<Stamp> = std::fs::read(&stamps_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let fresh =
        known.as_ref() == Some(&stamp) && std::fs::metadata(&local).is_ok_and(|m| m.len() == size);
    if !fresh {
        std::fs::create_dir_all(&base).context(|| format!("creating {}", base.display()))?;
        download(url, size, &local)?;
        write_stamps(&stamps_path, &stamp)?;
    }
    Ok(local)
}

/// Streams the object `url` (`size` bytes) to `local`, through a temporary
/// file renamed into place.
fn download(url: &ObjectUrl, size: u64, local: &Path) -> Result<()> {
    let tmp = local.with_extension("dflow-part");
    let mut out = std::fs::File::create(&tmp).context(|| format!("creating {}", tmp.display()))?;
    let mut reader = ObjectReader::with_size(store_for(url)?, url.clone(), size);
    std::io::copy(&mut reader, &mut out).context(|| format!("downloading {url}"))?;
    out.sync_all()
        .context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, local).context(|| format!("writing {}", local.display()))
}

fn write_stamps(path: &Path, stamps: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(stamps)?)
        .context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("writing {}", path.display()))
}
