//! Conversions between wire types (`pb`) and domain types (`mixmon_model`). Every `TryFrom`
//! here validates: a message that passes is safe to store, key and display.

use mixmon_model::check::DEFAULT_MAX_REDIRECTS;
use mixmon_model::{
    AddressPolicy, BodyAssertion, CheckId, CheckKind, CheckSpec, DnsCheck, DnsRecordType, FailureKind, GrpcCheck,
    HttpCheck, HttpVersion, IdError, IpPreference, PhaseTimings, ProbeDetails, ProbeResult, ProberId, ProberIdentity,
    Region, TcpCheck, TlsInfo,
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
            Some(pb::check_spec::Kind::Http(http)) => CheckKind::Http(http_from_pb(http)?),
            Some(pb::check_spec::Kind::Tcp(tcp)) => CheckKind::Tcp(TcpCheck {
                host: tcp.host,
                port: port("check.tcp.port", tcp.port)?,
                tls: tcp.tls,
                address: address_from_pb(tcp.address)?,
            }),
            Some(pb::check_spec::Kind::Grpc(grpc)) => CheckKind::Grpc(GrpcCheck {
                host: grpc.host,
                port: port("check.grpc.port", grpc.port)?,
                service: grpc.service,
                tls: grpc.tls,
                address: address_from_pb(grpc.address)?,
            }),
            Some(pb::check_spec::Kind::Dns(dns)) => CheckKind::Dns(DnsCheck {
                name: dns.name,
                record_type: if dns.record_type.is_empty() {
                    DnsRecordType::A
                } else {
                    DnsRecordType::parse(&dns.record_type).ok_or_else(|| ConvertError::Invalid {
                        field: "check.dns.record_type",
                        reason: format!("unknown type {:?}", dns.record_type),
                    })?
                },
                server: Some(dns.server).filter(|s| !s.is_empty()),
                expected: dns.expected,
            }),
            None => return Err(ConvertError::Missing { field: "check.kind" }),
        };
        let phase_shift_ms = if c.interval_ms == 0 { 0 } else { c.phase_shift_ms % c.interval_ms };
        let spec =
            CheckSpec { id: check_id, interval_ms: c.interval_ms, timeout_ms: c.timeout_ms, phase_shift_ms, kind };
        let problems = spec.problems();
        if !problems.is_empty() {
            let reason = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Err(ConvertError::Invalid { field: "check", reason });
        }
        Ok(spec)
    }
}

fn port(field: &'static str, value: u32) -> Result<u16, ConvertError> {
    u16::try_from(value).map_err(|_| ConvertError::Invalid { field, reason: format!("port {value} is above 65535") })
}

