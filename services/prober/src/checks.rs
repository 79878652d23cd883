//! Check engines: each turns one run of a [`CheckSpec`] into a [`ProbeResult`], failures
//! included, so the scheduler never has to handle errors from a probe, only results.

mod http;

pub use http::{CheckError, HttpProber};

use mixmon_model::{CheckKind, CheckSpec, ProbeResult};

/// Runs one probe of `spec` with the engine its kind needs.
///
/// A free function rather than a method on the spec so the scheduler holds one engine per kind
/// (TLS configuration and all) and shares it across every check.
pub async fn run(http: &HttpProber, spec: &CheckSpec, started_at_ms: i64) -> ProbeResult {
    match &spec.kind {
        CheckKind::Http(check) => http.probe(spec, check, started_at_ms).await,
    }
}
