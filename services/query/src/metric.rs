//! The metrics a Grafana `target` names. The catalogue itself (names, units, how each is
//! computed) is `mixmon_sli::metric`, shared with the alert rules.

pub use mixmon_sli::metric::{known_list, Metric};

use crate::body::template_names;
use crate::error::{clip, QueryError};

/// The metrics a `target` names: Grafana may regex-escape it (`latency\_p95`) or expand a
/// multi-value variable into `(a|b)`.
pub(crate) fn parse_target(raw: &str) -> Result<Vec<Metric>, QueryError> {
    let mut metrics = Vec::new();
    for name in template_names(raw) {
        let metric = Metric::parse(name.trim()).ok_or_else(|| {
            QueryError::bad_request(
                "unknown_metric",
                format!("unknown metric '{}'; known: {}", clip(&name, 80), known_list()),
            )
        })?;
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
    }
    Ok(metrics)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_ignored_and_unknown_names_are_refused() {
        assert_eq!(parse_target(r"latency\_p95").unwrap(), vec![Metric::LatencyP95]);
        assert_eq!(parse_target(r"(success\_rate|uptime)").unwrap(), vec![Metric::SuccessRate, Metric::Uptime]);
        let err = parse_target("cpu.usage").unwrap_err();
        assert_eq!(err.code(), "unknown_metric");
        assert!(err.to_string().contains("unknown metric 'cpu.usage'; known: success_rate"), "{err}");
    }
}
