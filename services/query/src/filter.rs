//! Grafana ad hoc filters (`filters`, or `adhocFilters` from plugin ≤0.6.3) on the keys
//! `endpoint`, `region`, `node` and `pod` (a key applies only to what has it: an endpoint
//! filter leaves the mixer's figures alone, a node filter the probe series). Regex operators are anchored, as Prometheus-style filters are.
//! Filters on other keys belong to other data sources sharing the dashboard and are ignored.

use mixmon_model::{SeriesKey, Subject, SubjectKind};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::body::{kind, opt_string, string_list};
use crate::error::{clip, QueryError};

/// Compiled-size ceiling per filter regex, so a hostile pattern cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKey {
    Endpoint,
    Region,
    Node,
    Pod,
}

#[derive(Debug)]
pub(crate) enum FilterOp {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
    OneOf(Vec<String>),
    NoneOf(Vec<String>),
}

#[derive(Debug)]
pub(crate) struct Filter {
    pub key: FilterKey,
    pub op: FilterOp,
}

impl Filter {
    pub fn accepts(&self, series: &SeriesKey) -> bool {
        match self.key {
            FilterKey::Endpoint => self.matches(series.check.as_str()),
            FilterKey::Region => self.matches(series.region.as_str()),
            FilterKey::Node | FilterKey::Pod => true,
        }
    }

    /// Whether a mixer, node or pod subject passes: region filters apply to all, node
    /// filters to nodes, pod filters to pods.
    pub fn accepts_subject(&self, subject: &Subject) -> bool {
        let name = subject.name.as_ref().map_or("", |n| n.as_str());
        match (self.key, subject.kind) {
            (FilterKey::Region, _) => self.matches(subject.region.as_str()),
            (FilterKey::Node, SubjectKind::Node) | (FilterKey::Pod, SubjectKind::Pod) => self.matches(name),
            _ => true,
        }
    }

    fn matches(&self, value: &str) -> bool {
        match &self.op {
            FilterOp::Equal(expected) => value == expected,
            FilterOp::NotEqual(expected) => value != expected,
            FilterOp::Matches(re) => re.is_match(value),
            FilterOp::NotMatches(re) => !re.is_match(value),
            FilterOp::OneOf(values) => values.iter().any(|v| v == value),
            FilterOp::NoneOf(values) => !values.iter().any(|v| v == value),
        }
    }
}

pub(crate) fn accepts_all(filters: &[Filter], series: &SeriesKey) -> bool {
    filters.iter().all(|f| f.accepts(series))
}

pub(crate) fn accepts_subject(filters: &[Filter], subject: &Subject) -> bool {
    filters.iter().all(|f| f.accepts_subject(subject))
}

/// Parses a filter list; `null` or absent is no filters.
pub(crate) fn parse_filters(value: &Value) -> Result<Vec<Filter>, QueryError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(QueryError::bad_request(
                "invalid_filter",
                format!("filters must be an array, not {}", kind(other)),
            ))
        }
    };
    let mut filters = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(filter) = item else {
            return Err(QueryError::bad_request(
                "invalid_filter",
                format!("filters[{i}] must be an object, not {}", kind(item)),
            ));
        };
        let key = match opt_string(filter.get("key"), &format!("filters[{i}].key"))?.as_deref() {
            Some("endpoint") => FilterKey::Endpoint,
            Some("region") => FilterKey::Region,
            Some("node") => FilterKey::Node,
            Some("pod") => FilterKey::Pod,
            _ => continue,
        };
        let operator =
            opt_string(filter.get("operator"), &format!("filters[{i}].operator"))?.unwrap_or_else(|| "=".into());
        let value = opt_string(filter.get("value"), &format!("filters[{i}].value"))?.unwrap_or_default();
        let values = || -> Result<Vec<String>, QueryError> {
            Ok(string_list(filter.get("values"), &format!("filters[{i}].values"))?
                .unwrap_or_else(|| vec![value.clone()]))
        };
        let op = match operator.as_str() {
            "=" => FilterOp::Equal(value.clone()),
            "!=" => FilterOp::NotEqual(value.clone()),
            "=~" => FilterOp::Matches(anchored(&value)?),
            "!~" => FilterOp::NotMatches(anchored(&value)?),
            "=|" => FilterOp::OneOf(values()?),
            "!=|" => FilterOp::NoneOf(values()?),
            other => {
                return Err(QueryError::bad_request(
                    "unsupported_operator",
                    format!("filter operator '{}' is not supported; use =, !=, =~, !~, =| or !=|", clip(other, 20)),
                ))
            }
        };
        filters.push(Filter { key, op });
    }
    Ok(filters)
}

fn anchored(pattern: &str) -> Result<Regex, QueryError> {
    RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| {
        QueryError::bad_request("invalid_regex", format!("filter regex '{}' is invalid: {e}", clip(pattern, 80)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::{CheckId, Region};
    use serde_json::json;

    fn key(check: &str, region: &str) -> SeriesKey {
        SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
    }

    #[test]
    fn operators() {
        let filters = parse_filters(&json!([
            {"key": "region", "operator": "=~", "value": "us-.*"},
            {"key": "endpoint", "operator": "!=", "value": "edge"},
            {"key": "host", "operator": "<", "value": "ignored: other key"}
        ]))
        .unwrap();
        assert_eq!(filters.len(), 2);
        assert!(accepts_all(&filters, &key("api", "us-west")));
        assert!(!accepts_all(&filters, &key("edge", "us-west")));
        assert!(!accepts_all(&filters, &key("api", "eu-west")));
        assert!(!accepts_all(&filters, &key("api", "xus-west")), "regex is anchored");
        let filters = parse_filters(&json!([{"key": "region", "operator": "!~", "value": "us"}])).unwrap();
        assert!(accepts_all(&filters, &key("api", "us-west")), "anchored: 'us' does not match 'us-west'");
        let filters = parse_filters(&json!([{"key": "endpoint", "operator": "=|", "values": ["a", "b"]}])).unwrap();
        assert!(accepts_all(&filters, &key("b", "x")) && !accepts_all(&filters, &key("c", "x")));
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in [
            json!([{"key": "region", "operator": "<", "value": "1"}]),
            json!([{"key": "region", "operator": "=~", "value": "("}]),
            json!("region=eu"),
            json!([1]),
        ] {
            assert!(parse_filters(&bad).is_err(), "{bad}");
        }
        assert!(parse_filters(&Value::Null).unwrap().is_empty());
    }
}
