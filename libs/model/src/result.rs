//! One probe's outcome, as a prober measured it.

use std::net::SocketAddr;

use crate::ids::CheckId;

/// Why a probe failed, named by the phase it failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    Timeout,
    ConnectionRefused,
    Dns,
    Tls,
    BadStatus,
    AssertionFailed,
    /// Any other connect or transport error (reset, unreachable, protocol error).
    Connection,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Timeout,
        FailureKind::ConnectionRefused,
        FailureKind::Dns,
        FailureKind::Tls,
        FailureKind::BadStatus,
        FailureKind::AssertionFailed,
        FailureKind::Connection,
    ];

    /// A short stable name, used in labels and stored field names.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::Dns => "dns",
            FailureKind::Tls => "tls",
            FailureKind::BadStatus => "bad_status",
            FailureKind::AssertionFailed => "assertion_failed",
            FailureKind::Connection => "connection",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Phase timings in microseconds; zero where the phase did not happen (no TLS on http://).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    pub dns_us: u64,
    pub connect_us: u64,
    pub tls_us: u64,
    pub first_byte_us: u64,
    pub transfer_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub check_id: CheckId,
    /// When the probe started, unix epoch milliseconds (UTC).
    pub started_at_ms: i64,
    /// `Some` exactly when the probe failed.
    pub failure: Option<FailureKind>,
    pub duration_us: u64,
    /// Zero when no response was read.
    pub status_code: u16,
    pub error: String,
    pub phases: PhaseTimings,
    /// What else the probe learnt: the address probed, HTTP and TLS versions, the certificate.
    /// Kept apart so results built by hand (tests, fixtures) default it in one line.
    pub details: ProbeDetails,
}

impl ProbeResult {
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }

    /// Whole days until the earliest certificate in the presented chain expires, from the probe's
    /// start; negative once expired. `None` without a TLS handshake that showed a certificate.
    pub fn tls_days_left(&self) -> Option<i64> {
        let tls = self.details.tls.as_ref()?;
        Some((tls.cert_not_after_s * 1_000 - self.started_at_ms).div_euclid(86_400_000))
    }
}

/// Facts a probe learnt besides its verdict and timings; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeDetails {
    /// The address connected to (or the DNS server asked). With `each_address`, the one this
    /// result is about. Series are not split by it; each raw record keeps it.
    pub address: Option<SocketAddr>,
    /// The HTTP version of the last response read.
    pub http_version: Option<HttpVersion>,
    /// Set when a TLS handshake got as far as a certificate, also when the probe then failed.
    pub tls: Option<TlsInfo>,
    /// Redirects followed before the last response.
    pub redirects: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [HttpVersion::Http10, HttpVersion::Http11, HttpVersion::Http2].into_iter().find(|v| v.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`; empty when the handshake did not finish.
    pub version: String,
    /// When the earliest-expiring certificate of the presented chain expires, unix seconds.
    pub cert_not_after_s: i64,
    /// Whether the chain verified against the prober's roots for the server's name, in date.
    pub valid: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_counts_whole_days_from_the_probe_start() {
        let tls = TlsInfo { version: "TLSv1.3".into(), cert_not_after_s: 1_700_000_000 + 86_400 * 10, valid: true };
        let mut result = ProbeResult {
            check_id: CheckId::new("c").unwrap(),
            started_at_ms: 1_700_000_000_000,
            failure: None,
            duration_us: 1,
            status_code: 200,
            error: String::new(),
            phases: PhaseTimings::default(),
            details: ProbeDetails { tls: Some(tls), ..ProbeDetails::default() },
        };
        assert_eq!(result.tls_days_left(), Some(10));
        result.started_at_ms += 11 * 86_400_000;
        assert_eq!(result.tls_days_left(), Some(-1));
        result.details.tls = None;
        assert_eq!(result.tls_days_left(), None);
    }

    #[test]
    fn failure_names_round_trip() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FailureKind::parse("nope"), None);
    }
}
