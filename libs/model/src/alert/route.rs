//! Alertmanager's routing tree with its meaning (`dispatch/route.go`): an alert enters at the
//! root and descends depth-first into the first child whose matchers match; with `continue`
//! the siblings after a matching child are tried too; a node none of whose children match
//! takes the alert itself. Children inherit what they do not set (receiver, grouping, timing,
//! time intervals are not inherited but named per node). And time intervals
//! (`timeinterval/timeinterval.go`): times of day, weekdays, days of month (negative from the
//! end), months and years, each an inclusive range; UTC only here.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::labels::LabelSet;
use super::matcher::{matches_all, Matcher};

/// How a route groups: by these labels, or by every label (`group_by: ['...']`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    All,
}

impl GroupBy {
    /// The labels of `alert` that name its group.
    pub fn key(&self, alert: &LabelSet) -> LabelSet {
        match self {
            GroupBy::All => alert.clone(),
            GroupBy::Labels(names) => {
                let mut key = LabelSet::new();
                for name in names {
                    let value = alert.get(name);
                    if !value.is_empty() {
                        key.insert(name.clone(), value);
                    }
                }
                key
            }
        }
    }
}

/// One node of the tree, with what it inherits already filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub group_wait_ms: u64,
    pub group_interval_ms: u64,
    pub repeat_interval_ms: u64,
    pub continue_matching: bool,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
}

impl Route {
    /// The routes that take `alert`, in Alertmanager's order.
    pub fn matching(&self, alert: &LabelSet) -> Vec<&Route> {
        self.matching_keyed(alert).into_iter().map(|(_, route)| route).collect()
    }

    /// The routes that take `alert` with Alertmanager's route keys (`{}/{severity="critical"}`:
    /// each node's matchers under its parent's), the first half of a group key.
    pub fn matching_keyed(&self, alert: &LabelSet) -> Vec<(String, &Route)> {
        self.descend(alert, None)
    }

    fn descend(&self, alert: &LabelSet, parent: Option<&str>) -> Vec<(String, &Route)> {
        if !matches_all(&self.matchers, alert) {
            return Vec::new();
        }
        let own: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        let own = format!("{{{}}}", own.join(","));
        let key = match parent {
            None => own,
            Some(parent) => format!("{parent}/{own}"),
        };
        let mut taken = Vec::new();
        for child in &self.routes {
            let found = child.descend(alert, Some(&key));
            if !found.is_empty() {
                taken.extend(found);
                if !child.continue_matching {
                    break;
                }
            }
        }
        if taken.is_empty() {
            taken.push((key, self));
        }
        taken
    }
}

/// Alertmanager's group key: the route's key and the group's labels.
pub fn group_key(route_key: &str, group_labels: &LabelSet) -> String {
    format!("{route_key}:{group_labels}")
}

/// An inclusive range of integers (`start <= x <= end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i32,
    pub end: i32,
}

impl Span {
    fn contains(&self, x: i32) -> bool {
        self.start <= x && x <= self.end
    }
}

/// One of a time interval's alternatives: every given field must hold (absent: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeSpec {
    /// Minutes of the day, `[start, end)`.
    pub times: Vec<(u32, u32)>,
    /// Days of the week, 0 = Sunday.
    pub weekdays: Vec<Span>,
    /// Days of the month; negative counts from the end (-1 the last day).
    pub days_of_month: Vec<Span>,
    pub months: Vec<Span>,
    pub years: Vec<Span>,
}

fn days_in_month(year: i32, month: u32) -> i32 {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    chrono::NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| i32::try_from(d.day()).unwrap_or(31))
}

impl TimeSpec {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let minute = at.hour() * 60 + at.minute();
        let times = self.times.is_empty() || self.times.iter().any(|(s, e)| *s <= minute && minute < *e);
        let weekday = i32::try_from(at.weekday().num_days_from_sunday()).unwrap_or(0);
        let weekdays = self.weekdays.is_empty() || self.weekdays.iter().any(|s| s.contains(weekday));
        let day = i32::try_from(at.day()).unwrap_or(1);
        let last = days_in_month(at.year(), at.month());
        let days = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|s| {
                let resolve = |d: i32| if d < 0 { last + 1 + d } else { d };
                Span { start: resolve(s.start), end: resolve(s.end) }.contains(day)
            });
        let month = i32::try_from(at.month()).unwrap_or(1);
        let months = self.months.is_empty() || self.months.iter().any(|s| s.contains(month));
        let years = self.years.is_empty() || self.years.iter().any(|s| s.contains(at.year()));
        times && weekdays && days && months && years
    }
}

