//! Uploading a local file to a store: one request for a small file, a
//! multipart upload for a large one, reading one part at a time so that
//! memory stays bounded whatever the file's size.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::{Error, Result, ResultExt};
use crate::storage::location::ObjectUrl;
use crate::storage::stores::{block_on, store_error};

/// Files up to this size are uploaded in one request; larger ones in parts
/// of this size (multipart upload), read from disk one part at a time.
pub const PART_BYTES: usize = 8 << 20;

/// Uploads the local file `path` to `url` through `store` (the client of
/// `url`'s store; overwriting what is there).
pub fn upload_file(store: &Arc<dyn ObjectStore>, url: &ObjectUrl, path: &Path) -> Result<()> {
    let store = store.clone();
    let key = url.object_path();
    let mut file = File::open(path).context(|| format!("reading {}", path.display()))?;
    let bytes = file
        .metadata()
        .context(|| format!("reading {}", path.display()))?
        .len();
    if bytes <= PART_BYTES as u64 {
        let mut body = Vec::with_capacity(bytes as usize);
        file.read_to_end(&mut body)
            .context(|| format!("reading {}", path.display()))?;
        return block_on(async move { store.put(&key, PutPayload::from(body)).await })?
            .map(|_| ())
            .map_err(|e| store_error(e, format_args!("uploading {url}")));
    }
    let shown = path.display().to_string();
    block_on(async move { upload_parts(store, key, file, shown).await })?.map_err(|e| match e {
        PartError::Store(e) => store_error(e, format_args!("uploading {url}")),
        PartError::Local(e) => e,
    })
}

enum PartError {
    Store(object_store::Error),
    Local(Error),
}

/// A multipart upload of `file`, one part in memory per request in flight.
async fn upload_parts(
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    mut file: File,
    shown: String,
) -> std::result::Result<(), PartError> {
    let upload = store.put_multipart(&key).await.map_err(PartError::Store)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut buf = vec![0; PART_BYTES];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(PartError::Local(Error::Context {
                    context: format!("reading {shown}"),
                    source: Box::new(Error::Io(e)),
                }));
            }
        };
        if n == 0 {
            break;
        }
        writer
            .wait_for_capacity(2)
            .await
            .map_err(PartError::Store)?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map(|_| ()).map_err(PartError::Store)
}
