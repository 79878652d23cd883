//! One probe's outcome, as a prober measured it.

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
}

impl ProbeResult {
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_round_trip() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FailureKind::parse("nope"), None);
    }
}
