//! A run's lease on its pipeline in a shared cache: on local disk one run
//! at a time holds the cache's writer lock (an flock); machines sharing a
//! store have no common file system to lock, so a run of pipeline `name`
//! holds `leases/<name>.json` instead, a small object it writes with
//! conditional puts and renews while it lives.
//!
//! - Taking it: absent, the run creates it (`PutMode::Create`); present and
//!   expired (its holder died without letting go), the run replaces it only
//!   if it still has the entity tag the run read (`PutMode::Update`), so of
//!   two runs that find it expired one wins and the other is told who holds
//!   it.
//! - Keeping it: a thread rewrites it every third of its time to live,
//!   each time on the entity tag of its own last write; a write refused
//!   means another run took it over, which the run says.
//! - Letting go: the run writes it expired (on its own entity tag).
//!
//! Runs of different pipelines do not exclude each other: they publish
//! under content keys, which the create-only manifests make safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::ObjectUrl;
use crate::storage::stores::{block_on, store_error};

/// Seconds a lease lives without renewal (`DFLOW_LEASE_SECS`, default 60).
pub fn lease_ttl() -> Duration {
    let secs = std::env::var("DFLOW_LEASE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// What the lease object says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Holder {
    /// Who holds it: host, process and start time.
    owner: String,
    /// Until when, in Unix milliseconds.
    expires_unix_ms: u64,
}

/// A held lease; let go when dropped.
pub struct Lease {
    url: ObjectUrl,
    store: Arc<dyn ObjectStore>,
    owner: String,
    e_tag: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.url)
    }
}

/// Takes the lease at `url` for `ttl`, renewing it until dropped. With
/// `wait`, waits for a live holder to let go (`on_wait` hears why, once);
/// without, a live holder is an [`Error::Busy`] naming it.
pub fn take(
    store: Arc<dyn ObjectStore>,
    url: ObjectUrl,
    ttl: Duration,
    wait: bool,
    on_wait: &dyn Fn(&str),
) -> Result<Lease> {
    let owner = format!(
        "{} pid {} since {}",
        hostname(),
        std::process::id(),
        unix_ms()
    );
    let mut told = false;
    loop {
        match try_take(&store, &url, &owner, ttl)? {
            Ok(e_tag) => {
                let e_tag = Arc::new(Mutex::new(e_tag));
                let stop = Arc::new(AtomicBool::new(false));
                let renewer = spawn_renewer(
                    store.clone(),
                    url.clone(),
                    owner.clone(),
                    ttl,
                    e_tag.clone(),
                    stop.clone(),
                );
                return Ok(Lease {
                    url,
                    store,
                    owner,
                    e_tag,
                    stop,
                    renewer,
                });
            }
            Err(holder) => {
                let msg = format!(
                    "{url} is held by {} for another {:.0} s: another run of this pipeline \
                     publishes to the shared cache",
                    holder.owner,
                    holder.expires_unix_ms.saturating_sub(unix_ms()) as f64 / 1000.0
                );
                if !wait {
                    return Err(Error::Busy(msg));
                }
                if !told {
                    on_wait(&msg);
                    told = true;
                }
                std::thread::sleep((ttl / 6).max(Duration::from_millis(200)));
            }
        }
    }
}

/// One attempt: the entity tag of the lease now held, or the live holder.
fn try_take(
    store: &Arc<dyn ObjectStore>,
    url: &ObjectUrl,
    owner: &str,
    ttl: Duration,
) -> Result<std::result::Result<Option<String>, Holder>> {
    let (held, e_tag) = match read(store, url)? {
        Some((holder, e_tag)) => (Some(holder), e_tag),
        None => (None, None),
    };
    if let Some(holder) = &held
        && holder.expires_unix_ms > unix_ms()
        && holder.owner != owner
    {
        return Ok(Err(holder.clone()));
    }
    let mode = match (&held, e_tag) {
        (None, _) => PutMode::Create,
        (Some(_), e_tag) => PutMode::Update(UpdateVersion {
            e_tag,
            version: None,
        }),
    };
    match write(store, url, owner, ttl, mode)? {
        Ok(e_tag) => Ok(Ok(e_tag)),
        // Another run wrote it between our read and our write: read again.
        Err(()) => match read(store, url)? {
            Some((holder, _)) if holder.owner != owner => Ok(Err(holder)),
            _ => try_take(store, url, owner, ttl),
        },
    }
}

