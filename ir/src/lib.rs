//! dflow-ir: the retrieval primitives that more than one operator crate
//! needs, so that no operator crate depends on another — exact dense top-k
//! ([`dense`]; `evaluate`, and `train`'s evaluation during training) and
//! trec_eval's metrics ([`metrics`]; the same two). It knows nothing of the
//! engine: plain slices and maps in, plain values out.

pub mod dense;
pub mod metrics;
