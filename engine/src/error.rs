//! Execution errors, sorted by who can fix them (the DataFusion way): the
//! user's configuration, the input data, the environment (disk, permissions),
//! or dflow itself.

use std::fmt;

/// Result of engine and operator code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error raised while running a pipeline, with a DF3xxx code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline asks for something that cannot be done (a bad param value
    /// that only shows at run time). Code DF3002.
    #[error("{0}")]
    Config(String),
    /// Input data that cannot be read (a missing or corrupt file). DF3003.
    #[error("{0}")]
    Data(String),
    /// The environment failed: disk full, permissions. DF3004.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Arrow could not read or build a batch. DF3003.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A Parquet file could not be read or written. DF3003.
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// DataFusion failed to plan or run a query. DF3003.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// JSON that cannot be parsed or written. DF3003.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Another run holds the cache's writer lock. DF3005.
    #[error("{0}")]
    Busy(String),
    /// The run was cancelled before this unit started. DF3006.
    #[error("the run was cancelled")]
    Cancelled,
    /// A file of the cache's own bookkeeping (`locks.json`, a registered
    /// lock file) cannot be read or trusted, so a command that needs it
    /// refuses rather than guess. DF3007.
    #[error("{0}")]
    Bookkeeping(String),
    /// A statement `dflow sql` refuses without `--allow-write` (it would
    /// write files or define tables). DF3008.
    #[error("{0}")]
    ReadOnly(String),
    /// An object store (S3, GCS, Azure, HTTP) failed or refused a request:
    /// credentials, a missing bucket, an unreachable endpoint. DF3009.
    #[error("{0}")]
    Store(String),
    /// The cluster failed or refused: no scheduler at the address given, no
    /// executor, an executor of another dflow build. DF3010.
    #[error("{0}")]
    Cluster(String),
    /// A bug in dflow or an operator. DF3099.
    #[error("internal error: {0}")]
    Internal(String),
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The error that happened.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An [`Error::Config`] with `msg`.
    pub fn config(msg: impl fmt::Display) -> Self {
        Error::Config(msg.to_string())
    }

    /// An [`Error::Data`] with `msg`.
    pub fn data(msg: impl fmt::Display) -> Self {
        Error::Data(msg.to_string())
    }

    /// An [`Error::Internal`] with `msg`.
    pub fn internal(msg: impl fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }

    /// An error of the kind diagnostic `code` names, with `msg`: what an
    /// error becomes after travelling as text (from a cluster executor).
    pub fn with_code(code: &str, msg: impl fmt::Display) -> Self {
        let msg = msg.to_string();
        match code {
            "DF3002" => Error::Config(msg),
            "DF3003" => Error::Data(msg),
            "DF3004" => Error::Io(std::io::Error::other(msg)),
            "DF3005" => Error::Busy(msg),
            "DF3006" => Error::Cancelled,
            "DF3007" => Error::Bookkeeping(msg),
            "DF3008" => Error::ReadOnly(msg),
            "DF3009" => Error::Store(msg),
            "DF3010" => Error::Cluster(msg),
            _ => Error::Internal(msg),
        }
    }

    /// Whether the innermost error is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Cancelled => true,
            Error::Context { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// The diagnostic code of the innermost error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "DF3002",
            Error::Data(_) | Error::Arrow(_) | Error::Parquet(_) | Error::Json(_) => "DF3003",
            Error::DataFusion(_) => "DF3003",
            Error::Io(_) => "DF3004",
            Error::Busy(_) => "DF3005",
            Error::Cancelled => "DF3006",
            Error::Bookkeeping(_) => "DF3007",
            Error::ReadOnly(_) => "DF3008",
            Error::Store(_) => "DF3009",
            Error::Cluster(_) => "DF3010",
            Error::Internal(_) => "DF3099",
            Error::Context { source, .. } => source.code(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            Error::Config(_) => "fix the node's params in the pipeline file",
            Error::Data(_) | Error::Arrow(_) | Error::Parquet(_) | Error::Json(_) => {
                "check the input file named above; other nodes and partitions still ran"
            }
            Error::DataFusion(_) => "check the query and the input tables (`dflow sql` shows them)",
            Error::Io(_) => "check free disk space and permissions of the cache directory",
            Error::Busy(_) => "wait for the other run, or pass --wait",
            Error::Cancelled => "run again: every unit that finished is in the cache",
            Error::Bookkeeping(_) => "fix or delete the file named above, as the message says",
            Error::ReadOnly(_) => {
                "pass --allow-write to `dflow sql` to let a statement write files or define tables"
            }
            Error::Store(_) => {
                "check the URL, the store's credentials and endpoint in the environment (AWS_*, GOOGLE_*, AZURE_*), and that the store can be reached"
            }
            Error::Cluster(_) => {
                "check that `dflow cluster scheduler` runs at the address given to --cluster, that executors have registered with it, and that all run the same dflow build"
            }
            Error::Internal(_) => "this is a bug in dflow: please report it with the pipeline",
            Error::Context { source, .. } => source.help(),
        }
    }
}

/// Adds context to errors, like `anyhow::Context`.
pub trait ResultExt<T> {
    /// Wraps the error with `context`, computed only when there is an error.
    fn context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().to_string(),
            source: Box::new(e.into()),
        })
    }
}
