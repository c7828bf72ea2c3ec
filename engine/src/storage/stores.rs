//! One client per store, built from the environment, and the small runtime
//! their requests run on.
//!
//! Credentials and endpoints come from the variables each SDK documents:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` (an S3-compatible server; `http://` endpoints are
//! allowed since naming one is asking for it), `AWS_SKIP_SIGNATURE=true`
//! for anonymous reads; `GOOGLE_SERVICE_ACCOUNT`, ...; `AZURE_STORAGE_*`.
//! They are read by object_store and never printed: errors name the store
//! (`s3://bucket`) and the key, nothing else.
//!
//! Requests are retried with exponential backoff on transient failures
//! (object_store's policy: up to 10 tries within 3 minutes);
//! `DFLOW_STORE_RETRY_SECS` shortens or lengthens that window.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::storage::location::{ObjectUrl, StoreKind};

static STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(Mutex::default);

/// The runtime every store request runs on: two worker threads of its own,
/// so that synchronous code on any thread (rayon workers, the scheduler's
/// threads, even a thread inside another runtime) can wait for a request.
static IO: LazyLock<std::result::Result<Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dflow-io")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

/// Starts `fut` on the store runtime without waiting for it.
pub fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = IO
        .as_ref()
        .map_err(|e| Error::internal(format!("starting the object-store runtime: {e}")))?;
    Ok(rt.spawn(fut))
}

/// Runs `fut` on the store runtime and waits for it from this thread.
pub fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    futures::executor::block_on(spawn(fut)?)
        .map_err(|e| Error::internal(format!("an object-store request failed to run: {e}")))
}

/// The client for the store of `url`, built on first use.
pub fn store_for(url: &ObjectUrl) -> Result<Arc<dyn ObjectStore>> {
    let mut stores = STORES
        .lock()
        .map_err(|_| Error::internal("object-store registry mutex poisoned"))?;
    if let Some(store) = stores.get(url.store()) {
        return Ok(store.clone());
    }
    let store = build(url)?;
    stores.insert(url.store().to_string(), store.clone());
    Ok(store)
}

/// Makes `store` serve every URL of `store_url` (`s3://bucket`) in this
/// process, in place of the client the environment would give: for tests
/// that wrap a real store to inject failures, and for embedding programs.
pub fn register(store_url: &str, store: Arc<dyn ObjectStore>) {
    if let Ok(mut stores) = STORES.lock() {
        stores.insert(store_url.trim_end_matches('/').to_string(), store);
    }
}

fn retry() -> RetryConfig {
    let mut retry = RetryConfig::default();
    if let Some(secs) = std::env::var("DFLOW_STORE_RETRY_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        retry.retry_timeout = Duration::from_secs_f64(secs);
        if secs < 1.0 {
            retry.max_retries = 0;
        }
    }
    retry
}

fn build(url: &ObjectUrl) -> Result<Arc<dyn ObjectStore>> {
    let store_url = url.store();
    let failed = |e: object_store::Error| {
        Error::Store(format!("cannot set up a client for {store_url}: {e}"))
    };
    let store: Arc<dyn ObjectStore> = match url.kind() {
        StoreKind::S3 => {
            let mut b = AmazonS3Builder::from_env().with_url(store_url);
            // Naming an http:// endpoint (a local S3 server) is asking for it.
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            if endpoint.starts_with("http://") {
                b = b.with_allow_http(true);
            }
            Arc::new(b.with_retry(retry()).build().map_err(failed)?)
        }
        StoreKind::Gcs => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(store_url)
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        StoreKind::Azure => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(store_url)
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        StoreKind::Http => Arc::new(
            HttpBuilder::new()
                .with_url(store_url)
                .with_client_options(
                    ClientOptions::new().with_allow_http(store_url.starts_with("http://")),
                )
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
    };
    Ok(store)
}

/// The bytes of the object `url` read through `store` (the client of its
/// store), or `None` when there is no such object.
pub fn read_object(store: &Arc<dyn ObjectStore>, url: &ObjectUrl) -> Result<Option<bytes::Bytes>> {
    let (store, path) = (store.clone(), url.object_path());
    block_on(async move {
        match store.get(&path).await {
            Ok(r) => r.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    })?
    .map_err(|e| store_error(e, format_args!("reading {url}")))
}

/// An object_store error as a dflow error that names what was being done
/// (`reading s3://bucket/key`) and says what to check; a missing object is a
/// data error, everything else (credentials, network, bucket) a store error.
pub fn store_error(e: object_store::Error, doing: impl std::fmt::Display) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::data(format!("{doing}: no such object")),
        object_store::Error::PermissionDenied { .. } => Error::Store(format!(
            "{doing}: permission denied (403): the credentials in the environment may not read or write it"
        )),
        object_store::Error::Unauthenticated { .. } => Error::Store(format!(
            "{doing}: the store refused the credentials (401/403): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the store's own variables)"
        )),
        other => {
            // Some clients report a refused signature as a generic error
            // with the HTTP status in its text (S3 listing: 403
            // SignatureDoesNotMatch).
            let text = other.to_string();
            if text.contains("403 Forbidden") || text.contains("401 Unauthorized") {
                Error::Store(format!(
                    "{doing}: the store refused the request (401/403): check the credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or the store's own variables): {text}"
                ))
            } else {
                Error::Store(format!("{doing}: {text}"))
            }
        }
    }
}
