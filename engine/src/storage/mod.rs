//! Where files live: a local path or an object in a store (S3, GCS, Azure,
//! plain HTTP), behind one interface, so that sources, the cache and exports
//! can be on either without the operators knowing.
//!
//! - [`Location`] parses what a user writes (`data/*.warc.gz`,
//!   `s3://bucket/crawl/*.warc.gz`, `https://host/file`) and refuses what
//!   would leak a secret into a lock file (credentials in a URL).
//! - [`stores`] builds one client per store from the usual environment
//!   (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and runs its requests on a small I/O
//!   runtime of its own, so synchronous operator code can call it.
//! - [`ObjectReader`] reads an object with ranged GETs, one block and one
//!   read-ahead block in memory whatever the object's size.
//! - [`list_matching`] expands globs over a store's listing.
//! - [`mirror_folder`] keeps a local copy of a folder (model weights).
//! - [`upload_file`] puts a local file, in parts when it is large.

mod list;
mod location;
mod mirror;
mod reader;
pub mod stores;
mod upload;

pub use list::{ListedFile, list_matching, listed_stat};
pub use location::{Location, ObjectUrl, StoreKind, is_url};
pub use mirror::{mirror_file, mirror_folder, mirror_root};
pub use reader::{ObjectReader, SourceFile};
pub use stores::{block_on, read_object, store_error};
pub use upload::{PART_BYTES, upload_file};
