//! The routing file: the routing part of an Alertmanager `alertmanager.yml`, read as it is
//! (`global`, `route`, `receivers`, `inhibit_rules`, `time_intervals`), with Alertmanager's
//! defaults and inheritance, every mistake reported at once with its line and column.
//!
//! Secrets are never in the parsed values' `Debug` or messages: a `*_file` key names a file,
//! an inline value is a [`Secret`], and absent ones fall back to the variables the operators
//! use (`PAGERDUTY_ROUTING_KEY`, `SMTP_PASSWORD`, `SLACK_WEBHOOK_URL`, with
//! `SLACK_WEBHOOK_URL_CRITICAL`, `_WARNING`, `_INFO` for the channel of that severity).

use std::collections::BTreeSet;
use std::path::PathBuf;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::Node;
use mixmon_config::Secret;
use mixmon_model::alert::route::Span;
use mixmon_model::alert::{
    is_valid_label_name, parse_duration, GroupBy, InhibitRule, MatchOp, Matcher, Route, TimeInterval, TimeSpec,
};

use crate::{finish, read_bounded, Parser, RulesError};

/// Alertmanager's defaults for the root route.
const DEFAULT_GROUP_WAIT_MS: u64 = 30_000;
const DEFAULT_GROUP_INTERVAL_MS: u64 = 5 * 60_000;
const DEFAULT_REPEAT_INTERVAL_MS: u64 = 4 * 3_600_000;
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Where a secret comes from; resolved when a receiver sends, so a rotated file is read anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Inline(Secret),
    /// A file; where it does not exist, the variables of `env` (as [`SecretRef::Env`]).
    File {
        path: PathBuf,
        env: Vec<String>,
    },
    /// An environment variable, then the next one (`SLACK_WEBHOOK_URL_CRITICAL`, then
    /// `SLACK_WEBHOOK_URL`).
    Env(Vec<String>),
}

