//! Object stores for DataFusion inside the cluster: the scheduler plans
//! and executors read `dflow sql --cluster`'s tables straight from the
//! store, with clients built from the environment as every other dflow
//! store client is ([`dflow_engine::storage::stores`]).

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use dflow_engine::storage::{ObjectUrl, stores};
use object_store::ObjectStore;
use url::Url;

/// Finds a store for any URL DataFusion asks for: local files as
/// DataFusion's own registry does, object stores through dflow's clients.
#[derive(Debug, Default)]
pub struct EnvRegistry {
    registered: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.registered.get_store(url) {
            return Ok(store);
        }
        let object =
            ObjectUrl::parse(url.as_str()).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store =
            stores::store_for(&object).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.registered.register_store(url, store.clone());
        Ok(store)
    }
}
