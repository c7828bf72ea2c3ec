//! The content-addressed cache: keys, entries and their checks, the entry
//! store and its staging, the lock file, the registry of the pipelines that
//! use the cache, garbage collection, verification, the stat cache of
//! source files, and the cache's shared tier in an object store.

pub mod entry;
pub mod files;
pub mod gc;
pub mod key;
pub mod lease;
pub mod lockfile;
pub mod output;
pub mod pipelines;
pub mod shared;
pub mod staging;
pub mod statcache;
pub mod store;
pub mod verify;

pub use entry::{Damage, EntryMeta, EntryOutput};
pub use key::{KeyBuilder, canonical_json, params_digest};
pub use lockfile::{LockFile, NodeLock, OutputLock, UnitLock};
pub use output::{NodeOutput, PortData};
pub use shared::SharedCache;
pub use statcache::StatCache;
pub use store::{CacheStore, Probe};