impl SecretRef {
    /// The secret now; `Err` names where it was looked for, never its value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Inline(secret) => Ok(secret.clone()),
            SecretRef::File { path, env } if !path.exists() && !env.is_empty() => {
                SecretRef::Env(env.clone()).resolve().map_err(|e| format!("{} does not exist and {e}", path.display()))
            }
            SecretRef::File { path, .. } => {
                Secret::from_file(path).map_err(|e| format!("reading {}: {e}", path.display()))
            }
            SecretRef::Env(names) => names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
                .map(Secret::new)
                .ok_or_else(|| format!("none of {} is set", names.join(", "))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagerDutyConfig {
    pub routing_key: SecretRef,
    pub url: String,
    /// PagerDuty's severity; absent: mapped from the alert's `severity` label.
    pub severity: Option<String>,
    pub send_resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    pub api_url: SecretRef,
    pub channel: Option<String>,
    pub send_resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub to: Vec<String>,
    pub from: String,
    /// `host:port`.
    pub smarthost: String,
    pub auth_username: Option<String>,
    pub auth_password: SecretRef,
    pub require_tls: bool,
    pub send_resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: SecretRef,
    pub send_resolved: bool,
    /// At most this many alerts per message (0: all).
    pub max_alerts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receiver {
    pub name: String,
    pub pagerduty: Vec<PagerDutyConfig>,
    pub slack: Vec<SlackConfig>,
    pub email: Vec<EmailConfig>,
    pub webhook: Vec<WebhookConfig>,
}

/// A routing file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub time_intervals: Vec<TimeInterval>,
}

impl Routing {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// The shipped routing file (`config/alertmanager.yml`), built in.
pub const SHIPPED: &str = include_str!("../../../config/alertmanager.yml");

pub fn shipped() -> Result<Routing, RulesError> {
    parse("config/alertmanager.yml (built in)", SHIPPED)
}

pub fn load(path: &std::path::Path) -> Result<Routing, RulesError> {
    let text = read_bounded(path)?;
    parse(&path.display().to_string(), &text)
}

pub fn parse(source: &str, text: &str) -> Result<Routing, RulesError> {
    let mut p = Parser { problems: Vec::new() };
    let routing = p.routing_file(text);
    match routing {
        Some(routing) => finish(source, p.problems, routing),
        None => Err(RulesError { source: source.to_string(), problems: p.problems }),
    }
}

/// `global:` defaults the receivers fall back to.
#[derive(Default)]
struct Global {
    smtp_from: Option<String>,
    smtp_smarthost: Option<String>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<SecretRef>,
    smtp_require_tls: Option<bool>,
    slack_api_url: Option<SecretRef>,
    pagerduty_url: Option<String>,
}

/// What a route inherits from its parent.
#[derive(Clone)]
struct Inherited {
    receiver: String,
    group_by: GroupBy,
    group_wait_ms: u64,
    group_interval_ms: u64,
    repeat_interval_ms: u64,
}

impl Parser {
    fn routing_file(&mut self, text: &str) -> Option<Routing> {
        let root = self.yaml(text)?;
        let root = self.mapping(&root, "the routing file")?;
        self.keys(
            root,
            "the routing file",
            &["global", "route", "receivers", "inhibit_rules", "time_intervals", "mute_time_intervals", "templates"],
        );
        if let Some(templates) = root.get_sequence("templates") {
            if !templates.is_empty() {
                self.problem(
                    templates.span(),
                    "templates are not supported: mixmon renders its own messages, from the rules' annotations",
                );
            }
        }
        let global = root.get_node("global").and_then(|g| self.global(g)).unwrap_or_default();
        let mut time_intervals = Vec::new();
        for key in ["time_intervals", "mute_time_intervals"] {
            if let Some(node) = root.get_node(key) {
                match node.as_sequence() {
                    None => self.problem(node.span(), format!("`{key}` must be a list")),
                    Some(list) => time_intervals.extend(list.iter().filter_map(|n| self.time_interval(n))),
                }
            }
        }
        let mut receivers = Vec::new();
        match root.get_node("receivers") {
            None => {
                self.problem(root.span(), "no `receivers:`; a routing file names at least the root route's receiver")
            }
            Some(node) => match node.as_sequence() {
                None => self.problem(node.span(), "`receivers` must be a list"),
                Some(list) => {
                    let mut names = BTreeSet::new();
                    for item in list.iter() {
                        if let Some(receiver) = self.receiver(item, &global) {
                            if !names.insert(receiver.name.clone()) {
                                self.problem(item.span(), format!("receiver {:?} is defined twice", receiver.name));
                            }
                            receivers.push(receiver);
                        }
                    }
                }
            },
        }
        let root_defaults = Inherited {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
        };
        let route = match root.get_node("route") {
            None => {
                self.problem(root.span(), "no `route:`; the root route names the default receiver");
                None
            }
            Some(node) => self.route(node, &root_defaults, true),
        };
        let known_receivers: BTreeSet<&str> = receivers.iter().map(|r| r.name.as_str()).collect();
        let known_intervals: BTreeSet<&str> = time_intervals.iter().map(|t: &TimeInterval| t.name.as_str()).collect();
        if let (Some(route), Some(node)) = (&route, root.get_node("route")) {
            let mut unknown = Vec::new();
            check_names(route, &known_receivers, &known_intervals, &mut unknown);
            for message in unknown {
                self.problem(node.span(), message);
            }
        }
        let mut inhibit_rules = Vec::new();
        if let Some(node) = root.get_node("inhibit_rules") {
            match node.as_sequence() {
                None => self.problem(node.span(), "`inhibit_rules` must be a list"),
                Some(list) => inhibit_rules.extend(list.iter().filter_map(|n| self.inhibit_rule(n))),
            }
        }
        Some(Routing { route: route?, receivers, inhibit_rules, time_intervals })
    }

    /// `key` inline or `key_file`; `env`, the variables a missing file falls back to.
    fn secret(&mut self, map: &MarkedMappingNode, key: &str, env: &[String]) -> Option<SecretRef> {
        let inline = map.get_scalar(key).map(|s| SecretRef::Inline(Secret::new(s.as_str())));
        let file = map
            .get_scalar(&format!("{key}_file"))
            .map(|s| SecretRef::File { path: PathBuf::from(s.as_str()), env: env.to_vec() });
        if inline.is_some() && file.is_some() {
            self.problem(map.span(), format!("`{key}` and `{key}_file` are both set; keep one"));
        }
        file.or(inline)
    }

    fn bool_key(&mut self, map: &MarkedMappingNode, key: &str) -> Option<bool> {
        let value = map.get_scalar(key)?;
        match value.as_bool() {
            Some(b) => Some(b),
            None => {
                self.problem(value.span(), format!("{key} must be true or false, not {:?}", value.as_str()));
                None
            }
        }
    }

    fn global(&mut self, node: &Node) -> Option<Global> {
        let map = self.mapping(node, "global")?;
        self.keys(
            map,
            "global",
            &[
                "resolve_timeout",
                "smtp_from",
                "smtp_smarthost",
                "smtp_hello",
                "smtp_auth_username",
                "smtp_auth_password",
                "smtp_auth_password_file",
                "smtp_require_tls",
                "slack_api_url",
                "slack_api_url_file",
                "pagerduty_url",
                "http_config",
            ],
        );
        if let Some(timeout) = map.get_scalar("resolve_timeout") {
            if let Err(e) = parse_duration(timeout.as_str()) {
                self.problem(timeout.span(), format!("resolve_timeout: {e}"));
            }
        }
        Some(Global {
            smtp_from: map.get_scalar("smtp_from").map(|s| s.as_str().to_string()),
            smtp_smarthost: map.get_scalar("smtp_smarthost").map(|s| s.as_str().to_string()),
            smtp_auth_username: map.get_scalar("smtp_auth_username").map(|s| s.as_str().to_string()),
            smtp_auth_password: self.secret(map, "smtp_auth_password", &smtp_env()),
            smtp_require_tls: self.bool_key(map, "smtp_require_tls"),
            slack_api_url: self.secret(map, "slack_api_url", &["SLACK_WEBHOOK_URL".to_string()]),
            pagerduty_url: map.get_scalar("pagerduty_url").map(|s| s.as_str().to_string()),
        })
    }

    fn configs<'a>(&mut self, map: &'a MarkedMappingNode, key: &str) -> Vec<&'a MarkedMappingNode> {
        let Some(node) = map.get_node(key) else { return Vec::new() };
        match node.as_sequence() {
            None => {
                self.problem(node.span(), format!("`{key}` must be a list"));
                Vec::new()
            }
            Some(list) => list.iter().filter_map(|item| self.mapping(item, key)).collect(),
        }
    }

    fn receiver(&mut self, node: &Node, global: &Global) -> Option<Receiver> {
        let map = self.mapping(node, "a receiver")?;
        self.keys(
            map,
            "a receiver",
            &["name", "pagerduty_configs", "slack_configs", "email_configs", "webhook_configs"],
        );
        let Some(name) = map.get_scalar("name").map(|n| n.as_str().to_string()).filter(|n| !n.trim().is_empty()) else {
            self.problem(map.span(), "a receiver needs a `name`");
            return None;
        };
        let mut receiver = Receiver { name, ..Receiver::default() };
        for c in self.configs(map, "pagerduty_configs") {
            self.keys(
                c,
                "pagerduty_configs",
                &[
                    "routing_key",
                    "routing_key_file",
                    "url",
                    "severity",
                    "send_resolved",
                    "client",
                    "client_url",
                    "description",
                    "details",
                    "links",
                    "http_config",
                ],
            );
            if c.get_node("service_key").is_some() {
                self.problem(c.span(), "service_key is PagerDuty's Events API v1; use routing_key (Events API v2)");
            }
            receiver.pagerduty.push(PagerDutyConfig {
                routing_key: self
                    .secret(c, "routing_key", &pagerduty_env())
                    .unwrap_or_else(|| SecretRef::Env(pagerduty_env())),
                url: c
                    .get_scalar("url")
                    .map(|s| s.as_str().to_string())
                    .or_else(|| global.pagerduty_url.clone())
                    .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into()),
                severity: c.get_scalar("severity").map(|s| s.as_str().to_string()),
                send_resolved: self.bool_key(c, "send_resolved").unwrap_or(true),
            });
        }
        for c in self.configs(map, "slack_configs") {
            self.keys(
                c,
                "slack_configs",
                &[
                    "api_url",
                    "api_url_file",
                    "channel",
                    "send_resolved",
                    "username",
                    "title",
                    "text",
                    "color",
                    "icon_emoji",
                    "http_config",
                ],
            );
            let channel = c.get_scalar("channel").map(|s| s.as_str().to_string());
            // One incoming webhook posts to one channel: the severity's own, then the shared one.
            let env: Vec<String> = match channel.as_deref().map(|c| c.trim_start_matches('#')) {
                Some(c) if c.ends_with("critical") => {
                    vec!["SLACK_WEBHOOK_URL_CRITICAL".into(), "SLACK_WEBHOOK_URL".into()]
                }
                Some(c) if c.ends_with("warning") => {
                    vec!["SLACK_WEBHOOK_URL_WARNING".into(), "SLACK_WEBHOOK_URL".into()]
                }
                Some(c) if c.ends_with("info") => vec!["SLACK_WEBHOOK_URL_INFO".into(), "SLACK_WEBHOOK_URL".into()],
                _ => vec!["SLACK_WEBHOOK_URL".into()],
            };
            receiver.slack.push(SlackConfig {
                api_url: self
                    .secret(c, "api_url", &env)
                    .or_else(|| global.slack_api_url.clone())
                    .unwrap_or(SecretRef::Env(env)),
                channel,
                send_resolved: self.bool_key(c, "send_resolved").unwrap_or(false),
            });
        }
        for c in self.configs(map, "email_configs") {
            self.keys(
                c,
                "email_configs",
                &[
                    "to",
                    "from",
                    "smarthost",
                    "hello",
                    "auth_username",
                    "auth_password",
                    "auth_password_file",
                    "require_tls",
                    "send_resolved",
                    "headers",
                    "html",
                    "text",
                    "tls_config",
                ],
            );
            let to: Vec<String> = c
                .get_scalar("to")
                .map(|s| s.as_str().split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
                .unwrap_or_default();
            if to.is_empty() {
                self.problem(c.span(), "an email config needs `to` (addresses, comma-separated)");
            }
            let from = c.get_scalar("from").map(|s| s.as_str().to_string()).or_else(|| global.smtp_from.clone());
            let smarthost =
                c.get_scalar("smarthost").map(|s| s.as_str().to_string()).or_else(|| global.smtp_smarthost.clone());
            match &smarthost {
                None => self.problem(
                    c.span(),
                    "an email config needs `smarthost` (host:port), here or as global.smtp_smarthost",
                ),
                Some(host) if host.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) => {
                    self.problem(c.span(), format!("smarthost {host:?} must be host:port"))
                }
                Some(_) => {}
            }
            if from.is_none() {
                self.problem(c.span(), "an email config needs `from`, here or as global.smtp_from");
            }
            receiver.email.push(EmailConfig {
                to,
                from: from.unwrap_or_default(),
                smarthost: smarthost.unwrap_or_default(),
                auth_username: c
                    .get_scalar("auth_username")
                    .map(|s| s.as_str().to_string())
                    .or_else(|| global.smtp_auth_username.clone()),
                auth_password: self
                    .secret(c, "auth_password", &smtp_env())
                    .or_else(|| global.smtp_auth_password.clone())
                    .unwrap_or_else(|| SecretRef::Env(smtp_env())),
                require_tls: self.bool_key(c, "require_tls").or(global.smtp_require_tls).unwrap_or(true),
                send_resolved: self.bool_key(c, "send_resolved").unwrap_or(false),
            });
        }
        for c in self.configs(map, "webhook_configs") {
            self.keys(c, "webhook_configs", &["url", "url_file", "send_resolved", "max_alerts", "http_config"]);
            let Some(url) = self.secret(c, "url", &[]) else {
                self.problem(c.span(), "a webhook config needs `url` or `url_file`");
                continue;
            };
            let max_alerts = match c.get_scalar("max_alerts") {
                None => 0,
                Some(s) => s.as_str().parse().unwrap_or_else(|_| {
                    self.problem(s.span(), format!("max_alerts must be a whole number, not {:?}", s.as_str()));
                    0
                }),
            };
            receiver.webhook.push(WebhookConfig {
                url,
                send_resolved: self.bool_key(c, "send_resolved").unwrap_or(true),
                max_alerts,
            });
        }
        Some(receiver)
    }

