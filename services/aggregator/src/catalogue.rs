//! The check catalogue: every check the fleet runs, resolved from the config (defaults and
//! `HEALTH_CHECK_INTERVAL` applied) and validated as a whole, so a bad catalogue is refused
//! with every problem listed. Its version is a hash of its content: every replica that loads
//! the same catalogue announces the same version.

use std::collections::BTreeMap;

use mixmon_model::check::DEFAULT_MAX_REDIRECTS;
use mixmon_model::{
    AddressPolicy, BodyAssertion, CheckId, CheckKind, CheckSpec, DnsCheck, DnsRecordType, GrpcCheck, HttpCheck,
    HttpVersion, IpPreference, TcpCheck,
};

use crate::config::{AggregatorConfig, AssertionConfig, CheckConfig, CheckType};

/// The environment variable operators already use for the default check interval (seconds).
pub const HEALTH_CHECK_INTERVAL: &str = "HEALTH_CHECK_INTERVAL";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalogue {
    pub version: u64,
    pub checks: BTreeMap<CheckId, CheckSpec>,
    /// Each check's labels from the config (`tier = "edge"`); checks without labels are absent.
    pub labels: BTreeMap<CheckId, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the check catalogue is invalid:\n  - {}", problems.join("\n  - "))]
pub struct CatalogueError {
    pub problems: Vec<String>,
}

impl Catalogue {
    pub fn new(checks: impl IntoIterator<Item = CheckSpec>) -> Self {
        Self::with_labels(checks, BTreeMap::new())
    }

    /// A catalogue whose checks carry labels (part of the version, like everything else).
    pub fn with_labels(
        checks: impl IntoIterator<Item = CheckSpec>,
        labels: BTreeMap<CheckId, BTreeMap<String, String>>,
    ) -> Self {
        let checks: BTreeMap<CheckId, CheckSpec> = checks.into_iter().map(|c| (c.id.clone(), c)).collect();
        let labels: BTreeMap<_, _> =
            labels.into_iter().filter(|(id, l)| checks.contains_key(id) && !l.is_empty()).collect();
        let version = content_version(&checks, &labels);
        Self { version, checks, labels }
    }

    /// Resolves and validates the config's checks. `health_check_interval` is the value of
    /// `HEALTH_CHECK_INTERVAL`, if set: it replaces the default interval (not a check's own).
    pub fn from_config(config: &AggregatorConfig, health_check_interval: Option<&str>) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let mut default_interval_s = config.defaults.interval_s;
        if let Some(raw) = health_check_interval {
            match raw.trim().parse::<u32>() {
                Ok(seconds) if seconds > 0 => default_interval_s = seconds,
                _ => {
                    problems.push(format!("{HEALTH_CHECK_INTERVAL}={raw:?} must be a whole number of seconds above 0"))
                }
            }
        }
        let mut checks = BTreeMap::new();
        let mut labels = BTreeMap::new();
        for (index, check) in config.checks.iter().enumerate() {
            let id = match CheckId::new(check.id.clone()) {
                Ok(id) => id,
                Err(err) => {
                    problems.push(format!("checks[{index}].id: {err}"));
                    continue;
                }
            };
            let interval_ms = check.interval_s.unwrap_or(default_interval_s).saturating_mul(1_000);
            let timeout_ms = check.timeout_ms.unwrap_or(config.defaults.timeout_ms.min(interval_ms));
            let (kind, kind_problems) = check_kind(check);
            problems.extend(kind_problems.into_iter().map(|p| format!("checks[{index}] ({id}): {p}")));
            let spec = CheckSpec { id: id.clone(), interval_ms, timeout_ms, phase_shift_ms: 0, kind };
            problems.extend(spec.problems().iter().map(|p| format!("checks[{index}]: {p}")));
            if check.check_type == CheckType::Http && check.expected_status.is_empty() {
                problems.push(format!("checks[{index}]: expected_status must not be empty"));
            }
            if !check.labels.is_empty() {
                labels.insert(id.clone(), check.labels.clone());
            }
            if checks.insert(id.clone(), spec).is_some() {
                problems.push(format!("checks[{index}]: duplicate check id {id}"));
            }
        }
        if problems.is_empty() {
            Ok(Self::with_labels(checks.into_values(), labels))
        } else {
            Err(CatalogueError { problems })
        }
    }

    /// What a prober running `self` must change to run `next`: upserts and removals.
    pub fn diff(&self, next: &Catalogue) -> (Vec<CheckSpec>, Vec<CheckId>) {
        let upserts = next.checks.values().filter(|spec| self.checks.get(&spec.id) != Some(*spec)).cloned().collect();
        let removed = self.checks.keys().filter(|id| !next.checks.contains_key(*id)).cloned().collect();
        (upserts, removed)
    }
}

