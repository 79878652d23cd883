//! The encodings of the write path and the codec, without a server (the conformance suite
//! runs the store itself on a real `redis-server`).
#![allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion

use mixmon_model::{CheckId, FailureKind, Minute, Region, Rollup, RollupDelta, SeriesKey};
use redis::Value;

use super::codec::{decode_rollup, hash_pairs};
use super::redact_url;
use super::write::{by_endpoint, endpoint_command, rollup_fields};
use crate::{BatchId, StoreError};

#[test]
fn urls_are_shown_without_passwords() {
    let cases = [
        ("redis://127.0.0.1:6380", "redis://127.0.0.1:6380"),
        ("redis://:hunter2@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:hunter2@h:1", "redis://user:***@h:1"),
        ("rediss://user:p%40ss@word@h:1/2?x=1", "rediss://user:***@h:1/2?x=1"),
        ("redis://hunter2@h", "redis://***@h"),
        ("hunter2", "***"),
    ];
    for (url, shown) in cases {
        assert_eq!(redact_url(url), shown, "{url}");
        assert!(!redact_url(url).contains("hunter2"));
    }
}

#[test]
fn rollups_survive_encoding_to_fields_and_back() {
    let mut rollup = Rollup { total: 9, successes: 5, latency_sum_us: 12_345, ..Default::default() };
    rollup.failures.insert(FailureKind::Timeout, 3);
    rollup.failures.insert(FailureKind::Dns, 1);
    rollup.latency.add(0.5);
    rollup.latency.add(1000.0);
    rollup.latency.add(1000.0);
    rollup.latency.add(2_000_000.0);
    let pairs = rollup_fields(&rollup)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.to_string().into_bytes()))
        .chain([(b"future-field".to_vec(), b"not a number".to_vec())])
        .collect();
    assert_eq!(decode_rollup("k", pairs).unwrap(), Some(rollup));
    assert_eq!(decode_rollup("k", Vec::new()).unwrap(), None);
}

#[test]
fn a_non_integer_counter_is_corrupt_naming_the_key() {
    let err = decode_rollup("the-key", vec![(b"n".to_vec(), b"1.5".to_vec())]).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == "the-key"), "{err}");
    let err = decode_rollup("k", vec![(b"b:3".to_vec(), b"-1".to_vec())]).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }));
}

#[test]
fn hash_replies_decode_in_both_protocols() {
    let flat = Value::Array(vec![Value::BulkString(b"n".to_vec()), Value::BulkString(b"2".to_vec())]);
    let map = Value::Map(vec![(Value::BulkString(b"n".to_vec()), Value::BulkString(b"2".to_vec()))]);
    let expected = vec![(b"n".to_vec(), b"2".to_vec())];
    assert_eq!(hash_pairs(flat).unwrap(), expected);
    assert_eq!(hash_pairs(map).unwrap(), expected);
    assert!(hash_pairs(Value::Array(vec![Value::Nil])).is_err());
}

#[test]
fn script_commands_build_for_extreme_seqs_and_split_by_endpoint() {
    let series = |c: &str, r: &str| SeriesKey { check: CheckId::new(c).unwrap(), region: Region::new(r).unwrap() };
    let mut delta = RollupDelta::default();
    for (c, r, m) in [("api", "eu", 10), ("api", "us", 10), ("api", "eu", 70), ("web", "eu", 10)] {
        let rollup = delta.rollups.entry((series(c, r), Minute(m))).or_default();
        rollup.total = 2;
        rollup.successes = 2;
    }
    let parts = by_endpoint(&delta);
    assert_eq!(parts.iter().map(|p| (p.check.as_str(), p.minutes.len())).collect::<Vec<_>>(), [("api", 3), ("web", 1)]);
    let batch = BatchId { prober: mixmon_model::ProberId::new("p").unwrap(), epoch: 3, seq: u64::MAX };
    // Only checks that building succeeds for extreme values; the layout itself is exercised
    // against a real Redis in tests/conformance.rs.
    let cmd = endpoint_command("sha", &batch, &parts[0]).unwrap();
    let packed = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
    // 2 + 3 minute keys + 3 hour keys (eu:0, us:0, eu:1), all with the endpoint's hash tag.
    assert!(packed.contains("\r\n8\r\n"), "{packed}");
    assert_eq!(packed.matches("{api}").count(), 8, "{packed}");
    assert!(!packed.contains("{web}"));
}

#[test]
fn counts_beyond_redis_integers_are_refused() {
    let rollup = Rollup { total: u64::MAX, ..Default::default() };
    assert!(matches!(rollup_fields(&rollup), Err(StoreError::Invalid(_))));
}