fn http_from_pb(http: pb::HttpCheck) -> Result<HttpCheck, ConvertError> {
    let assertions = http
        .assertions
        .into_iter()
        .map(|a| match a.kind {
            Some(pb::body_assertion::Kind::Contains(text)) => Ok(BodyAssertion::Contains(text)),
            Some(pb::body_assertion::Kind::NotContains(text)) => Ok(BodyAssertion::NotContains(text)),
            Some(pb::body_assertion::Kind::Matches(regex)) => Ok(BodyAssertion::Matches(regex)),
            Some(pb::body_assertion::Kind::Json(json)) => {
                Ok(BodyAssertion::JsonField { pointer: json.pointer, equals: json.equals })
            }
            None => Err(ConvertError::Missing { field: "check.http.assertions.kind" }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_redirects = match http.max_redirects {
        None => DEFAULT_MAX_REDIRECTS,
        Some(n) => u8::try_from(n).map_err(|_| ConvertError::Invalid {
            field: "check.http.max_redirects",
            reason: format!("{n} is above 255"),
        })?,
    };
    Ok(HttpCheck {
        url: http.url,
        method: if http.method.is_empty() { "GET".into() } else { http.method },
        expected_status: if http.expected_status.is_empty() {
            vec![200]
        } else {
            http.expected_status.into_iter().map(|s| u16::try_from(s).unwrap_or(0)).collect()
        },
        headers: http.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: http.body,
        assertions,
        max_redirects,
        address: address_from_pb(http.address)?,
        http2: http.http2,
        valid_http_versions: http
            .valid_http_versions
            .iter()
            .map(|v| {
                HttpVersion::parse(v).ok_or_else(|| ConvertError::Invalid {
                    field: "check.http.valid_http_versions",
                    reason: format!("{v:?} is not one of HTTP/1.0, HTTP/1.1, HTTP/2"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    })
}

fn address_from_pb(address: Option<pb::AddressPolicy>) -> Result<AddressPolicy, ConvertError> {
    let address = address.unwrap_or_default();
    let ip = match pb::IpPreference::try_from(address.ip) {
        Ok(pb::IpPreference::Any) => IpPreference::Any,
        Ok(pb::IpPreference::Ip4) => IpPreference::Ip4,
        Ok(pb::IpPreference::Ip6) => IpPreference::Ip6,
        Err(_) => {
            return Err(ConvertError::Invalid {
                field: "check.address.ip",
                reason: format!("unknown preference {}", address.ip),
            })
        }
    };
    Ok(AddressPolicy { ip, each_address: address.each_address })
}

fn address_to_pb(address: &AddressPolicy) -> Option<pb::AddressPolicy> {
    let ip = match address.ip {
        IpPreference::Any => pb::IpPreference::Any,
        IpPreference::Ip4 => pb::IpPreference::Ip4,
        IpPreference::Ip6 => pb::IpPreference::Ip6,
    };
    Some(pb::AddressPolicy { ip: ip as i32, each_address: address.each_address })
}

impl From<&CheckSpec> for pb::CheckSpec {
    fn from(c: &CheckSpec) -> Self {
        let kind = match &c.kind {
            CheckKind::Http(http) => pb::check_spec::Kind::Http(pb::HttpCheck {
                url: http.url.clone(),
                method: http.method.clone(),
                expected_status: http.expected_status.iter().map(|s| u32::from(*s)).collect(),
                headers: http
                    .headers
                    .iter()
                    .map(|(name, value)| pb::HttpHeader { name: name.clone(), value: value.clone() })
                    .collect(),
                body: http.body.clone(),
                assertions: http
                    .assertions
                    .iter()
                    .map(|a| pb::BodyAssertion {
                        kind: Some(match a {
                            BodyAssertion::Contains(text) => pb::body_assertion::Kind::Contains(text.clone()),
                            BodyAssertion::NotContains(text) => pb::body_assertion::Kind::NotContains(text.clone()),
                            BodyAssertion::Matches(regex) => pb::body_assertion::Kind::Matches(regex.clone()),
                            BodyAssertion::JsonField { pointer, equals } => {
                                pb::body_assertion::Kind::Json(pb::JsonField {
                                    pointer: pointer.clone(),
                                    equals: equals.clone(),
                                })
                            }
                        }),
                    })
                    .collect(),
                max_redirects: Some(u32::from(http.max_redirects)),
                address: address_to_pb(&http.address),
                http2: http.http2,
                valid_http_versions: http.valid_http_versions.iter().map(|v| v.as_str().to_string()).collect(),
            }),
            CheckKind::Tcp(tcp) => pb::check_spec::Kind::Tcp(pb::TcpCheck {
                host: tcp.host.clone(),
                port: u32::from(tcp.port),
                tls: tcp.tls,
                address: address_to_pb(&tcp.address),
            }),
            CheckKind::Grpc(grpc) => pb::check_spec::Kind::Grpc(pb::GrpcCheck {
                host: grpc.host.clone(),
                port: u32::from(grpc.port),
                service: grpc.service.clone(),
                tls: grpc.tls,
                address: address_to_pb(&grpc.address),
            }),
            CheckKind::Dns(dns) => pb::check_spec::Kind::Dns(pb::DnsCheck {
                name: dns.name.clone(),
                record_type: dns.record_type.as_str().to_string(),
                server: dns.server.clone().unwrap_or_default(),
                expected: dns.expected.clone(),
            }),
        };
        pb::CheckSpec {
            id: c.id.to_string(),
            interval_ms: c.interval_ms,
            timeout_ms: c.timeout_ms,
            phase_shift_ms: c.phase_shift_ms,
            kind: Some(kind),
        }
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
            details: details_from_pb(r.details.unwrap_or_default())?,
        })
    }
}

fn details_from_pb(d: pb::ProbeDetails) -> Result<ProbeDetails, ConvertError> {
    let address = if d.address.is_empty() {
        None
    } else {
        Some(d.address.parse().map_err(|_| ConvertError::Invalid {
            field: "result.details.address",
            reason: format!("{:?} is not ip:port", text(d.address.clone())),
        })?)
    };
    let http_version = if d.http_version.is_empty() {
        None
    } else {
        Some(HttpVersion::parse(&d.http_version).ok_or_else(|| ConvertError::Invalid {
            field: "result.details.http_version",
            reason: format!("unknown version {:?}", text(d.http_version.clone())),
        })?)
    };
    let redirects = u8::try_from(d.redirects)
        .map_err(|_| ConvertError::Invalid { field: "result.details.redirects", reason: d.redirects.to_string() })?;
    let tls = d.tls.map(|t| TlsInfo { version: text(t.version), cert_not_after_s: t.cert_not_after_s, valid: t.valid });
    Ok(ProbeDetails { address, http_version, tls, redirects })
}

fn details_to_pb(d: &ProbeDetails) -> pb::ProbeDetails {
    pb::ProbeDetails {
        address: d.address.map(|a| a.to_string()).unwrap_or_default(),
        http_version: d.http_version.map(|v| v.as_str().to_string()).unwrap_or_default(),
        tls: d.tls.as_ref().map(|t| pb::TlsInfo {
            version: t.version.clone(),
            cert_not_after_s: t.cert_not_after_s,
            valid: t.valid,
        }),
        redirects: u32::from(d.redirects),
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
            details: Some(details_to_pb(&r.details)),
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
            details: None,
        }
    }

    #[test]
    fn result_round_trips() {
        let mut model = ProbeResult::try_from(good_result()).unwrap();
        assert_eq!(model.failure, Some(FailureKind::Timeout));
        let back = pb::ProbeResult::from(&model);
        assert_eq!(ProbeResult::try_from(back).unwrap(), model);
        model.details = ProbeDetails {
            address: Some("[::1]:443".parse().unwrap()),
            http_version: Some(HttpVersion::Http11),
            tls: Some(TlsInfo { version: "TLSv1.3".into(), cert_not_after_s: 1_800_000_000, valid: false }),
            redirects: 2,
        };
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
            (
                Box::new(|r| r.details = Some(pb::ProbeDetails { address: "nowhere".into(), ..Default::default() })),
                "result.details.address",
            ),
            (
                Box::new(|r| {
                    r.details = Some(pb::ProbeDetails { http_version: "HTTP/9".into(), ..Default::default() })
                }),
                "result.details.http_version",
            ),
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
            phase_shift_ms: 0,
            kind: Some(pb::check_spec::Kind::Http(pb::HttpCheck {
                url: "https://api.example/health".into(),
                method: String::new(),
                expected_status: vec![],
                ..Default::default()
            })),
        };
        let model = CheckSpec::try_from(spec.clone()).unwrap();
        let CheckKind::Http(http) = &model.kind else { panic!("{model:?}") };
        assert_eq!((http.method.as_str(), http.expected_status.as_slice()), ("GET", &[200u16][..]));
        assert_eq!(http.max_redirects, DEFAULT_MAX_REDIRECTS, "absent means the blackbox default");
        assert_eq!(CheckSpec::try_from(pb::CheckSpec::from(&model)).unwrap(), model);

        let mut full = HttpCheck::get("https://api.example/health");
        full.headers = vec![("X-A".into(), "1".into())];
        full.body = "{}".into();
        full.max_redirects = 0;
        full.address = AddressPolicy { ip: IpPreference::Ip6, each_address: true };
        full.http2 = true;
        full.valid_http_versions = vec![HttpVersion::Http2];
        full.assertions = vec![
            BodyAssertion::Contains("a".into()),
            BodyAssertion::NotContains("b".into()),
            BodyAssertion::Matches("c+".into()),
            BodyAssertion::JsonField { pointer: "/d".into(), equals: "e".into() },
        ];
        let kinds = [
            CheckKind::Http(full),
            CheckKind::Tcp(TcpCheck { host: "db".into(), port: 5432, tls: true, address: AddressPolicy::default() }),
            CheckKind::Grpc(GrpcCheck {
                host: "::1".into(),
                port: 50051,
                service: "mixer".into(),
                tls: false,
                address: AddressPolicy { ip: IpPreference::Ip4, each_address: false },
            }),
            CheckKind::Dns(DnsCheck {
                name: "api.example".into(),
                record_type: DnsRecordType::Txt,
                server: Some("10.0.0.53".into()),
                expected: vec!["v=1".into()],
            }),
        ];
        for kind in kinds {
            let model = CheckSpec { kind, ..model.clone() };
            assert_eq!(CheckSpec::try_from(pb::CheckSpec::from(&model)).unwrap(), model);
        }
        let bad_regex = pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Http(pb::HttpCheck {
                url: "http://h/".into(),
                assertions: vec![pb::BodyAssertion { kind: Some(pb::body_assertion::Kind::Matches("(".into())) }],
                ..Default::default()
            })),
            ..spec.clone()
        };
        assert!(CheckSpec::try_from(bad_regex).unwrap_err().to_string().contains("assertion 0"));
        let bad_version = pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Http(pb::HttpCheck {
                url: "http://h/".into(),
                valid_http_versions: vec!["HTTP/3".into()],
                ..Default::default()
            })),
            ..spec.clone()
        };
        assert!(CheckSpec::try_from(bad_version)
            .unwrap_err()
            .to_string()
            .starts_with("check.http.valid_http_versions"));
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
