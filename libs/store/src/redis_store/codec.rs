//! Hash replies into rollups and figures, in both protocols (RESP2 arrays, RESP3 maps); a
//! value that is not ours is [`StoreError::Corrupt`] naming its key.

use mixmon_model::{Fields, Rollup};
use redis::Value;

use crate::keys::{field, field::Field, figure_field};
use crate::StoreError;

/// Rebuilds a subject's Fields from its hash; `None` for an empty (missing) hash.
pub(super) fn decode_fields(key: &str, pairs: HashPairs) -> Result<Option<Fields>, StoreError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut fields = Fields::default();
    for (stored, value) in pairs {
        let stored = String::from_utf8_lossy(&stored);
        let (name, is_max) = figure_field::parse(&stored);
        let value = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
            StoreError::Corrupt {
                key: key.to_string(),
                reason: format!("field {stored} holds {:?}, not an integer", String::from_utf8_lossy(&value)),
            }
        })?;
        if is_max {
            fields.maxes.insert(name.to_string(), value);
        } else {
            fields.sums.insert(name.to_string(), value);
        }
    }
    Ok(Some(fields))
}

/// A hash's (field, value) pairs as raw bytes.
pub(super) type HashPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One HGETALL reply as (field, value) byte pairs: RESP2 sends a flat array, RESP3 a map.
pub(super) fn hash_pairs(value: Value) -> Result<HashPairs, String> {
    fn bytes(value: Value) -> Result<Vec<u8>, String> {
        match value {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            Value::Int(i) => Ok(i.to_string().into_bytes()),
            other => Err(format!("unexpected hash element {other:?}")),
        }
    }
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(format!("hash reply with an odd number ({}) of elements", items.len()));
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((bytes(k)?, bytes(v)?));
            }
            Ok(pairs)
        }
        Value::Map(pairs) => pairs.into_iter().map(|(k, v)| Ok((bytes(k)?, bytes(v)?))).collect(),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Rebuilds a rollup from its hash; `None` for an empty (missing) hash.
pub(super) fn decode_rollup(key: &str, pairs: HashPairs) -> Result<Option<Rollup>, StoreError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut rollup = Rollup::default();
    for (name, value) in pairs {
        let Some(known) = std::str::from_utf8(&name).ok().and_then(field::parse) else {
            continue;
        };
        let count = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            StoreError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "field {} holds {:?}, not a non-negative integer",
                    known.name(),
                    String::from_utf8_lossy(&value)
                ),
            }
        })?;
        match known {
            Field::Total => rollup.total = count,
            Field::Successes => rollup.successes = count,
            Field::LatencySumUs => rollup.latency_sum_us = count,
            Field::Failure(kind) => {
                if count > 0 {
                    rollup.failures.insert(kind, count);
                }
            }
            Field::ZeroBucket => rollup.latency.add_zero(count),
            Field::Bucket(index) => rollup.latency.add_bucket(index, count),
            Field::PhaseSum(phase) => rollup.phases.sum_us[phase as usize] = count,
            Field::PhaseCount(phase) => rollup.phases.count[phase as usize] = count,
        }
    }
    Ok(Some(rollup))
}
