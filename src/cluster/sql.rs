//! `dflow sql --cluster`: a query over the pipeline's tables runs on the
//! cluster. Each table is the Parquet files of its partitions as they are
//! published in the shared cache (`blobs/<2 hex>/<blake3>`), so the
//! scheduler plans over them and executors read them straight from the
//! store; the client only sends the query and receives the result.

use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use dflow_engine::cache::lockfile::OutputLock;
use dflow_engine::cache::{LockFile, SharedCache};
use dflow_engine::sql::{register_urls, table_name};
use dflow_engine::{Error, Plan};

use super::stores::EnvRegistry;

/// A session whose queries run on the cluster at `scheduler`, over every
/// table of `plan` that the lock file records, read from `shared`.
pub fn cluster_session(
    scheduler: &str,
    plan: &Plan,
    lock: &LockFile,
    shared: &SharedCache,
) -> Result<SessionContext, Error> {
    let (host, port) = super::roles::split_host_port(scheduler)?;
    super::client::check_reachable(scheduler, &host, port)?;
    let config = SessionConfig::new_with_ballista()
        .with_ballista_job_name("dflow sql")
        // The files are content-addressed and their schema is known: no
        // footer reads while planning.
        .set_bool("datafusion.execution.collect_statistics", false);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(
            RuntimeEnvBuilder::new()
                .with_object_store_registry(Arc::new(EnvRegistry::default()))
                .build_arc()?,
        )
        .build()
        .upgrade_for_ballista(format!("http://{host}:{port}"))?;
    let ctx = SessionContext::new_with_state(state);
    for node in &plan.nodes {
        let Some(nl) = lock.node(&plan.spec.name, &node.id) else {
            continue;
        };
        for (port, ty) in &node.outputs {
            let (Some(OutputLock::Table { parts, .. }), Some(schema)) =
                (nl.outputs.get(port), ty.table_schema())
            else {
                continue;
            };
            let urls: Vec<String> = parts
                .iter()
                .map(|p| shared.blob_url(&p.digest).to_string())
                .collect();
            register_urls(&ctx, &table_name(&node.id, port), schema.clone(), &urls)?;
        }
    }
    Ok(ctx)
}