/// A named time interval: any of its alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeInterval {
    pub name: String,
    pub specs: Vec<TimeSpec>,
}

impl TimeInterval {
    pub fn contains(&self, at_ms: i64) -> bool {
        let at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_default();
        self.specs.iter().any(|s| s.contains(at))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(receiver: &str, matchers: &str, continue_matching: bool, routes: Vec<Route>) -> Route {
        Route {
            receiver: receiver.into(),
            matchers: Matcher::parse_list(matchers).unwrap(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            group_wait_ms: 0,
            group_interval_ms: 60_000,
            repeat_interval_ms: 4 * 3_600_000,
            continue_matching,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes,
        }
    }

    fn receivers(tree: &Route, labels: &[(&str, &str)]) -> Vec<String> {
        let alert: LabelSet = labels.iter().copied().collect();
        tree.matching(&alert).iter().map(|r| r.receiver.clone()).collect()
    }

    #[test]
    fn first_matching_child_wins_unless_it_continues() {
        let tree = route(
            "default",
            "",
            false,
            vec![
                route("pagerduty", r#"severity="critical""#, true, vec![]),
                route("slack-critical", r#"severity="critical""#, false, vec![]),
                route("slack-warning", r#"severity="warning""#, false, vec![]),
                route("never", r#"severity="warning""#, false, vec![]),
            ],
        );
        assert_eq!(receivers(&tree, &[("severity", "critical")]), ["pagerduty", "slack-critical"]);
        assert_eq!(receivers(&tree, &[("severity", "warning")]), ["slack-warning"]);
        assert_eq!(receivers(&tree, &[("severity", "info")]), ["default"], "no child: the node itself");
    }

    #[test]
    fn descent_is_depth_first_and_a_node_without_matching_children_takes_the_alert() {
        let tree = route(
            "default",
            "",
            false,
            vec![route(
                "team",
                r#"team="audio""#,
                false,
                vec![route("team-pager", r#"severity="critical""#, false, vec![])],
            )],
        );
        assert_eq!(receivers(&tree, &[("team", "audio"), ("severity", "critical")]), ["team-pager"]);
        assert_eq!(receivers(&tree, &[("team", "audio"), ("severity", "warning")]), ["team"]);
    }

    #[test]
    fn group_keys() {
        let alert: LabelSet = [("alertname", "ServiceDown"), ("endpoint", "edge"), ("x", "1")].into_iter().collect();
        let by = GroupBy::Labels(vec!["alertname".into(), "region".into()]);
        assert_eq!(by.key(&alert).to_string(), r#"{alertname="ServiceDown"}"#);
        assert_eq!(GroupBy::All.key(&alert), alert);
        let mut tree =
            route("default", "", false, vec![route("critical", r#"severity="critical""#, false, Vec::new())]);
        tree.routes[0].matchers.extend(Matcher::parse_list(r#"endpoint=~"e.*""#).unwrap());
        let critical = alert.clone().with("severity", "critical");
        let keys: Vec<String> = tree.matching_keyed(&critical).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [r#"{}/{severity="critical",endpoint=~"e.*"}"#]);
        let keys: Vec<String> = tree.matching_keyed(&alert).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["{}"]);
        assert_eq!(group_key("{}", &by.key(&alert)), r#"{}:{alertname="ServiceDown"}"#);
    }

    #[test]
    fn time_intervals_with_alertmanagers_ranges() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        let night_weekends = TimeInterval {
            name: "quiet".into(),
            specs: vec![
                TimeSpec { times: vec![(22 * 60, 24 * 60)], ..TimeSpec::default() },
                TimeSpec {
                    weekdays: vec![Span { start: 6, end: 6 }, Span { start: 0, end: 0 }],
                    ..TimeSpec::default()
                },
            ],
        };
        assert!(night_weekends.contains(at("2026-12-07T23:30:00Z")), "Monday night");
        assert!(!night_weekends.contains(at("2026-12-07T12:00:00Z")), "Monday noon");
        assert!(night_weekends.contains(at("2026-12-06T12:00:00Z")), "Sunday");
        let last_day = TimeInterval {
            name: "month-end".into(),
            specs: vec![TimeSpec { days_of_month: vec![Span { start: -1, end: -1 }], ..TimeSpec::default() }],
        };
        assert!(last_day.contains(at("2028-02-29T10:00:00Z")), "a leap year's February");
        assert!(!last_day.contains(at("2027-02-27T10:00:00Z")));
        assert!(last_day.contains(at("2027-02-28T10:00:00Z")));
    }
}