    fn matchers(&mut self, map: &MarkedMappingNode, list_key: &str, eq_key: &str, re_key: &str) -> Vec<Matcher> {
        let mut out = Vec::new();
        for text in self.string_list(map, list_key) {
            match Matcher::parse_list(text.as_str()) {
                Ok(m) => out.extend(m),
                Err(e) => self.problem(text.span(), e.to_string()),
            }
        }
        for (key, op) in [(eq_key, MatchOp::Equal), (re_key, MatchOp::Regex)] {
            for (name, value) in self.string_map(map, key) {
                match Matcher::new(name.as_str(), op, value.as_str()) {
                    Ok(m) => out.push(m),
                    Err(e) => self.problem(name.span(), e.to_string()),
                }
            }
        }
        out
    }

    fn duration_or(&mut self, map: &MarkedMappingNode, key: &str, inherited: u64) -> u64 {
        self.duration(map, key).unwrap_or(inherited)
    }

    fn route(&mut self, node: &Node, parent: &Inherited, is_root: bool) -> Option<Route> {
        let map = self.mapping(node, "a route")?;
        self.keys(
            map,
            "a route",
            &[
                "receiver",
                "group_by",
                "group_wait",
                "group_interval",
                "repeat_interval",
                "matchers",
                "match",
                "match_re",
                "continue",
                "routes",
                "mute_time_intervals",
                "active_time_intervals",
            ],
        );
        let receiver =
            map.get_scalar("receiver").map(|s| s.as_str().to_string()).unwrap_or_else(|| parent.receiver.clone());
        if is_root && receiver.is_empty() {
            self.problem(map.span(), "the root route needs a `receiver`");
        }
        let matchers = self.matchers(map, "matchers", "match", "match_re");
        if is_root && !matchers.is_empty() {
            self.problem(map.span(), "the root route takes every alert: it cannot have matchers");
        }
        let group_by = match map.get_node("group_by") {
            None => parent.group_by.clone(),
            Some(_) => {
                let names: Vec<MarkedScalarNode> = self.string_list(map, "group_by");
                if names.iter().any(|n| n.as_str() == "...") {
                    if names.len() > 1 {
                        self.problem(map.span(), "group_by: ['...'] groups by every label; it takes no other names");
                    }
                    GroupBy::All
                } else {
                    for name in names.iter().filter(|n| !is_valid_label_name(n.as_str())) {
                        self.problem(name.span(), format!("bad label name {:?} in group_by", name.as_str()));
                    }
                    GroupBy::Labels(names.iter().map(|n| n.as_str().to_string()).collect())
                }
            }
        };
        let inherited = Inherited {
            receiver: receiver.clone(),
            group_by: group_by.clone(),
            group_wait_ms: self.duration_or(map, "group_wait", parent.group_wait_ms),
            group_interval_ms: self.duration_or(map, "group_interval", parent.group_interval_ms),
            repeat_interval_ms: self.duration_or(map, "repeat_interval", parent.repeat_interval_ms),
        };
        if inherited.group_interval_ms == 0 || inherited.repeat_interval_ms == 0 {
            self.problem(map.span(), "group_interval and repeat_interval must be above 0");
        }
        let continue_matching = self.bool_key(map, "continue").unwrap_or(false);
        if is_root && continue_matching {
            self.problem(map.span(), "the root route cannot continue");
        }
        let mut routes = Vec::new();
        if let Some(children) = map.get_node("routes") {
            match children.as_sequence() {
                None => self.problem(children.span(), "`routes` must be a list"),
                Some(list) => routes.extend(list.iter().filter_map(|child| self.route(child, &inherited, false))),
            }
        }
        Some(Route {
            receiver,
            matchers,
            group_by,
            group_wait_ms: inherited.group_wait_ms,
            group_interval_ms: inherited.group_interval_ms,
            repeat_interval_ms: inherited.repeat_interval_ms,
            continue_matching,
            mute_time_intervals: self
                .string_list(map, "mute_time_intervals")
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            active_time_intervals: self
                .string_list(map, "active_time_intervals")
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            routes,
        })
    }

