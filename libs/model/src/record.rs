//! Raw health-check records: the latest probes of each (endpoint, region), kept verbatim (the
//! latest 1000) for "what exactly happened" views next to the rollups. Compact on purpose: a
//! record is one short comma-separated line, so keeping thousands costs little.
//!
//! The address probed is kept too: with `each_address`, results of every backend behind a name
//! share one series, and the records are where one bad backend shows by name.

use std::net::SocketAddr;

use crate::result::{FailureKind, ProbeResult};

/// How many records are kept per (endpoint, region).
pub const RECORDS_KEPT: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord {
    /// When the probe started, unix epoch milliseconds (UTC).
    pub started_at_ms: i64,
    pub duration_us: u64,
    /// Zero when no response was read.
    pub status_code: u16,
    pub failure: Option<FailureKind>,
    /// The address connected to, when one was reached or chosen.
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad raw record {text:?}")]
pub struct BadRecord {
    pub text: String,
}

impl RawRecord {
    pub fn of(result: &ProbeResult) -> Self {
        Self {
            started_at_ms: result.started_at_ms,
            duration_us: result.duration_us,
            status_code: result.status_code,
            failure: result.failure,
            address: result.details.address,
        }
    }

    /// `<started_at_ms>,<duration_us>,<status_code>,<failure kind or empty>[,<address>]`; the
    /// address (no commas in it, IPv6 included) only when known, so older records still read.
    pub fn encode(&self) -> String {
        let failure = self.failure.map_or("", FailureKind::as_str);
        match self.address {
            Some(address) => {
                format!("{},{},{},{failure},{address}", self.started_at_ms, self.duration_us, self.status_code)
            }
            None => format!("{},{},{},{failure}", self.started_at_ms, self.duration_us, self.status_code),
        }
    }

    pub fn decode(text: &str) -> Result<Self, BadRecord> {
        let bad = || BadRecord { text: text.chars().take(80).collect() };
        let mut parts = text.split(',');
        let mut next = || parts.next().ok_or_else(bad);
        let started_at_ms = next()?.parse().map_err(|_| bad())?;
        let duration_us = next()?.parse().map_err(|_| bad())?;
        let status_code = next()?.parse().map_err(|_| bad())?;
        let failure = match next()? {
            "" => None,
            kind => Some(FailureKind::parse(kind).ok_or_else(bad)?),
        };
        let address = match parts.next() {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| bad())?),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self { started_at_ms, duration_us, status_code, failure, address })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for record in [
            RawRecord {
                started_at_ms: 1_700_000_000_123,
                duration_us: 40_000,
                status_code: 200,
                failure: None,
                address: None,
            },
            RawRecord {
                started_at_ms: -5,
                duration_us: 0,
                status_code: 0,
                failure: Some(FailureKind::Timeout),
                address: Some("10.0.0.7:443".parse().unwrap()),
            },
            RawRecord {
                started_at_ms: 1,
                duration_us: u64::MAX,
                status_code: 503,
                failure: Some(FailureKind::BadStatus),
                address: Some("[2001:db8::1]:8443".parse().unwrap()),
            },
        ] {
            assert_eq!(RawRecord::decode(&record.encode()), Ok(record));
        }
        assert_eq!(RawRecord::decode("1,2,200,").map(|r| r.address), Ok(None), "a record from before addresses");
        for bad in
            ["", "1,2,3", "1,2,3,nope", "x,2,3,", "1,2,3,,", "1,2,70000,", "1,2,3,,10.0.0.1", "1,2,3,,1.2.3.4:5,x"]
        {
            assert!(RawRecord::decode(bad).is_err(), "{bad}");
        }
    }
}