/// What a check's config asks for, and every reason it cannot be built as asked (keys of other
/// types set, values that do not parse); `CheckSpec::problems` then validates the result too,
/// so one load lists every problem.
fn check_kind(check: &CheckConfig) -> (CheckKind, Vec<String>) {
    let mut problems = Vec::new();
    let ty = check.check_type;
    let type_name = match ty {
        CheckType::Http => "http",
        CheckType::Tcp => "tcp",
        CheckType::Grpc => "grpc",
        CheckType::Dns => "dns",
    };
    let mut unused = |key: &str, set: bool, applies: &[CheckType]| {
        if set && !applies.contains(&ty) {
            problems.push(format!("{key} does not apply to a {type_name} check"));
        }
    };
    use CheckType::{Dns, Grpc, Http, Tcp};
    unused("url", !check.url.is_empty(), &[Http]);
    unused("method", check.method != "GET", &[Http]);
    unused("expected_status", check.expected_status != [200], &[Http]);
    unused("headers", !check.headers.is_empty(), &[Http]);
    unused("body", check.body.is_some(), &[Http]);
    unused("assert", !check.assertions.is_empty(), &[Http]);
    unused("follow_redirects", check.follow_redirects.is_some(), &[Http]);
    unused("max_redirects", check.max_redirects.is_some(), &[Http]);
    unused("http2", check.http2, &[Http]);
    unused("valid_http_versions", !check.valid_http_versions.is_empty(), &[Http]);
    unused("ip", check.ip.is_some(), &[Http, Tcp, Grpc]);
    unused("each_address", check.each_address, &[Http, Tcp, Grpc]);
    unused("host", check.host.is_some(), &[Tcp, Grpc]);
    unused("port", check.port.is_some(), &[Tcp, Grpc]);
    unused("tls", check.tls, &[Tcp, Grpc]);
    unused("service", check.service.is_some(), &[Grpc]);
    unused("name", check.name.is_some(), &[Dns]);
    unused("record_type", check.record_type.is_some(), &[Dns]);
    unused("server", check.server.is_some(), &[Dns]);
    unused("expected", !check.expected.is_empty(), &[Dns]);

    let ip = match check.ip.as_deref() {
        None => IpPreference::Any,
        Some(text) => IpPreference::parse(text).unwrap_or_else(|| {
            problems.push(format!("ip {text:?} must be one of any, ip4, ip6"));
            IpPreference::Any
        }),
    };
    let address = AddressPolicy { ip, each_address: check.each_address };
    let required = |problems: &mut Vec<String>, key: &str, value: Option<&str>| -> String {
        value.map(str::to_string).unwrap_or_else(|| {
            problems.push(format!("{key} is required for a {type_name} check"));
            String::new()
        })
    };
    let kind = match ty {
        Http => {
            let url = required(&mut problems, "url", Some(check.url.as_str()).filter(|u| !u.is_empty()));
            let max_redirects = match (check.follow_redirects, check.max_redirects) {
                (Some(false), _) => 0,
                (_, Some(n)) => n,
                (_, None) => DEFAULT_MAX_REDIRECTS,
            };
            let assertions = check
                .assertions
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match assertion(a) {
                    Ok(a) => Some(a),
                    Err(reason) => {
                        problems.push(format!("assert[{i}]: {reason}"));
                        None
                    }
                })
                .collect();
            CheckKind::Http(HttpCheck {
                url,
                method: check.method.to_ascii_uppercase(),
                expected_status: check.expected_status.clone(),
                headers: check.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                body: check.body.clone().unwrap_or_default(),
                assertions,
                max_redirects,
                address,
                http2: check.http2,
                valid_http_versions: check
                    .valid_http_versions
                    .iter()
                    .filter_map(|v| {
                        let version = HttpVersion::parse(v);
                        if version.is_none() {
                            problems
                                .push(format!("valid_http_versions: {v:?} is not one of HTTP/1.0, HTTP/1.1, HTTP/2"));
                        }
                        version
                    })
                    .collect(),
            })
        }
        Tcp | Grpc => {
            let host = required(&mut problems, "host", check.host.as_deref());
            let port = match check.port {
                Some(port) => port,
                None => {
                    problems.push(format!("port is required for a {type_name} check"));
                    0
                }
            };
            if ty == Tcp {
                CheckKind::Tcp(TcpCheck { host, port, tls: check.tls, address })
            } else {
                let service = check.service.clone().unwrap_or_default();
                CheckKind::Grpc(GrpcCheck { host, port, service, tls: check.tls, address })
            }
        }
        Dns => {
            let name = required(&mut problems, "name", check.name.as_deref());
            let record_type = match check.record_type.as_deref() {
                None => DnsRecordType::A,
                Some(text) => DnsRecordType::parse(text).unwrap_or_else(|| {
                    problems.push(format!("record_type {text:?} must be one of A, AAAA, CNAME, TXT, MX, NS"));
                    DnsRecordType::A
                }),
            };
            CheckKind::Dns(DnsCheck {
                name,
                record_type,
                server: check.server.clone(),
                expected: check.expected.clone(),
            })
        }
    };
    (kind, problems)
}

