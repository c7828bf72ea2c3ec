//! Expanding a glob over a store: list the longest literal prefix, keep the
//! keys the pattern matches (`*` stays within one `/` segment, `**` crosses
//! them, as with local globs).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::storage::location::ObjectUrl;
use crate::storage::stores::{block_on, store_error, store_for};

/// An object found by [`list_matching`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// Where it is.
    pub url: ObjectUrl,
    /// Its size in bytes.
    pub size: u64,
    /// The store's entity tag, if it gives one: changes whenever the
    /// object's content does.
    pub e_tag: Option<String>,
}

/// The objects `pattern` names, sorted by key: the one object when the key
/// has no wildcard (it must exist), every matching object otherwise (none is
/// not an error here). A glob on a store that cannot list (HTTP) is a
/// configuration error that says to list the files instead.
pub fn list_matching(pattern: &ObjectUrl) -> Result<Vec<ListedFile>> {
    let key = pattern.key();
    let store = store_for(pattern)?;
    if !key.contains(['*', '?', '[']) {
        let path = pattern.object_path();
        let meta = block_on(async move { store.head(&path).await })?
            .map_err(|e| store_error(e, format_args!("reading {pattern}")))?;
        let file = ListedFile {
            url: pattern.clone(),
            size: meta.size,
            e_tag: meta.e_tag,
        };
        remember_listed(std::slice::from_ref(&file));
        return Ok(vec![file]);
    }
    if !pattern.kind().can_list() {
        return Err(Error::config(format!(
            "`{pattern}` is a glob, but {} cannot be listed over HTTP: list the files one by one",
            pattern.store()
        )));
    }
    let glob = glob::Pattern::new(key)
        .map_err(|e| Error::config(format!("`{pattern}` is not a valid glob: {e}")))?;
    let literal_end = key.find(['*', '?', '[']).unwrap_or(key.len());
    let prefix = key[..literal_end]
        .rfind('/')
        .map(|slash| key[..slash].to_string());
    let listed: Vec<object_store::ObjectMeta> = block_on(async move {
        let prefix = prefix.map(object_store::path::Path::from);
        store.list(prefix.as_ref()).try_collect().await
    })?
    .map_err(|e| store_error(e, format_args!("listing {pattern}")))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut files: Vec<ListedFile> = listed
        .into_iter()
        .filter(|meta| glob.matches_with(meta.location.as_ref(), options))
        .map(|meta| ListedFile {
            url: pattern.with_key(meta.location.as_ref()),
            size: meta.size,
            e_tag: meta.e_tag,
        })
        .collect();
    files.sort_by(|a, b| a.url.cmp(&b.url));
    remember_listed(&files);
    Ok(files)
}

/// Size and entity tag of every object listed by this process, by URL: a
/// run lists its sources and then digests each one, and the digest is
/// remembered by exactly these two ([`crate::cache::StatCache`]), so the
/// listing spares it one HEAD per object.
static LISTED: LazyLock<Mutex<HashMap<String, ListedStat>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An object's size and entity tag as a listing gave them.
pub type ListedStat = (u64, Option<String>);

fn remember_listed(files: &[ListedFile]) {
    if let Ok(mut listed) = LISTED.lock() {
        for f in files {
            listed.insert(f.url.to_string(), (f.size, f.e_tag.clone()));
        }
    }
}

/// The size and entity tag the latest listing in this process gave `url`.
pub fn listed_stat(url: &ObjectUrl) -> Option<ListedStat> {
    LISTED.lock().ok()?.get(&url.to_string()).cloned()
}
