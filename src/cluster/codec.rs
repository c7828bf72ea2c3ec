//! How [`UnitsExec`] travels between client, scheduler and executors:
//! Ballista's own codec for every other plan node, and for ours a tag byte
//! no protobuf message starts with, then the dflow build and the units as
//! JSON. An executor of another dflow build refuses the plan with a message
//! that says so, instead of running units whose keys it would compute
//! differently.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use dflow_engine::exec::UnitTask;
use serde::{Deserialize, Serialize};

use super::units_exec::{UnitsExec, Worker};

/// The first byte of an encoded [`UnitsExec`]: a protobuf message cannot
/// start with it (its wire type bits would be 7), so it cannot be mistaken
/// for a node of Ballista's codec.
const TAG: u8 = 0xFF;

/// The dflow build a plan was made by: executors run only plans of theirs.
pub const BUILD: &str = concat!("dflow ", env!("CARGO_PKG_VERSION"), " (units wire 1)");

#[derive(Serialize, Deserialize)]
struct Envelope {
    build: String,
    tasks: Vec<UnitTask>,
}

/// Ballista's codec, and dflow's units.
#[derive(Debug, Default)]
pub struct DflowCodec {
    inner: BallistaPhysicalExtensionCodec,
    /// Where decoded units run (executors only).
    worker: Option<Arc<Worker>>,
}

impl DflowCodec {
    /// The codec of an executor, whose units run on `worker`.
    pub fn for_executor(worker: Arc<Worker>) -> Self {
        Self {
            inner: BallistaPhysicalExtensionCodec::default(),
            worker: Some(worker),
        }
    }
}

impl PhysicalExtensionCodec for DflowCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some((&TAG, body)) = buf.split_first() else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let envelope = decode_envelope(body)?;
        let [seed] = inputs else {
            return Err(DataFusionError::Internal(
                "UnitsExec arrived without its seed".into(),
            ));
        };
        Ok(Arc::new(UnitsExec::new(
            Arc::new(envelope.tasks),
            seed.clone(),
            self.worker.clone(),
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let Some(units) = node.downcast_ref::<UnitsExec>() else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        buf.push(TAG);
        let envelope = Envelope {
            build: BUILD.to_string(),
            tasks: units.tasks().to_vec(),
        };
        serde_json::to_writer(buf, &envelope).map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// Reads an envelope, refusing one of another build.
fn decode_envelope(body: &[u8]) -> DfResult<Envelope> {
    #[derive(Deserialize)]
    struct Build {
        build: String,
    }
    let build = serde_json::from_slice::<Build>(body)
        .map(|b| b.build)
        .unwrap_or_else(|_| "an unknown build".into());
    if build != BUILD {
        return Err(DataFusionError::Plan(format!(
            "this executor runs {BUILD} but the run was planned by {build}: \
             run the same dflow build on the client, the scheduler and every executor"
        )));
    }
    serde_json::from_slice(body).map_err(|e| DataFusionError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_build_is_refused_by_name() {
        let body = br#"{"build":"dflow 0.0.1 (units wire 0)","tasks":[]}"#;
        let Err(e) = decode_envelope(body) else {
            panic!("another build was accepted")
        };
        let msg = e.to_string();
        assert!(msg.contains("dflow 0.0.1 (units wire 0)"), "{msg}");
        assert!(msg.contains(BUILD), "{msg}");
    }
}