    fn inhibit_rule(&mut self, node: &Node) -> Option<InhibitRule> {
        let map = self.mapping(node, "an inhibit rule")?;
        self.keys(
            map,
            "an inhibit rule",
            &[
                "source_matchers",
                "target_matchers",
                "source_match",
                "source_match_re",
                "target_match",
                "target_match_re",
                "equal",
            ],
        );
        let source_matchers = self.matchers(map, "source_matchers", "source_match", "source_match_re");
        let target_matchers = self.matchers(map, "target_matchers", "target_match", "target_match_re");
        if target_matchers.is_empty() {
            self.problem(map.span(), "an inhibit rule without target matchers would mute every alert");
        }
        let mut equal = Vec::new();
        for label in self.string_list(map, "equal") {
            if is_valid_label_name(label.as_str()) {
                equal.push(label.as_str().to_string());
            } else {
                self.problem(label.span(), format!("bad label name {:?} in equal", label.as_str()));
            }
        }
        Some(InhibitRule { source_matchers, target_matchers, equal })
    }

    fn time_interval(&mut self, node: &Node) -> Option<TimeInterval> {
        let map = self.mapping(node, "a time interval")?;
        self.keys(map, "a time interval", &["name", "time_intervals"]);
        let name = map.get_scalar("name").map(|s| s.as_str().to_string()).unwrap_or_default();
        if name.is_empty() {
            self.problem(map.span(), "a time interval needs a `name`");
        }
        let mut specs = Vec::new();
        for spec in self.configs(map, "time_intervals") {
            self.keys(spec, "time_intervals", &["times", "weekdays", "days_of_month", "months", "years", "location"]);
            if let Some(location) = spec.get_scalar("location") {
                if !matches!(location.as_str(), "UTC" | "utc") {
                    self.problem(
                        location.span(),
                        format!("location {:?}: only UTC is supported; write the times in UTC", location.as_str()),
                    );
                }
            }
            let mut times = Vec::new();
            for t in self.configs(spec, "times") {
                let minute = |p: &mut Parser, key: &str| -> Option<u32> {
                    let s = t.get_scalar(key)?;
                    let parsed = s
                        .as_str()
                        .split_once(':')
                        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
                    match parsed {
                        Some((h, m)) if m < 60 && (h < 24 || (h == 24 && m == 0)) => Some(h * 60 + m),
                        _ => {
                            p.problem(s.span(), format!("{key} {:?} must be HH:MM (00:00 to 24:00)", s.as_str()));
                            None
                        }
                    }
                };
                if let (Some(start), Some(end)) = (minute(self, "start_time"), minute(self, "end_time")) {
                    if start >= end {
                        self.problem(t.span(), "start_time must be before end_time");
                    }
                    times.push((start, end));
                }
            }
            specs.push(TimeSpec {
                times,
                weekdays: self.spans(spec, "weekdays", &|s| weekday(s), 0, 6),
                days_of_month: self.spans(spec, "days_of_month", &|s| s.parse().ok(), -31, 31),
                months: self.spans(spec, "months", &|s| month(s), 1, 12),
                years: self.spans(spec, "years", &|s| s.parse().ok(), 1970, 9999),
            });
        }
        Some(TimeInterval { name, specs })
    }