/// The lease object and its entity tag, if there is one.
fn read(store: &Arc<dyn ObjectStore>, url: &ObjectUrl) -> Result<Option<(Holder, Option<String>)>> {
    let (s, path) = (store.clone(), url.object_path());
    let got = block_on(async move {
        match s.get(&path).await {
            Ok(r) => {
                let e_tag = r.meta.e_tag.clone();
                r.bytes().await.map(|b| Some((b, e_tag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    })?
    .map_err(|e| store_error(e, format_args!("reading {url}")))?;
    let Some((bytes, e_tag)) = got else {
        return Ok(None);
    };
    // An unreadable lease is treated as expired: its holder wrote it with
    // this code, so it is damaged, and taking it over loses nothing.
    let holder = serde_json::from_slice(&bytes).unwrap_or(Holder {
        owner: "a damaged lease".into(),
        expires_unix_ms: 0,
    });
    Ok(Some((holder, e_tag)))
}

/// Writes the lease for `ttl` from now; `Err(())` when the condition
/// failed (someone else wrote it).
fn write(
    store: &Arc<dyn ObjectStore>,
    url: &ObjectUrl,
    owner: &str,
    ttl: Duration,
    mode: PutMode,
) -> Result<std::result::Result<Option<String>, ()>> {
    let expires = if ttl.is_zero() {
        0
    } else {
        unix_ms() + ttl.as_millis() as u64
    };
    let body = serde_json::to_vec(&Holder {
        owner: owner.to_string(),
        expires_unix_ms: expires,
    })?;
    let (s, path) = (store.clone(), url.object_path());
    let put = block_on(async move {
        s.put_opts(&path, PutPayload::from(body), PutOptions::from(mode))
            .await
    })?;
    match put {
        Ok(r) => Ok(Ok(r.e_tag)),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(Err(())),
        Err(e) => Err(store_error(e, format_args!("writing {url}"))),
    }
}

fn spawn_renewer(
    store: Arc<dyn ObjectStore>,
    url: ObjectUrl,
    owner: String,
    ttl: Duration,
    e_tag: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let every = ttl / 3;
    std::thread::Builder::new()
        .name("dflow-lease".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100).min(every));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let Ok(mut tag) = e_tag.lock() else { return };
                let mode = PutMode::Update(UpdateVersion {
                    e_tag: tag.clone(),
                    version: None,
                });
                match write(&store, &url, &owner, ttl, mode) {
                    Ok(Ok(new)) => *tag = new,
                    Ok(Err(())) => {
                        eprintln!(
                            "warning: lost the lease {url} to another run of this pipeline; \
                             this run goes on, and its entries stay safe to publish"
                        );
                        return;
                    }
                    // A store that is down now may answer at the next renewal.
                    Err(e) => eprintln!("warning: renewing the lease {url}: {e}"),
                }
            }
        })
        .ok()
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        let e_tag = self.e_tag.lock().ok().and_then(|t| t.clone());
        let mode = PutMode::Update(UpdateVersion {
            e_tag,
            version: None,
        });
        // Expired on our own tag: a run that took it over keeps it.
        let _ = write(&self.store, &self.url, &self.owner, Duration::ZERO, mode);
    }
}

/// Now, in Unix milliseconds (the lease's own clock: other machines compare
/// it with theirs, so their clocks must roughly agree, as S3's own
/// signatures already require).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "a machine".into())
}