fn assertion(a: &AssertionConfig) -> Result<BodyAssertion, String> {
    let chosen =
        [a.body_contains.is_some(), a.body_not_contains.is_some(), a.body_regex.is_some(), a.json_pointer.is_some()];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err("set exactly one of body_contains, body_not_contains, body_regex, json_pointer".into());
    }
    if a.equals.is_some() != a.json_pointer.is_some() {
        return Err("equals goes with json_pointer, and json_pointer needs equals".into());
    }
    Ok(match (a, &a.json_pointer, &a.equals) {
        (_, Some(pointer), Some(equals)) => {
            BodyAssertion::JsonField { pointer: pointer.clone(), equals: equals.clone() }
        }
        (AssertionConfig { body_contains: Some(text), .. }, _, _) => BodyAssertion::Contains(text.clone()),
        (AssertionConfig { body_not_contains: Some(text), .. }, _, _) => BodyAssertion::NotContains(text.clone()),
        (AssertionConfig { body_regex: Some(regex), .. }, _, _) => BodyAssertion::Matches(regex.clone()),
        _ => return Err("set exactly one kind of assertion".into()),
    })
}

/// FNV-1a over every field of every check (through its `Debug` form, which names every field,
/// so a field added later is covered without touching this) and the labels.
fn content_version(checks: &BTreeMap<CheckId, CheckSpec>, labels: &BTreeMap<CheckId, BTreeMap<String, String>>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for spec in checks.values() {
        feed(format!("{spec:?}").as_bytes());
    }
    for (id, labels) in labels {
        feed(id.as_str().as_bytes());
        for (key, value) in labels {
            feed(key.as_bytes());
            feed(value.as_bytes());
        }
    }
    // Zero means "none" on the wire.
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AggregatorConfig {
        mixmon_config::parse_with_env("a.toml", text, Vec::new()).unwrap()
    }

    const TWO_CHECKS: &str = r#"
        [defaults]
        interval_s = 10
        [[checks]]
        id = "us-west"
        url = "http://127.0.0.1:1/health"
        [[checks]]
        id = "api"
        url = "https://api.example/health"
        interval_s = 30
        timeout_ms = 2000
        expected_status = [200, 204]
    "#;

    #[test]
    fn resolves_defaults_and_the_operators_interval_variable() {
        let catalogue = Catalogue::from_config(&config(TWO_CHECKS), None).unwrap();
        let us_west = &catalogue.checks[&CheckId::new("us-west").unwrap()];
        assert_eq!((us_west.interval_ms, us_west.timeout_ms), (10_000, 5_000));
        let with_env = Catalogue::from_config(&config(TWO_CHECKS), Some("3")).unwrap();
        let us_west = &with_env.checks[&CheckId::new("us-west").unwrap()];
        assert_eq!((us_west.interval_ms, us_west.timeout_ms), (3_000, 3_000), "timeout is capped by the interval");
        assert_eq!(with_env.checks[&CheckId::new("api").unwrap()].interval_ms, 30_000, "a check's own interval wins");
        assert_ne!(catalogue.version, with_env.version);
        assert_eq!(catalogue.version, Catalogue::from_config(&config(TWO_CHECKS), None).unwrap().version);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            [[checks]]
            id = "bad id"
            url = "http://x"
            [[checks]]
            id = "a"
            url = "ftp://x"
            [[checks]]
            id = "a"
            url = "http://x"
            expected_status = []
        "#;
        let err = Catalogue::from_config(&config(text), Some("soon")).unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        let text = err.to_string();
        for needle in ["HEALTH_CHECK_INTERVAL", "checks[0].id", "checks[1]", "duplicate check id a", "expected_status"]
        {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    const EVERY_KIND: &str = r#"
        [[checks]]
        id = "api"
        url = "https://api.example/health"
        method = "post"
        headers = { X-Token = "t" }
        body = "{}"
        follow_redirects = false
        ip = "ip6"
        each_address = true
        http2 = true
        valid_http_versions = ["HTTP/2", "HTTP/1.1"]
        assert = [{ body_contains = "ok" }, { body_regex = "^up" }, { json_pointer = "/status", equals = "up" }]
        labels = { tier = "edge" }
        [[checks]]
        id = "db"
        type = "tcp"
        host = "db.internal"
        port = 5432
        tls = true
        [[checks]]
        id = "mixer-grpc"
        type = "grpc"
        host = "10.0.0.1"
        port = 50051
        service = "mixer"
        [[checks]]
        id = "api-dns"
        type = "dns"
        name = "api.example"
        record_type = "aaaa"
        server = "10.0.0.53"
        expected = ["::1"]
    "#;

    #[test]
    fn every_kind_is_built_with_its_options() {
        let catalogue = Catalogue::from_config(&config(EVERY_KIND), None).unwrap();
        let get = |id: &str| catalogue.checks[&CheckId::new(id).unwrap()].kind.clone();
        let CheckKind::Http(http) = get("api") else { panic!() };
        assert_eq!((http.method.as_str(), http.max_redirects, http.body.as_str()), ("POST", 0, "{}"));
        assert_eq!(http.address, AddressPolicy { ip: IpPreference::Ip6, each_address: true });
        assert_eq!(http.headers, [("X-Token".to_string(), "t".to_string())]);
        assert!(http.http2);
        assert_eq!(http.valid_http_versions, [HttpVersion::Http2, HttpVersion::Http11]);
        assert_eq!(
            http.assertions,
            [
                BodyAssertion::Contains("ok".into()),
                BodyAssertion::Matches("^up".into()),
                BodyAssertion::JsonField { pointer: "/status".into(), equals: "up".into() }
            ]
        );
        assert_eq!(
            get("db"),
            CheckKind::Tcp(TcpCheck {
                host: "db.internal".into(),
                port: 5432,
                tls: true,
                address: AddressPolicy::default()
            })
        );
        assert!(matches!(get("mixer-grpc"), CheckKind::Grpc(g) if g.service == "mixer" && g.port == 50051));
        assert!(matches!(get("api-dns"), CheckKind::Dns(d) if d.record_type == DnsRecordType::Aaaa));
        assert_eq!(catalogue.labels[&CheckId::new("api").unwrap()]["tier"], "edge");

        let relabelled = Catalogue::from_config(&config(&EVERY_KIND.replace("edge", "core")), None).unwrap();
        assert_ne!(catalogue.version, relabelled.version, "labels are part of the version");
        let reasserted = Catalogue::from_config(&config(&EVERY_KIND.replace("^up", "^down")), None).unwrap();
        assert_ne!(catalogue.version, reasserted.version, "every option is part of the version");
    }

    #[test]
    fn misplaced_and_malformed_options_are_all_listed() {
        let text = r#"
            [[checks]]
            id = "a"
            type = "tcp"
            url = "http://x"
            host = "db"
            http2 = true
            [[checks]]
            id = "b"
            url = "http://x"
            valid_http_versions = ["HTTP/3"]
            ip = "ip5"
            assert = [{ body_regex = "(" }, { body_contains = "a", body_regex = "b" }, { json_pointer = "x", equals = "1" }]
            [[checks]]
            id = "c"
            type = "dns"
            name = "x.example"
            record_type = "SOA"
            expected = ["not an ip"]
        "#;
        let err = Catalogue::from_config(&config(text), None).unwrap_err();
        let text = err.to_string();
        for needle in [
            "checks[0] (a): url does not apply to a tcp check",
            "checks[0] (a): port is required for a tcp check",
            "checks[0] (a): http2 does not apply to a tcp check",
            "checks[1] (b): valid_http_versions: \"HTTP/3\" is not one of HTTP/1.0, HTTP/1.1, HTTP/2",
            "checks[1] (b): ip \"ip5\" must be one of any, ip4, ip6",
            "checks[1] (b): assert[1]: set exactly one of",
            "checks[2] (c): record_type \"SOA\"",
            "checks[1]: check b: assertion 0 (body matches /(/)",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        // Once the kind builds, the spec's own validation speaks: the regex and the pointer.
        let text = r#"
            [[checks]]
            id = "b"
            url = "http://x"
            assert = [{ body_regex = "(" }, { json_pointer = "x", equals = "1" }]
        "#;
        let err = Catalogue::from_config(&config(text), None).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems[0].contains("assertion 0 (body matches /(/)"), "{err}");
        assert!(err.problems[1].contains("must be empty or start with '/'"), "{err}");
    }

    #[test]
    fn diff_lists_upserts_and_removals() {
        let old = Catalogue::from_config(&config(TWO_CHECKS), None).unwrap();
        let new = Catalogue::from_config(&config(TWO_CHECKS), Some("5")).unwrap();
        let (upserts, removed) = old.diff(&new);
        assert_eq!(upserts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["us-west"]);
        assert!(removed.is_empty());
        let (upserts, removed) = old.diff(&Catalogue::default());
        assert!(upserts.is_empty());
        assert_eq!(removed.len(), 2);
    }
}
