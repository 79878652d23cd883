//! Alerting, as pure logic: label sets and matchers with Prometheus' and Alertmanager's
//! meaning, rules in their validated form, the state machine of an alert instance, the
//! multi-vantage quorum, SLO burn rates, inhibition and annotation templates.
//!
//! The contract between the rule evaluator and the notifier is [`AlertTransition`]: the
//! evaluator emits one per state change of an [`AlertInstance`]; the history, the
//! Alertmanager-compatible API and every receiver read that one stream.

pub mod burn;
pub mod dispatch;
pub mod duration;
pub mod inhibit;
pub mod labels;
pub mod machine;
pub mod matcher;
pub mod notice;
pub mod quorum;
pub mod route;
pub mod rule;
pub mod silence;
pub mod state;
pub mod template;

pub use burn::{BurnWindow, Counts, Objective};
pub use duration::{parse_duration, DurationError, Millis};
pub use inhibit::{inhibited_by, InhibitRule};
pub use labels::{is_valid_label_name, Fingerprint, LabelSet, ALERTNAME, SEVERITY};
pub use machine::{Observation, Step, Timing, Verdict};
pub use matcher::{matches_all, MatchOp, Matcher, MatcherError};
pub use notice::{Notice, Notification};
pub use quorum::{endpoint_view, isolated_probers, EndpointView, LatestObservation, QuorumSpec, RegionView};
pub use route::{GroupBy, Route, TimeInterval, TimeSpec};
pub use rule::{Comparison, Condition, EventKind, MaintenanceWindow, MutingTail, Rule, RuleSet, Scope, WindowStat};
pub use silence::{silenced_by, Silence, SilenceMatcher, SilenceState};
pub use state::{AlertInstance, AlertState, AlertTransition, Notify, Severity};
pub use template::{Template, TemplateError};
