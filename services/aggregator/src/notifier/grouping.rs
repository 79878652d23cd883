//! Alerts into groups, as the routing file says: each alert down the route tree to the routes
//! that take it, grouped there by the route's `group_by`, with the route's timers and whether
//! a time interval mutes the route now.

use std::collections::BTreeMap;

use mixmon_model::alert::dispatch::{group_id, GroupInput, GroupTiming};
use mixmon_model::alert::route::group_key;
use mixmon_model::alert::{AlertInstance, AlertState, Route, TimeInterval};
use mixmon_rules::routes::Routing;

fn time_muted(route: &Route, intervals: &[TimeInterval], now_ms: i64) -> bool {
    let named = |name: &String| intervals.iter().find(|i| &i.name == name).is_some_and(|i| i.contains(now_ms));
    route.mute_time_intervals.iter().any(named)
        || (!route.active_time_intervals.is_empty() && !route.active_time_intervals.iter().any(named))
}

/// The groups the alerts form now (only firing and resolved alerts take part).
pub fn group_inputs<'a>(routing: &Routing, alerts: &'a [AlertInstance], now_ms: i64) -> Vec<GroupInput<'a>> {
    let mut groups: BTreeMap<String, GroupInput<'a>> = BTreeMap::new();
    for alert in alerts.iter().filter(|a| matches!(a.state, AlertState::Firing | AlertState::Resolved)) {
        for (route_key, route) in routing.route.matching_keyed(&alert.labels) {
            let labels = route.group_by.key(&alert.labels);
            let key = group_key(&route_key, &labels);
            groups
                .entry(group_id(&route.receiver, &key))
                .or_insert_with(|| GroupInput {
                    receiver: route.receiver.clone(),
                    group_key: key,
                    group_labels: labels,
                    timing: GroupTiming {
                        wait_ms: route.group_wait_ms,
                        interval_ms: route.group_interval_ms,
                        repeat_ms: route.repeat_interval_ms,
                    },
                    time_muted: time_muted(route, &routing.time_intervals, now_ms),
                    alerts: Vec::new(),
                })
                .alerts
                .push(alert);
        }
    }
    groups.into_values().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::alert::{LabelSet, ALERTNAME, SEVERITY};

    fn alert(name: &str, severity: &str, endpoint: &str) -> AlertInstance {
        AlertInstance::firing(
            LabelSet::new().with(ALERTNAME, name).with(SEVERITY, severity).with("endpoint", endpoint),
            0,
        )
    }

    #[test]
    fn the_shipped_routing_groups_by_alertname_region_and_endpoint() {
        let routing = mixmon_rules::routes::shipped().unwrap();
        let alerts = [
            alert("ServiceDown", "critical", "edge"),
            alert("ServiceDown", "critical", "ap"),
            alert("HighLatency", "warning", "edge"),
        ];
        let mut pending = alerts[0].clone();
        pending.state = AlertState::Pending;
        let all = [alerts.to_vec(), vec![pending]].concat();
        let groups = group_inputs(&routing, &all, 0);
        let seen: Vec<(&str, &str, usize)> =
            groups.iter().map(|g| (g.receiver.as_str(), g.group_key.as_str(), g.alerts.len())).collect();
        assert_eq!(
            seen,
            [
                ("critical", r#"{}/{severity="critical"}:{alertname="ServiceDown", endpoint="ap"}"#, 1),
                ("critical", r#"{}/{severity="critical"}:{alertname="ServiceDown", endpoint="edge"}"#, 1),
                ("warning", r#"{}/{severity="warning"}:{alertname="HighLatency", endpoint="edge"}"#, 1),
            ]
        );
        assert_eq!(groups[0].timing, GroupTiming { wait_ms: 0, interval_ms: 30_000, repeat_ms: 3_600_000 });
        assert!(!groups[0].time_muted);
    }
}