    /// A list of `a` or `a:b` ranges, each end parsed by `one` and within `min..=max`.
    fn spans(
        &mut self,
        map: &MarkedMappingNode,
        key: &str,
        one: &dyn Fn(&str) -> Option<i32>,
        min: i32,
        max: i32,
    ) -> Vec<Span> {
        let mut out = Vec::new();
        for item in self.string_list(map, key) {
            let text = item.as_str().trim().to_ascii_lowercase();
            let (a, b) = text.split_once(':').unwrap_or((text.as_str(), text.as_str()));
            // Days of the month count from 1, or back from -1 (the last day): never 0.
            let valid = |v: i32| (min..=max).contains(&v) && !(min < 0 && v == 0);
            match (one(a.trim()), one(b.trim())) {
                (Some(start), Some(end)) if valid(start) && valid(end) => out.push(Span { start, end }),
                _ => self.problem(
                    item.span(),
                    format!("{key}: {:?} is not a value or range in {min}..={max}", item.as_str()),
                ),
            }
        }
        out
    }
}

fn pagerduty_env() -> Vec<String> {
    vec!["PAGERDUTY_ROUTING_KEY".into()]
}

fn smtp_env() -> Vec<String> {
    vec!["SMTP_PASSWORD".into()]
}

fn weekday(text: &str) -> Option<i32> {
    ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
        .iter()
        .position(|d| *d == text)
        .and_then(|i| i32::try_from(i).ok())
}

fn month(text: &str) -> Option<i32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    MONTHS.iter().position(|m| *m == text).and_then(|i| i32::try_from(i + 1).ok()).or_else(|| text.parse().ok())
}

/// Receivers and time intervals a route names that the file does not define.
fn check_names(route: &Route, receivers: &BTreeSet<&str>, intervals: &BTreeSet<&str>, out: &mut Vec<String>) {
    if !route.receiver.is_empty() && !receivers.contains(route.receiver.as_str()) {
        out.push(format!("route names receiver {:?}, which `receivers` does not define", route.receiver));
    }
    for name in route.mute_time_intervals.iter().chain(&route.active_time_intervals) {
        if !intervals.contains(name.as_str()) {
            out.push(format!("route names time interval {name:?}, which `time_intervals` does not define"));
        }
    }
    for child in &route.routes {
        check_names(child, receivers, intervals, out);
    }
}

#[cfg(test)]
mod tests;
