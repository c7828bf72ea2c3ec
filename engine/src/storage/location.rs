//! What a path in a pipeline names: a local file or an object in a store.

use std::fmt;
use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use url::Url;

use crate::error::{Error, Result};

/// The kind of store an object URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `s3://bucket/key` (and `s3a://`): Amazon S3 or any S3-compatible
    /// server (`AWS_ENDPOINT_URL`).
    S3,
    /// `gs://bucket/key`: Google Cloud Storage.
    Gcs,
    /// `az://container/key` (and `abfs://`, `abfss://`, `azure://`): Azure
    /// Blob Storage.
    Azure,
    /// `http://` and `https://`: plain HTTP, read-only and never listed.
    Http,
}

impl StoreKind {
    fn of_scheme(scheme: &str) -> Option<Self> {
        Some(match scheme {
            "s3" | "s3a" => StoreKind::S3,
            "gs" => StoreKind::Gcs,
            "az" | "abfs" | "abfss" | "azure" => StoreKind::Azure,
            "http" | "https" => StoreKind::Http,
            _ => return None,
        })
    }

    /// Whether the store can list a prefix (HTTP cannot).
    pub fn can_list(self) -> bool {
        self != StoreKind::Http
    }

    /// Whether the store can publish with a create-only put, which the cache
    /// needs (HTTP cannot).
    pub fn can_create_only(self) -> bool {
        self != StoreKind::Http
    }
}

/// An object in a store: the store (scheme and authority) and the key in
/// it. Never holds credentials: [`ObjectUrl::parse`] refuses them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectUrl {
    /// `scheme://authority`, no trailing slash.
    store: String,
    /// The key in the store, without a leading slash.
    key: String,
}

impl ObjectUrl {
    /// Parses `scheme://authority/key`. Refuses unknown schemes, URLs with
    /// a user name, password or query (they would end up in lock files and
    /// logs: credentials belong in the environment), and a missing bucket.
    pub fn parse(text: &str) -> Result<Self> {
        let url =
            Url::parse(text).map_err(|e| Error::config(format!("`{text}` is not a URL: {e}")))?;
        let scheme = url.scheme();
        let kind = StoreKind::of_scheme(scheme).ok_or_else(|| {
            Error::config(format!(
                "`{scheme}://` is not a store dflow knows: use s3://, gs://, az://, https:// or file:// (or a plain path)"
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config(format!(
                "a {scheme}:// URL with credentials in it is refused (they would be written to lock files and logs): give them in the environment (AWS_ACCESS_KEY_ID, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY, ...)"
            )));
        }
        if url.query().is_some() {
            return Err(Error::config(format!(
                "a {scheme}:// URL with a query string is refused (signed URLs carry credentials that would be written to lock files): give credentials in the environment"
            )));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            let what = if kind == StoreKind::Http {
                "host"
            } else {
                "bucket"
            };
            return Err(Error::config(format!("`{text}` names no {what}")));
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let key = percent_decode(url.path().trim_start_matches('/'));
        Ok(Self {
            store: format!("{scheme}://{authority}"),
            key,
        })
    }

    /// The kind of store.
    pub fn kind(&self) -> StoreKind {
        let scheme = self.store.split("://").next().unwrap_or_default();
        StoreKind::of_scheme(scheme).unwrap_or(StoreKind::Http)
    }

    /// `scheme://authority`: what one client serves.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The key in the store (no leading slash; may be empty for a root).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key as object_store's path.
    pub fn object_path(&self) -> ObjectPath {
        ObjectPath::from(self.key.as_str())
    }

    /// This URL with `rel` (a `/`-separated relative key) appended.
    pub fn join(&self, rel: &str) -> Self {
        let rel = rel.trim_start_matches('/');
        let key = if self.key.is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            self.key.clone()
        } else {
            format!("{}/{rel}", self.key.trim_end_matches('/'))
        };
        Self {
            store: self.store.clone(),
            key,
        }
    }

    /// The object at `key` in the same store.
    pub fn with_key(&self, key: &str) -> Self {
        Self {
            store: self.store.clone(),
            key: key.trim_start_matches('/').to_string(),
        }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.key)
    }
}

impl fmt::Debug for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectUrl({self})")
    }
}

/// Keys are written percent-encoded in URLs (`%20`); the store wants them
/// decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// Where a file is: on local disk or in an object store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// An object in a store.
    Object(ObjectUrl),
}

impl Location {
    /// Parses a path as written in a pipeline or on the command line: a URL
    /// with a scheme (`file://` becomes a local path), or a plain path,
    /// relative to `base` unless absolute.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("file://") {
            let path = PathBuf::from(percent_decode(rest));
            return Ok(Location::Local(path));
        }
        if is_url(text) {
            return ObjectUrl::parse(text).map(Location::Object);
        }
        let p = Path::new(text);
        Ok(Location::Local(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }))
    }

    /// The local path, if the location is local.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object(_) => None,
        }
    }

    /// The object URL, if the location is in a store.
    pub fn object(&self) -> Option<&ObjectUrl> {
        match self {
            Location::Local(_) => None,
            Location::Object(o) => Some(o),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Object(o) => write!(f, "{o}"),
        }
    }
}

/// Whether `text` starts with `scheme://` (a Windows drive `C:\` is not).
pub fn is_url(text: &str) -> bool {
    match text.split_once("://") {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls_and_plain_paths() {
        let base = Path::new("/p");
        let loc = Location::parse("s3://bucket/crawl/a%20b.warc.gz", base).expect("s3");
        let obj = loc.object().expect("object");
        assert_eq!(obj.kind(), StoreKind::S3);
        assert_eq!(obj.store(), "s3://bucket");
        assert_eq!(obj.key(), "crawl/a b.warc.gz");
        assert_eq!(
            Location::parse("data/x.warc", base).expect("plain"),
            Location::Local(PathBuf::from("/p/data/x.warc"))
        );
        assert_eq!(
            Location::parse("file:///abs/x", base).expect("file"),
            Location::Local(PathBuf::from("/abs/x"))
        );
        let http = ObjectUrl::parse("http://127.0.0.1:8080/a/b").expect("http");
        assert_eq!(http.store(), "http://127.0.0.1:8080");
        assert_eq!(http.kind(), StoreKind::Http);
        assert!(!http.kind().can_list());
        assert_eq!(
            ObjectUrl::parse("gs://b/x")
                .expect("gs")
                .join("y/z")
                .to_string(),
            "gs://b/x/y/z"
        );
    }

    #[test]
    fn refuses_unknown_schemes_and_credentials() {
        let msg = |t: &str| Location::parse(t, Path::new("/")).expect_err(t).to_string();
        assert!(msg("ftp://host/x").contains("not a store dflow knows"));
        let secret = msg("https://user:hunter2@host/x");
        assert!(secret.contains("credentials"), "{secret}");
        assert!(!secret.contains("hunter2"), "{secret}");
        let signed = msg("https://host/x?X-Amz-Signature=abc");
        assert!(!signed.contains("abc"), "{signed}");
        assert!(msg("s3:///key").contains("names no bucket"));
    }
}
