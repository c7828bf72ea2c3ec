//! The registry of operators and SQL row functions. The engine knows no
//! operator by name: each operator crate has a `register(&mut Registry)` that
//! the CLI calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::operator::{Operator, PlanContext};

/// Why params could not become an operator.
#[derive(Debug)]
pub enum BuildError {
    /// Serde rejected the params (unknown field, wrong type, missing field).
    Params(serde_path_to_error::Error<serde_json::Error>),
    /// Well-formed params with a bad value; `pointer` is a JSON pointer into
    /// the params (`/paths/0`) when the value can be located.
    Invalid {
        /// JSON pointer to the bad value, when it can be located.
        pointer: Option<String>,
        /// What is wrong with the value.
        message: String,
        /// How to fix it, shown under the message.
        help: Option<String>,
    },
}

impl BuildError {
    /// A [`BuildError::Invalid`] at `pointer` with `message` and no help.
    pub fn invalid(pointer: &str, message: impl Into<String>) -> Self {
        BuildError::Invalid {
            pointer: Some(pointer.to_string()),
            message: message.into(),
            help: None,
        }
    }

    /// Sets the help line of an `Invalid` error; a `Params` error is returned unchanged.
    pub fn with_help(self, help: impl Into<String>) -> Self {
        match self {
            BuildError::Invalid {
                pointer, message, ..
            } => BuildError::Invalid {
                pointer,
                message,
                help: Some(help.into()),
            },
            other => other,
        }
    }
}

/// The params an operator leaves out of its cache keys, and so out of
/// `status`'s comparison: for sources, the params that choose which files
/// are read (the files' contents are the data, so adding a file does not
/// invalidate the others); for other operators, settings that cannot change
/// the output (how often `train` checkpoints). The one place that decides
/// which params a key sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySelection(&'static [&'static str]);

impl KeySelection {
    /// Leaves the params named in `fields` out of keys.
    pub const fn without(fields: &'static [&'static str]) -> Self {
        Self(fields)
    }

    /// The params left out of keys.
    pub fn left_out(&self) -> &'static [&'static str] {
        self.0
    }

    /// `params` as cache keys see them (also applied to params read back
    /// from a lock file, so that `status` compares like with like).
    pub fn key_params(&self, params: &Value) -> Value {
        let mut key_params = params.clone();
        if let Value::Object(map) = &mut key_params {
            for s in self.0 {
                map.remove(*s);
            }
        }
        key_params
    }
}

/// An operator built from params.
pub struct Built {
    /// The operator.
    pub op: Arc<dyn Operator>,
    /// Canonical params: typed, defaults filled.
    pub params: Value,
    /// Which params stay out of cache keys.
    pub selection: KeySelection,
}

type BuildFn = dyn Fn(Value, &PlanContext) -> Result<Built, BuildError> + Send + Sync;

/// A registered operator: its name, summary, params schema and builder.
pub struct OpInfo {
    /// The name that pipeline files use in `op:`.
    pub name: &'static str,
    /// One line on what the operator does.
    pub summary: &'static str,
    /// JSON Schema of the params (from the typed struct and its doc comments).
    pub params_schema: Value,
    build: Box<BuildFn>,
}

impl OpInfo {
    /// Builds the operator from raw params, checking them against its typed struct.
    pub fn build(&self, params: Value, ctx: &PlanContext) -> Result<Built, BuildError> {
        (self.build)(params, ctx)
    }
}

/// Every operator and SQL row function the CLI knows.
#[derive(Default)]
pub struct Registry {
    ops: BTreeMap<&'static str, OpInfo>,
    udfs: Vec<ScalarUDF>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an operator whose params are the typed struct `P`
    /// (`#[serde(deny_unknown_fields)]`, defaults via `#[serde(default)]`).
    pub fn register<P, F>(&mut self, name: &'static str, summary: &'static str, build: F)
    where
        P: DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
        F: Fn(P, &PlanContext) -> Result<Arc<dyn Operator>, BuildError> + Send + Sync + 'static,
    {
        self.register_with_selection::<P, F>(name, summary, &[], build)
    }

    /// Like [`Registry::register`], with the params named in `selection`
    /// left out of cache keys (and of `status`'s comparison): for sources,
    /// the params that choose which files are read (the files' contents are
    /// the data); for other operators, settings that cannot change the
    /// output (how often `train` checkpoints).
    pub fn register_with_selection<P, F>(
        &mut self,
        name: &'static str,
        summary: &'static str,
        selection: &'static [&'static str],
        build: F,
    ) where
        P: DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
        F: Fn(P, &PlanContext) -> Result<Arc<dyn Operator>, BuildError> + Send + Sync + 'static,
    {
        let build = move |raw: Value, ctx: &PlanContext| -> Result<Built, BuildError> {
            let typed: P = serde_path_to_error::deserialize(raw).map_err(BuildError::Params)?;
            let params = serde_json::to_value(&typed).map_err(|e| BuildError::Invalid {
                pointer: None,
                message: format!("params cannot be serialised: {e}"),
                help: None,
            })?;
            let op = build(typed, ctx)?;
            Ok(Built {
                op,
                params,
                selection: KeySelection::without(selection),
            })
        };
        let params_schema = serde_json::to_value(schemars::schema_for!(P)).unwrap_or(Value::Null);
        self.ops.insert(
            name,
            OpInfo {
                name,
                summary,
                params_schema,
                build: Box::new(build),
            },
        );
    }

    /// Registers a row function usable in `op: sql` and `dflow sql`.
    pub fn register_udf(&mut self, udf: ScalarUDF) {
        self.udfs.push(udf);
    }

    /// The operator registered as `name`.
    pub fn op(&self, name: &str) -> Option<&OpInfo> {
        self.ops.get(name)
    }

    /// The names of all operators, sorted.
    pub fn op_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.ops.keys().copied()
    }

    /// All operators, sorted by name.
    pub fn ops(&self) -> impl Iterator<Item = &OpInfo> {
        self.ops.values()
    }

    /// The registered SQL row functions.
    pub fn udfs(&self) -> &[ScalarUDF] {
        &self.udfs
    }
}
