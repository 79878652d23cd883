//! Conversions between wire types (`pb`) and domain types (`mixmon_model`). Every `TryFrom`
//! here validates: a message that passes is safe to store, key and display.

use mixmon_model::{
    CheckId, CheckKind, CheckSpec, FailureKind, HttpCheck, IdError, PhaseTimings, ProbeResult, ProberId,
    ProberIdentity, Region,
};

use crate::pb;

/// Longest free-text field (error messages, node names, versions) kept from the wire.
pub const MAX_TEXT_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{field}: {source}")]
    Id { field: &'static str, source: IdError },
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl From<ConvertError> for tonic::Status {
    fn from(err: ConvertError) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

fn id<T>(field: &'static str, value: String, make: fn(String) -> Result<T, IdError>) -> Result<T, ConvertError> {
    make(value).map_err(|source| ConvertError::Id { field, source })
}

fn text(value: String) -> String {
    if value.len() <= MAX_TEXT_LEN {
        return value;
    }
    let mut end = MAX_TEXT_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

impl TryFrom<pb::ProberIdentity> for ProberIdentity {
    type Error = ConvertError;
    fn try_from(p: pb::ProberIdentity) -> Result<Self, ConvertError> {
        Ok(ProberIdentity {
            id: id("identity.prober_id", p.prober_id, ProberId::new)?,
            region: id("identity.region", p.region, Region::new)?,
            node: text(p.node),
            version: text(p.version),
        })
    }
}

impl From<&ProberIdentity> for pb::ProberIdentity {
    fn from(p: &ProberIdentity) -> Self {
        pb::ProberIdentity {
            prober_id: p.id.to_string(),
            region: p.region.to_string(),
            node: p.node.clone(),
            version: p.version.clone(),
        }
    }
}

impl TryFrom<pb::CheckSpec> for CheckSpec {
    type Error = ConvertError;
    fn try_from(c: pb::CheckSpec) -> Result<Self, ConvertError> {
        let check_id = id("check.id", c.id, CheckId::new)?;
        let kind = match c.kind {
            Some(pb::check_spec::Kind::Http(http)) => CheckKind::Http(HttpCheck {
                url: http.url,
                method: if http.method.is_empty() { "GET".into() } else { http.method },
                expected_status: if http.expected_status.is_empty() {
                    vec![200]
                } else {
                    http.expected_status.into_iter().map(|s| u16::try_from(s).unwrap_or(0)).collect()
                },
            }),
            None => return Err(ConvertError::Missing { field: "check.kind" }),
        };
        let spec = CheckSpec { id: check_id, interval_ms: c.interval_ms, timeout_ms: c.timeout_ms, kind };
        let problems = spec.problems();
        if !problems.is_empty() {
            let reason = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Err(ConvertError::Invalid { field: "check", reason });
        }
        Ok(spec)
    }
}

impl From<&CheckSpec> for pb::CheckSpec {
    fn from(c: &CheckSpec) -> Self {
        let kind = match &c.kind {
            CheckKind::Http(http) => pb::check_spec::Kind::Http(pb::HttpCheck {
                url: http.url.clone(),
                method: http.method.clone(),
                expected_status: http.expected_status.iter().map(|s| u32::from(*s)).collect(),
            }),
        };
        pb::CheckSpec { id: c.id.to_string(), interval_ms: c.interval_ms, timeout_ms: c.timeout_ms, kind: Some(kind) }
    }
}

fn failure_from_pb(value: i32) -> Result<Option<FailureKind>, ConvertError> {
    let kind = pb::FailureKind::try_from(value)
        .map_err(|_| ConvertError::Invalid { field: "result.failure", reason: format!("unknown kind {value}") })?;
    Ok(match kind {
        pb::FailureKind::Unspecified => None,
        pb::FailureKind::Timeout => Some(FailureKind::Timeout),
        pb::FailureKind::ConnectionRefused => Some(FailureKind::ConnectionRefused),
        pb::FailureKind::Dns => Some(FailureKind::Dns),
        pb::FailureKind::Tls => Some(FailureKind::Tls),
        pb::FailureKind::BadStatus => Some(FailureKind::BadStatus),
        pb::FailureKind::AssertionFailed => Some(FailureKind::AssertionFailed),
        pb::FailureKind::Connection => Some(FailureKind::Connection),
    })
}

fn failure_to_pb(kind: Option<FailureKind>) -> pb::FailureKind {
    match kind {
        None => pb::FailureKind::Unspecified,
        Some(FailureKind::Timeout) => pb::FailureKind::Timeout,
        Some(FailureKind::ConnectionRefused) => pb::FailureKind::ConnectionRefused,
        Some(FailureKind::Dns) => pb::FailureKind::Dns,
        Some(FailureKind::Tls) => pb::FailureKind::Tls,
        Some(FailureKind::BadStatus) => pb::FailureKind::BadStatus,
        Some(FailureKind::AssertionFailed) => pb::FailureKind::AssertionFailed,
        Some(FailureKind::Connection) => pb::FailureKind::Connection,
    }
}

impl TryFrom<pb::ProbeResult> for ProbeResult {
    type Error = ConvertError;
    fn try_from(r: pb::ProbeResult) -> Result<Self, ConvertError> {
        let failure = failure_from_pb(r.failure)?;
        if failure.is_none() != r.success {
            return Err(ConvertError::Invalid {
                field: "result.success",
                reason: "success must be true exactly when failure is unspecified".into(),
            });
        }
        let status_code = u16::try_from(r.status_code)
            .ok()
            .filter(|s| *s == 0 || (100..=599).contains(s))
            .ok_or_else(|| ConvertError::Invalid { field: "result.status_code", reason: r.status_code.to_string() })?;
        let phases = r.phases.unwrap_or_default();
        Ok(ProbeResult {
            check_id: id("result.check_id", r.check_id, CheckId::new)?,
            started_at_ms: r.started_at_ms,
            failure,
            duration_us: r.duration_us,
            status_code,
            error: text(r.error),
            phases: PhaseTimings {
                dns_us: phases.dns_us,
                connect_us: phases.connect_us,
                tls_us: phases.tls_us,
                first_byte_us: phases.first_byte_us,
                transfer_us: phases.transfer_us,
            },
        })
    }
}

impl From<&ProbeResult> for pb::ProbeResult {
    fn from(r: &ProbeResult) -> Self {
        pb::ProbeResult {
            check_id: r.check_id.to_string(),
            started_at_ms: r.started_at_ms,
            success: r.success(),
            duration_us: r.duration_us,
            failure: failure_to_pb(r.failure) as i32,
            status_code: u32::from(r.status_code),
            error: r.error.clone(),
            phases: Some(pb::PhaseTimings {
                dns_us: r.phases.dns_us,
                connect_us: r.phases.connect_us,
                tls_us: r.phases.tls_us,
                first_byte_us: r.phases.first_byte_us,
                transfer_us: r.phases.transfer_us,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_result() -> pb::ProbeResult {
        pb::ProbeResult {
            check_id: "us-west".into(),
            started_at_ms: 1_700_000_000_000,
            success: false,
            duration_us: 1234,
            failure: pb::FailureKind::Timeout as i32,
            status_code: 0,
            error: "timed out".into(),
            phases: None,
        }
    }

    #[test]
    fn result_round_trips() {
        let model = ProbeResult::try_from(good_result()).unwrap();
        assert_eq!(model.failure, Some(FailureKind::Timeout));
        let back = pb::ProbeResult::from(&model);
        assert_eq!(ProbeResult::try_from(back).unwrap(), model);
    }

    #[test]
    fn garbage_results_are_refused_with_the_field_named() {
        type Mutation = Box<dyn Fn(&mut pb::ProbeResult)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.check_id = "bad id".into()), "result.check_id"),
            (Box::new(|r| r.check_id.clear()), "result.check_id"),
            (Box::new(|r| r.failure = 99), "result.failure"),
            (Box::new(|r| r.success = true), "result.success"),
            (Box::new(|r| r.status_code = 70_000), "result.status_code"),
        ];
        for (mutate, field) in cases {
            let mut r = good_result();
            mutate(&mut r);
            let err = ProbeResult::try_from(r).unwrap_err().to_string();
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn check_spec_round_trips_and_bad_specs_are_refused() {
        let spec = pb::CheckSpec {
            id: "api".into(),
            interval_ms: 10_000,
            timeout_ms: 2_000,
            kind: Some(pb::check_spec::Kind::Http(pb::HttpCheck {
                url: "https://api.example/health".into(),
                method: String::new(),
                expected_status: vec![],
            })),
        };
        let model = CheckSpec::try_from(spec.clone()).unwrap();
        let CheckKind::Http(http) = &model.kind;
        assert_eq!((http.method.as_str(), http.expected_status.as_slice()), ("GET", &[200u16][..]));
        assert_eq!(CheckSpec::try_from(pb::CheckSpec::from(&model)).unwrap(), model);
        let bad = pb::CheckSpec { timeout_ms: 0, ..spec.clone() };
        assert!(CheckSpec::try_from(bad).is_err());
        let no_kind = pb::CheckSpec { kind: None, ..spec };
        assert_eq!(CheckSpec::try_from(no_kind).unwrap_err(), ConvertError::Missing { field: "check.kind" });
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let cut = text("é".repeat(MAX_TEXT_LEN));
        assert!(cut.len() <= MAX_TEXT_LEN && cut.chars().all(|c| c == 'é'));
    }
}
