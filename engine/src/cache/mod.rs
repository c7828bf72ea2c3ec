//! The content-addressed cache: keys, the entry store, the lock file and the
//! stat cache of source files.

pub mod key;
pub mod lockfile;
pub mod output;
pub mod statcache;
pub mod store;

pub use key::{KeyBuilder, canonical_json, params_digest};
pub use lockfile::{LockFile, NodeLock, OutputLock, UnitLock};
pub use output::{NodeOutput, PortData};
pub use statcache::StatCache;
pub use store::{CacheStore, EntryMeta, EntryOutput};
