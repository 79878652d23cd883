//! mixmon's Grafana dashboards (`deploy/grafana/dashboards/*.json`, provisioned by
//! `deploy/grafana/provisioning/dashboards/mixmon.yaml`), checked two ways:
//!
//! * `every_dashboard_file_is_valid_grafana_json` (no processes): every file is a Grafana
//!   dashboard model as Grafana loads it: a current `schemaVersion`, unique panel ids (the
//!   panels of rows included), grid positions inside 24 columns that never overlap, every
//!   datasource referenced by uid (`mixmon`, or Grafana's built-in one for its own
//!   annotations), every `$variable` a panel, an annotation or a chained variable uses
//!   defined (before it, for variables), payloads that stay JSON once variables are replaced,
//!   uids and titles unique across files; and the provider points at a path. Each check is
//!   first shown to catch a dashboard built to break it.
//! * `every_dashboard_target_is_answered`: the real system fed by the simulated fleet
//!   (redis-server, `mixmon-mixer-sim`, the aggregator, two probers that probe the fleet's
//!   fronts, scrape and sample the pods of their node and sample the node through the
//!   simulated kubelet, and `mixmon-query`). Every variable query, ad hoc filter key,
//!   annotation query and panel of every dashboard is sent as the `simpod-json-datasource`
//!   plugin sends it (`POST /variable`, `/tag-keys`, `/tag-values`, and `/query` with Grafana's
//!   request fields, payloads interpolated the plugin's way), with the variables at what a
//!   dashboard opens with (`All` of what `/variable` really returned); every target must be
//!   answered with data points or rows. A second pass with each variable at its first value
//!   must be answered without an error.
//!
//! The fleet is probed through `localhost` (so probes have a DNS phase), and one check,
//! `api-tls`, speaks TLS to the plain-HTTP `api` front: every probe of it fails in its TLS
//! handshake, so the failure-kind, error-budget, burn-rate and time-to-exhaustion panels
//! have something to show, as a fleet with a broken endpoint would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_simulator, unix_ms, write};
use mixmon_testkit::{eventually, http, ChildProcess, ProberConfig, RedisServer};
use serde_json::{json, Map, Value};

/// The five dashboards issue 14 asks for.
const EXPECTED_FILES: [&str; 5] = [
    "audio-quality.json",
    "error-tracking.json",
    "global-overview.json",
    "regional-performance.json",
    "system-health.json",
];
const GRID_COLUMNS: i64 = 24;
/// The oldest `schemaVersion` accepted (Grafana 9.x wrote 36; 10.x/11.x write 38/39).
const MIN_SCHEMA_VERSION: i64 = 36;
const MIXMON_UID: &str = "mixmon";
const PLUGIN: &str = "simpod-json-datasource";
const GRAFANA_BUILTIN_UID: &str = "-- Grafana --";
/// Where the provider reads the dashboards from (the container mounts
/// deploy/grafana/dashboards there).
const PROVIDER_PATH: &str = "/var/lib/grafana/dashboards/mixmon";
/// Panel types Grafana ships (the ones these dashboards may use).
const PANEL_TYPES: [&str; 14] = [
    "row",
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "state-timeline",
    "status-history",
    "heatmap",
    "barchart",
    "piechart",
    "text",
    "histogram",
    "annolist",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dashboards_dir() -> PathBuf {
    repo_root().join("deploy/grafana/dashboards")
}

struct Dashboard {
    file: String,
    json: Value,
}

impl Dashboard {
    fn title(&self) -> String {
        self.json["title"].as_str().unwrap_or("?").to_string()
    }

    /// "<title> (<file>)", for messages.
    fn name(&self) -> String {
        format!("{} ({})", self.title(), self.file)
    }
}

/// Every `*.json` file of the dashboards folder, parsed, sorted by file name.
fn load_dashboards() -> anyhow::Result<Vec<Dashboard>> {
    let dir = dashboards_dir();
    let mut boards = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text).with_context(|| format!("{file} is not valid JSON"))?;
        boards.push(Dashboard { file, json });
    }
    boards.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(boards)
}

// ------------------------------------------------------------------------------------------
// Panels and their grid

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Every panel, the panels nested in (collapsed) rows included.
fn all_panels(board: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in list(board, "panels") {
        panels.push(panel);
        panels.extend(list(panel, "panels"));
    }
    panels
}

fn panel_name(panel: &Value) -> String {
    format!("'{}' (id {})", panel["title"].as_str().unwrap_or(""), panel["id"])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grid {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

impl Grid {
    fn of(panel: &Value) -> Option<Grid> {
        let pos = panel.get("gridPos")?;
        let field = |k: &str| pos.get(k).and_then(Value::as_i64);
        Some(Grid { x: field("x")?, y: field("y")?, w: field("w")?, h: field("h")? })
    }

    fn overlaps(&self, other: &Grid) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

/// Panels that lie side by side on one grid: each inside the 24 columns, none overlapping.
fn grid_problems(panels: &[&Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut placed: Vec<(&Value, Grid)> = Vec::new();
    for panel in panels {
        let Some(grid) = Grid::of(panel) else {
            problems.push(format!("panel {} has no complete gridPos {{x, y, w, h}}", panel_name(panel)));
            continue;
        };
        if grid.x < 0 || grid.y < 0 || grid.w < 1 || grid.h < 1 || grid.x + grid.w > GRID_COLUMNS {
            problems.push(format!(
                "panel {} lies outside the grid: x {} + w {} must be within {GRID_COLUMNS} columns, w and h at least 1",
                panel_name(panel),
                grid.x,
                grid.w
            ));
        }
        for (other, other_grid) in &placed {
            if grid.overlaps(other_grid) {
                problems.push(format!(
                    "panels {} {:?} and {} {:?} overlap",
                    panel_name(other),
                    other_grid,
                    panel_name(panel),
                    grid
                ));
            }
        }
        placed.push((panel, grid));
    }
    problems
}

// ------------------------------------------------------------------------------------------
// Template variables: Grafana's `$name`, `${name}`, `${name:format}`, `${name.path}`,
// `[[name]]` and `[[name:format]]`

/// One variable reference in a text: its byte range and the variable's name.
struct Token {
    start: usize,
    end: usize,
    name: String,
}

fn name_at(bytes: &[u8], from: usize) -> usize {
    let mut end = from;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    end
}

/// Every variable reference in `text`, Grafana's built-ins (`$__interval`, `${__field...}`)
/// included; a name must start with a letter or `_` (so "$5" is not one).
fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (name_from, closing): (usize, Option<&[u8]>) = if text[i..].starts_with("${") {
            (i + 2, Some(b"}"))
        } else if text[i..].starts_with("[[") {
            (i + 2, Some(b"]]"))
        } else if bytes[i] == b'$' {
            (i + 1, None)
        } else {
            i += 1;
            continue;
        };
        let name_end = name_at(bytes, name_from);
        let starts_well = bytes.get(name_from).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
        let end = match closing {
            None => Some(name_end),
            Some(close) => {
                // `}` / `]]` right after the name, or after a `:format` / `.path` suffix.
                let rest = &bytes[name_end..];
                let suffix_ok = rest.first().is_some_and(|b| *b == b':' || *b == b'.' || rest.starts_with(close));
                let close_at = (name_end..bytes.len()).find(|&j| bytes[j..].starts_with(close));
                close_at.filter(|_| suffix_ok).map(|j| j + close.len())
            }
        };
        match end {
            Some(end) if starts_well && name_end > name_from => {
                found.push(Token { start: i, end, name: text[name_from..name_end].to_string() });
                i = end;
            }
            _ => i += 1,
        }
    }
    found
}

/// The dashboard variables `text` uses (Grafana's `__` built-ins left out), in order, once.
fn variable_refs(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for token in tokens(text) {
        if !token.name.starts_with("__") && !names.contains(&token.name) {
            names.push(token.name);
        }
    }
    names
}

/// A variable's value as Grafana holds it: a multi-value variable's is a list, even of one.
#[derive(Debug, Clone)]
enum VarValue {
    One(String),
    Many(Vec<String>),
}

type Vars = BTreeMap<String, VarValue>;

#[derive(Clone, Copy)]
enum Format {
    /// `templateSrv.replace(.., 'json')`: a JSON string or array (variable queries in JSON).
    Json,
    /// The plugin's `cleanMatch` on a code-mode payload: JSON, a string unquoted again, so
    /// `"$one"` and `$many` are both JSON once replaced.
    Payload,
    /// `templateSrv.replace(.., 'regex')` (the `target`): escaped, several as `(a|b)`.
    Regex,
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "-/\\^$*+?.()|[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn format_value(value: &VarValue, format: Format) -> String {
    match (format, value) {
        (Format::Json, VarValue::One(v)) => Value::String(v.clone()).to_string(),
        (Format::Json, VarValue::Many(vs)) | (Format::Payload, VarValue::Many(vs)) => json!(vs).to_string(),
        (Format::Payload, VarValue::One(v)) => v.clone(),
        (Format::Regex, VarValue::One(v)) => regex_escape(v),
        (Format::Regex, VarValue::Many(vs)) if vs.len() == 1 => regex_escape(&vs[0]),
        (Format::Regex, VarValue::Many(vs)) => {
            format!("({})", vs.iter().map(|v| regex_escape(v)).collect::<Vec<_>>().join("|"))
        }
    }
}

/// Replaces every known variable of `text` as Grafana would; unknown ones stay as written.
fn interpolate(text: &str, vars: &Vars, format: Format) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for token in tokens(text) {
        if let Some(value) = vars.get(&token.name) {
            out.push_str(&text[last..token.start]);
            out.push_str(&format_value(value, format));
            last = token.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// A target's payload as the plugin sends it (code mode): the string interpolated and parsed;
/// an empty string is `{}`; an object is sent as it is (no payload here uses one).
fn process_payload(payload: &Value, vars: &Vars) -> Result<Value, String> {
    match payload {
        Value::Null => Ok(json!({})),
        Value::String(text) if text.trim().is_empty() => Ok(json!({})),
        Value::String(text) => {
            let replaced = interpolate(text, vars, Format::Payload);
            // The plugin sends `{}` silently when this fails: the panel would show everything.
            match serde_json::from_str::<Value>(&replaced) {
                Ok(Value::Object(map)) => Ok(Value::Object(map)),
                Ok(other) => Err(format!("payload {replaced} is not a JSON object but {other}")),
                Err(e) => Err(format!("payload {replaced} is not JSON once variables are replaced ({e})")),
            }
        }
        Value::Object(_) => Ok(payload.clone()),
        other => Err(format!("payload {other} is neither a JSON string nor an object")),
    }
}

/// Placeholder values for the static check: multi-value variables as lists, others as one.
fn dummy_vars(board: &Value) -> Vars {
    list(&board["templating"], "list")
        .iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?.to_string();
            let value = if v["multi"].as_bool() == Some(true) {
                VarValue::Many(vec!["x".into()])
            } else {
                VarValue::One("x".into())
            };
            Some((name, value))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Datasources

fn is_mixmon(ds: Option<&Value>) -> bool {
    ds.is_some_and(|ds| {
        ds["uid"] == MIXMON_UID && (ds.get("type").is_none() || ds["type"] == PLUGIN) && ds.as_object().is_some()
    })
}

fn is_grafana_builtin(ds: Option<&Value>) -> bool {
    ds.is_some_and(|ds| ds["uid"] == GRAFANA_BUILTIN_UID)
}

fn describe(ds: Option<&Value>) -> String {
    ds.map_or_else(|| "missing".to_string(), Value::to_string)
}

// ------------------------------------------------------------------------------------------
// One dashboard's problems

fn dashboard_problems(board: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    match board["schemaVersion"].as_i64() {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        other => problems.push(format!("schemaVersion {other:?} is older than {MIN_SCHEMA_VERSION} (or missing)")),
    }
    for key in ["uid", "title"] {
        if board[key].as_str().is_none_or(|s| s.trim().is_empty()) {
            problems.push(format!("the dashboard has no {key}"));
        }
    }
    if !board["panels"].is_array() {
        problems.push("the dashboard has no panels list".into());
    }

    // Variables: each defined once, chained ones only on variables before them.
    let variables = list(&board["templating"], "list");
    let mut defined: Vec<String> = Vec::new();
    for var in variables {
        let Some(name) = var["name"].as_str().filter(|n| !n.is_empty()) else {
            problems.push(format!("a variable has no name: {var}"));
            continue;
        };
        if defined.iter().any(|d| d == name) {
            problems.push(format!("variable '{name}' is defined twice"));
        }
        let kind = var["type"].as_str().unwrap_or("");
        if matches!(kind, "query" | "adhoc") && !is_mixmon(var.get("datasource")) {
            problems.push(format!("variable '{name}': datasource {} is not mixmon", describe(var.get("datasource"))));
        }
        for used in variable_refs(&var["query"].to_string()) {
            if !defined.contains(&used) {
                problems.push(format!("variable '{name}' uses ${used}, which is not defined before it"));
            }
        }
        defined.push(name.to_string());
    }
    let undefined = |text: &str| -> Vec<String> {
        variable_refs(text).into_iter().filter(|n| !defined.contains(n)).collect::<Vec<_>>()
    };
    let dummies = dummy_vars(board);

    // Annotations: mixmon's alert history, or Grafana's own.
    for annotation in list(&board["annotations"], "list") {
        let name = annotation["name"].as_str().unwrap_or("?");
        let ds = annotation.get("datasource");
        if is_mixmon(ds) {
            if annotation["target"]["target"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("annotation '{name}' has no target"));
            }
            if let Err(e) = process_payload(&annotation["target"]["payload"], &dummies) {
                problems.push(format!("annotation '{name}': {e}"));
            }
        } else if !is_grafana_builtin(ds) {
            problems.push(format!("annotation '{name}': datasource {} is neither mixmon nor Grafana's", describe(ds)));
        }
        for used in undefined(&annotation.to_string()) {
            problems.push(format!("annotation '{name}' uses ${used}, which is not a dashboard variable"));
        }
    }

    // Panels: ids, types, datasources, targets, variables.
    let mut ids = BTreeSet::new();
    for panel in all_panels(board) {
        let name = panel_name(panel);
        match panel["id"].as_i64() {
            Some(id) if !ids.insert(id) => problems.push(format!("duplicate panel id {id} ({name})")),
            Some(_) => {}
            None => problems.push(format!("panel {name} has no numeric id")),
        }
        let kind = panel["type"].as_str().unwrap_or("");
        if !PANEL_TYPES.contains(&kind) {
            problems.push(format!("panel {name} has an unknown type '{kind}'"));
        }
        let targets = list(panel, "targets");
        let needs_data = !matches!(kind, "row" | "text" | "annolist");
        if needs_data && targets.is_empty() {
            problems.push(format!("panel {name} has no targets"));
        }
        if (needs_data || panel.get("datasource").is_some()) && !is_mixmon(panel.get("datasource")) {
            problems.push(format!("panel {name}: datasource {} is not mixmon", describe(panel.get("datasource"))));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problems.push(format!("panel {name}: refId '{ref_id}' is empty or not unique"));
            }
            if !is_mixmon(target.get("datasource")) {
                problems.push(format!(
                    "panel {name} target {ref_id}: datasource {} is not mixmon",
                    describe(target.get("datasource"))
                ));
            }
            if target["target"].as_str().is_none_or(|t| t.trim().is_empty()) {
                problems.push(format!("panel {name} target {ref_id} names no metric"));
            }
            if let Err(e) = process_payload(&target["payload"], &dummies) {
                problems.push(format!("panel {name} target {ref_id}: {e}"));
            }
        }
        // The panel's own text (a row's nested panels are checked on their own).
        let mut own = panel.clone();
        if let Some(map) = own.as_object_mut() {
            map.remove("panels");
        }
        for used in undefined(&own.to_string()) {
            problems.push(format!("panel {name} uses ${used}, which is not a dashboard variable"));
        }
    }

    // The grid: the top level (rows included), and each collapsed row's panels on their own.
    let top: Vec<&Value> = list(board, "panels").iter().collect();
    problems.extend(grid_problems(&top));
    for panel in &top {
        let nested: Vec<&Value> = list(panel, "panels").iter().collect();
        if !nested.is_empty() {
            if panel["collapsed"].as_bool() != Some(true) {
                problems.push(format!("row {} holds panels but is not collapsed", panel_name(panel)));
            }
            problems.extend(grid_problems(&nested));
        }
    }
    problems
}

/// `key: value` pairs of a simple YAML file (comments and list dashes dropped), in order.
fn yaml_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = match line.find(" #") {
                Some(at) => &line[..at],
                None if line.trim_start().starts_with('#') => "",
                None => line,
            };
            let line = line.trim().trim_start_matches("- ").trim();
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_string(), value.trim().trim_matches('"').to_string()))
        })
        .collect()
}

fn provider_problems(text: &str) -> Vec<String> {
    let pairs = yaml_pairs(text);
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut problems = Vec::new();
    for (key, wanted) in [
        ("apiVersion", "1"),
        ("type", "file"),
        ("folder", "mixmon"),
        ("allowUiUpdates", "false"),
        ("path", PROVIDER_PATH),
    ] {
        if value(key) != Some(wanted) {
            problems.push(format!("provider {key} is {:?}, wanted {wanted:?}", value(key)));
        }
    }
    if value("providers").is_none() {
        problems.push("the provider file has no providers list".into());
    }
    problems
}

fn contains_problem(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

/// The checks catch what they are there to catch.
fn checks_catch_broken_dashboards() -> anyhow::Result<()> {
    let a = Grid { x: 0, y: 0, w: 12, h: 8 };
    ensure!(a.overlaps(&Grid { x: 11, y: 7, w: 2, h: 2 }), "a corner overlap is not caught");
    ensure!(a.overlaps(&Grid { x: 2, y: 2, w: 2, h: 2 }), "a panel inside another is not caught");
    ensure!(!a.overlaps(&Grid { x: 12, y: 0, w: 12, h: 8 }), "panels side by side are taken for an overlap");
    ensure!(!a.overlaps(&Grid { x: 0, y: 8, w: 24, h: 1 }), "a row just below is taken for an overlap");

    let refs = variable_refs("a $region ${node:csv} [[pod]] ${mount.text} $__interval ${__field.labels.x} $5 $region");
    ensure!(refs == ["region", "node", "pod", "mount"], "variable references found: {refs:?}");
    let vars: Vars = [
        ("one".to_string(), VarValue::One("eu-west".into())),
        ("many".to_string(), VarValue::Many(vec!["a.b".into(), "c".into()])),
    ]
    .into_iter()
    .collect();
    let payload =
        process_payload(&json!(r#"{"x": "$one", "y": $many, "z": "${one}"}"#), &vars).map_err(anyhow::Error::msg)?;
    ensure!(payload == json!({"x": "eu-west", "y": ["a.b", "c"], "z": "eu-west"}), "payload: {payload}");
    ensure!(interpolate("$many", &vars, Format::Regex) == r"(a\.b|c)", "regex format");
    ensure!(interpolate(r#"{"r": $one}"#, &vars, Format::Json) == r#"{"r": "eu-west"}"#, "json format");
    ensure!(process_payload(&json!(r#"{"x": $one}"#), &vars).is_err(), "an unquoted single value must be refused");

    let mixmon = json!({"type": PLUGIN, "uid": MIXMON_UID});
    let broken = json!({
        "uid": "broken", "title": "Broken", "schemaVersion": 30,
        "templating": {"list": [
            {"type": "query", "name": "pod", "datasource": mixmon,
             "query": {"query": "{\"target\": \"pods\", \"region\": $zone}", "format": "json"}}
        ]},
        "annotations": {"list": [{"name": "deploys", "datasource": {"uid": "prometheus"}, "target": {"target": "x"}}]},
        "panels": [
            {"id": 1, "type": "timeseries", "title": "A $region", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
             "datasource": mixmon,
             "targets": [{"refId": "A", "target": "uptime", "payload": "{\"pod\": $pod}", "datasource": mixmon}]},
            {"id": 1, "type": "timeseries", "title": "B", "gridPos": {"x": 6, "y": 4, "w": 12, "h": 8},
             "datasource": {"uid": "prometheus"},
             "targets": [{"refId": "A", "target": "uptime", "datasource": mixmon},
                         {"refId": "A", "target": "", "payload": "{\"pod\": \"$pod\"}", "datasource": mixmon}]},
            {"id": 3, "type": "stat", "title": "C", "gridPos": {"x": 20, "y": 20, "w": 8, "h": 2},
             "datasource": mixmon, "targets": []},
            {"id": 4, "type": "fancy", "title": "D", "gridPos": {"x": 0, "y": 30, "w": 4, "h": 2},
             "datasource": mixmon,
             "targets": [{"refId": "A", "target": "uptime", "payload": "{\"pod\": \"$pod\"}",
                          "datasource": {"uid": "mixmon", "type": "prometheus"}}]}
        ]
    });
    let problems = dashboard_problems(&broken);
    for needle in [
        "schemaVersion Some(30)",
        "uses $zone, which is not defined before it",
        "annotation 'deploys': datasource",
        "uses $region, which is not a dashboard variable",
        "duplicate panel id 1",
        "overlap",
        "'B' (id 1): datasource",
        "refId 'A' is empty or not unique",
        "names no metric",
        "is not JSON once variables are replaced",
        "'C' (id 3) lies outside the grid",
        "'C' (id 3) has no targets",
        "unknown type 'fancy'",
        "'D' (id 4) target A: datasource",
    ] {
        ensure!(
            contains_problem(&problems, needle),
            "the checks miss {needle:?}; they found:\n{}",
            problems.join("\n")
        );
    }
    let provider = provider_problems("apiVersion: 1\nproviders:\n  - name: x\n    type: file\n    folder: other\n");
    for needle in ["folder", "allowUiUpdates", "path"] {
        ensure!(contains_problem(&provider, needle), "the provider check misses {needle}: {provider:?}");
    }
    Ok(())
}

#[test]
fn every_dashboard_file_is_valid_grafana_json() -> anyhow::Result<()> {
    checks_catch_broken_dashboards().context("the checks themselves")?;

    let boards = load_dashboards()?;
    let files: Vec<&str> = boards.iter().map(|b| b.file.as_str()).collect();
    for expected in EXPECTED_FILES {
        ensure!(files.contains(&expected), "no {expected} in {}: {files:?}", dashboards_dir().display());
    }
    let mut problems = Vec::new();
    let (mut uids, mut titles) = (BTreeMap::new(), BTreeMap::new());
    for board in &boards {
        problems.extend(dashboard_problems(&board.json).into_iter().map(|p| format!("{}: {p}", board.file)));
        for (key, seen) in [("uid", &mut uids), ("title", &mut titles)] {
            let value = board.json[key].as_str().unwrap_or_default().to_string();
            if let Some(other) = seen.insert(value.clone(), board.file.clone()) {
                problems.push(format!("{}: {key} {value:?} is also the {key} of {other}", board.file));
            }
        }
    }

    let provisioning = repo_root().join("deploy/grafana/provisioning");
    let provider = std::fs::read_to_string(provisioning.join("dashboards/mixmon.yaml"))
        .context("reading deploy/grafana/provisioning/dashboards/mixmon.yaml")?;
    problems.extend(provider_problems(&provider).into_iter().map(|p| format!("dashboards/mixmon.yaml: {p}")));
    // The uid every panel names is the provisioned datasource's.
    let datasource = std::fs::read_to_string(provisioning.join("datasources/mixmon.yaml"))
        .context("reading deploy/grafana/provisioning/datasources/mixmon.yaml")?;
    let pairs = yaml_pairs(&datasource);
    for (key, wanted) in [("uid", MIXMON_UID), ("type", PLUGIN)] {
        if !pairs.iter().any(|(k, v)| k == key && v == wanted) {
            problems.push(format!("datasources/mixmon.yaml: no {key}: {wanted}"));
        }
    }
    ensure!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    let panels: usize = boards.iter().map(|b| all_panels(&b.json).len()).sum();
    println!("{} dashboards, {panels} panels: valid", boards.len());
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The live test: what Grafana would send

/// The width of a panel in pixels, which Grafana sends as `maxDataPoints`.
const MAX_DATA_POINTS: i64 = 1_200;
/// Annotation queries send the window's width.
const ANNOTATION_MAX_DATA_POINTS: i64 = 1_920;
const DATA_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

/// A duration as Grafana writes it ("30s", "5m", "6h", "7d").
fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    Some(n * unit_ms)
}

fn interval_text(ms: i64) -> String {
    for (unit, unit_ms) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= unit_ms && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

/// Grafana's interval for a range and a panel width: the range over the points, rounded up to
/// a round step, at least the panel's own minimum interval.
fn grafana_interval_ms(range_ms: i64, max_points: i64, min_ms: i64) -> i64 {
    const STEPS: [i64; 17] = [
        1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
        3_600_000, 10_800_000, 21_600_000, 43_200_000,
    ];
    let raw = range_ms / max_points.max(1);
    let rounded = STEPS.iter().copied().find(|s| *s >= raw).unwrap_or(86_400_000);
    rounded.max(min_ms)
}

/// Epoch milliseconds as RFC 3339 with milliseconds, as Grafana sends `range.from`/`to`.
fn iso8601(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

/// A dashboard's default time range ("now-6h" .. "now") at `now_ms`.
struct TimeRange {
    from_ms: i64,
    to_ms: i64,
    raw_from: String,
}

impl TimeRange {
    fn of(board: &Value, now_ms: i64) -> TimeRange {
        let raw_from = board["time"]["from"].as_str().unwrap_or("now-6h").to_string();
        let span = raw_from.strip_prefix("now-").and_then(parse_duration_ms).unwrap_or(6 * 3_600_000);
        TimeRange { from_ms: now_ms - span, to_ms: now_ms, raw_from }
    }

    fn json(&self) -> Value {
        json!({"from": iso8601(self.from_ms), "to": iso8601(self.to_ms), "raw": {"from": self.raw_from, "to": "now"}})
    }
}

/// What a dashboard's variables are set to in a pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// What the dashboard opens with: `All` (every value) where allowed, else the first.
    Current,
    /// Each variable at the first value `/variable` returned.
    First,
}

/// A target, variable or annotation that was not answered as it must be.
struct Problem {
    place: String,
    what: String,
    /// An error from the server (or a broken request): waiting does not help.
    error: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

#[derive(Default)]
struct Sweep {
    problems: Vec<Problem>,
    targets: usize,
    variable_queries: usize,
    annotation_queries: usize,
}

impl Sweep {
    fn error(&mut self, place: String, what: String) {
        self.problems.push(Problem { place, what, error: true });
    }

    fn empty(&mut self, place: String, what: String) {
        self.problems.push(Problem { place, what, error: false });
    }
}

async fn post(url: &str, body: &Value) -> Result<Value, String> {
    match http::post_json(url, body, None).await {
        Ok((200, value)) => Ok(value),
        Ok((status, value)) => {
            // The message alone: an unknown metric's lists every known one.
            let message = value["message"].as_str().map_or_else(|| value.to_string(), str::to_string);
            Err(format!("answered {status}: {}", message.chars().take(300).collect::<String>()))
        }
        Err(e) => Err(format!("request failed: {e}")),
    }
}

/// Values of one `/variable` answer: the `__value` of each `{__text, __value}`.
fn variable_values(answer: &Value) -> Result<Vec<String>, String> {
    let items = answer.as_array().ok_or_else(|| format!("not a list: {answer}"))?;
    items
        .iter()
        .map(|item| match (&item["__text"], &item["__value"]) {
            (Value::String(_), Value::String(v)) => Ok(v.clone()),
            _ => Err(format!("{item} is not {{\"__text\": string, \"__value\": string}}")),
        })
        .collect()
}

/// Resolves a dashboard's variables in order (chained ones see those before them), as Grafana
/// does on load: `/variable` for queries, `/tag-keys` and `/tag-values` for ad hoc filters.
async fn resolve_variables(
    query_url: &str,
    board: &Dashboard,
    range: &TimeRange,
    pick: Pick,
    sweep: &mut Sweep,
) -> Vars {
    let mut vars = Vars::new();
    for var in list(&board.json["templating"], "list") {
        let name = var["name"].as_str().unwrap_or("?").to_string();
        let place = format!("{}, variable ${name}", board.name());
        let multi = var["multi"].as_bool() == Some(true);
        let values: Vec<String> = match var["type"].as_str().unwrap_or("") {
            "query" => {
                let query = &var["query"];
                let (text, format) = match query {
                    Value::String(text) => (text.clone(), "string"),
                    _ => (
                        query["query"].as_str().unwrap_or("").to_string(),
                        query["format"].as_str().unwrap_or("string"),
                    ),
                };
                // The plugin's VariableSupport: JSON text interpolated as JSON and parsed, or
                // the text (interpolated as a regex) as the payload's `target`.
                let payload = if format == "json" {
                    match serde_json::from_str::<Value>(&interpolate(&text, &vars, Format::Json)) {
                        Ok(payload) => payload,
                        Err(e) => {
                            sweep.error(place, format!("query {text} is not JSON once interpolated: {e}"));
                            continue;
                        }
                    }
                } else {
                    json!({"target": interpolate(&text, &vars, Format::Regex)})
                };
                sweep.variable_queries += 1;
                let body = json!({"payload": payload, "range": range.json()});
                match post(&format!("{query_url}/variable"), &body).await.and_then(|a| variable_values(&a)) {
                    Ok(values) if values.is_empty() => {
                        sweep.empty(place, format!("POST /variable {body} answered no values"));
                        continue;
                    }
                    Ok(values) => values,
                    Err(e) => {
                        sweep.error(place, format!("POST /variable {body} {e}"));
                        continue;
                    }
                }
            }
            "adhoc" => {
                let filters = json!({"filters": [], "timeRange": range.json()});
                sweep.variable_queries += 1;
                let keys = match post(&format!("{query_url}/tag-keys"), &filters).await {
                    Ok(Value::Array(keys)) if !keys.is_empty() => keys,
                    Ok(other) => {
                        sweep.empty(place, format!("POST /tag-keys answered no keys: {other}"));
                        continue;
                    }
                    Err(e) => {
                        sweep.error(place, format!("POST /tag-keys {e}"));
                        continue;
                    }
                };
                for key in keys {
                    let Some(key) = key["text"].as_str() else {
                        sweep.error(place.clone(), format!("tag key {key} has no text"));
                        continue;
                    };
                    let body = json!({"key": key, "filters": [], "timeRange": range.json()});
                    sweep.variable_queries += 1;
                    match post(&format!("{query_url}/tag-values"), &body).await {
                        Ok(Value::Array(values))
                            if !values.is_empty() && values.iter().all(|v| v["text"].is_string()) => {}
                        Ok(other) => sweep.empty(place.clone(), format!("POST /tag-values {body} answered {other}")),
                        Err(e) => sweep.error(place.clone(), format!("POST /tag-values {body} {e}")),
                    }
                }
                continue;
            }
            "custom" => var["query"].as_str().unwrap_or("").split(',').map(|v| v.trim().to_string()).collect(),
            "constant" | "textbox" => vec![var["query"].as_str().unwrap_or("").to_string()],
            other => {
                sweep.error(place, format!("variable type '{other}' is not one this test knows"));
                continue;
            }
        };
        let all = var["includeAll"].as_bool() == Some(true);
        let chosen = match pick {
            Pick::Current if all => values,
            _ => values.into_iter().take(1).collect(),
        };
        let value =
            if multi { VarValue::Many(chosen) } else { VarValue::One(chosen.into_iter().next().unwrap_or_default()) };
        vars.insert(name, value);
    }
    vars
}

fn scoped_vars(vars: &Vars, interval_ms: i64) -> Value {
    let mut scoped = Map::new();
    for (name, value) in vars {
        let value = match value {
            VarValue::One(v) => json!(v),
            VarValue::Many(vs) => json!(vs),
        };
        scoped.insert(name.clone(), json!({"selected": false, "text": value, "value": value}));
    }
    scoped
        .insert("__interval".into(), json!({"text": interval_text(interval_ms), "value": interval_text(interval_ms)}));
    scoped.insert("__interval_ms".into(), json!({"text": interval_ms.to_string(), "value": interval_ms}));
    Value::Object(scoped)
}

/// A target as the plugin's `processTarget` sends it; `Err` when Grafana could not send it
/// as meant (its payload would silently become `{}`).
fn process_target(target: &Value, vars: &Vars) -> Result<Value, String> {
    let mut sent = target.clone();
    let payload = process_payload(&target["payload"], vars)?;
    let metric = interpolate(target["target"].as_str().unwrap_or(""), vars, Format::Regex);
    if !variable_refs(&metric).is_empty() || !variable_refs(&payload.to_string()).is_empty() {
        return Err(format!("variables left unreplaced in {metric} {payload}"));
    }
    if let Some(map) = sent.as_object_mut() {
        map.insert("payload".into(), payload);
        map.insert("target".into(), json!(metric));
    }
    Ok(sent)
}

/// How much data the answer holds for `ref_id`: non-null points and table rows whose last cell
/// (the figure) is not null.
fn data_for(answer: &Value, ref_id: &str) -> usize {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter(|element| element["refId"] == ref_id)
        .map(|element| {
            let points = list(element, "datapoints").iter().filter(|p| !p[0].is_null()).count();
            let rows = list(element, "rows")
                .iter()
                .filter(|r| r.as_array().and_then(|c| c.last()).is_some_and(|c| !c.is_null()))
                .count();
            points + rows
        })
        .sum()
}

async fn query_panel(
    query_url: &str,
    board: &Dashboard,
    panel: &Value,
    vars: &Vars,
    range: &TimeRange,
    pick: Pick,
    sweep: &mut Sweep,
) {
    let uid = board.json["uid"].as_str().unwrap_or("");
    let title = panel["title"].as_str().unwrap_or("");
    let place = |target: &Value| {
        format!(
            "{}, panel '{}', target {} {} {}",
            board.name(),
            interpolate(title, vars, Format::Regex),
            target["refId"].as_str().unwrap_or("?"),
            target["target"].as_str().unwrap_or("?"),
            target["payload"]
        )
    };
    let min_interval = panel["interval"].as_str().and_then(parse_duration_ms).unwrap_or(0);
    let max_points = panel["maxDataPoints"].as_i64().unwrap_or(MAX_DATA_POINTS);
    let interval_ms = grafana_interval_ms(range.to_ms - range.from_ms, max_points, min_interval);
    let mut sent = Vec::new();
    for target in list(panel, "targets").iter().filter(|t| t["hide"].as_bool() != Some(true)) {
        match process_target(target, vars) {
            Ok(processed) => sent.push((target, processed)),
            Err(e) => sweep.error(place(target), e),
        }
    }
    if sent.is_empty() {
        return;
    }
    sweep.targets += sent.len();
    let body = json!({
        "app": "dashboard",
        "requestId": format!("SQR{}", panel["id"]),
        "timezone": "browser",
        "range": range.json(),
        "interval": interval_text(interval_ms),
        "intervalMs": interval_ms,
        "maxDataPoints": max_points,
        "targets": sent.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        "scopedVars": scoped_vars(vars, interval_ms),
        "startTime": unix_ms(),
        "rangeRaw": range.json()["raw"],
        "dashboardUID": uid,
        "panelId": panel["id"],
        "panelName": title,
        "panelPluginId": panel["type"],
        "filters": [],
    });
    match post(&format!("{query_url}/query"), &body).await {
        Err(e) => {
            for (target, _) in &sent {
                sweep.error(place(target), format!("POST /query {e}"));
            }
        }
        Ok(answer) if !answer.is_array() => {
            sweep.error(place(sent[0].0), format!("POST /query answered a non-list: {answer}"));
        }
        Ok(answer) => {
            // The second pass (first values) only has to be answered; some single values
            // legitimately have nothing (an endpoint that speaks no TLS has no TLS phase).
            if pick == Pick::Current {
                for (target, processed) in &sent {
                    if data_for(&answer, processed["refId"].as_str().unwrap_or("")) == 0 {
                        sweep.empty(
                            place(target),
                            format!("answered no data points or rows (sent {})", processed["payload"]),
                        );
                    }
                }
            }
        }
    }
}

async fn query_annotations(query_url: &str, board: &Dashboard, vars: &Vars, range: &TimeRange, sweep: &mut Sweep) {
    for annotation in list(&board.json["annotations"], "list").iter().filter(|a| is_mixmon(a.get("datasource"))) {
        let name = annotation["name"].as_str().unwrap_or("?");
        let place = format!("{}, annotation '{name}'", board.name());
        let mut target = annotation["target"].clone();
        if let Some(map) = target.as_object_mut() {
            map.insert("refId".into(), json!("Anno"));
        }
        let target = match process_target(&target, vars) {
            Ok(target) => target,
            Err(e) => {
                sweep.error(place, e);
                continue;
            }
        };
        let interval_ms = grafana_interval_ms(range.to_ms - range.from_ms, ANNOTATION_MAX_DATA_POINTS, 0);
        let mut scoped = scoped_vars(vars, interval_ms);
        scoped["__annotation"] = json!({"text": name, "value": annotation});
        let body = json!({
            "app": "dashboard",
            "range": range.json(),
            "interval": interval_text(interval_ms),
            "intervalMs": interval_ms,
            "maxDataPoints": ANNOTATION_MAX_DATA_POINTS,
            "targets": [target],
            "scopedVars": scoped,
            "timezone": "browser",
            "dashboardUID": board.json["uid"],
        });
        sweep.annotation_queries += 1;
        match post(&format!("{query_url}/query"), &body).await {
            Err(e) => sweep.error(place, format!("POST /query {e}")),
            Ok(answer) => {
                let table = answer.as_array().into_iter().flatten().find(|e| e["refId"] == "Anno");
                let columns: Vec<&str> = table
                    .map(|t| list(t, "columns").iter().filter_map(|c| c["text"].as_str()).collect())
                    .unwrap_or_default();
                if !columns.contains(&"time") || !columns.contains(&"title") {
                    sweep.error(place, format!("no annotation table with time and title columns: {answer}"));
                } else if data_for(&answer, "Anno") == 0 {
                    sweep.empty(place, format!("answered no annotation rows: {answer}"));
                }
            }
        }
    }
}

/// Every dashboard's variables, annotations and panels, once.
async fn sweep(query_url: &str, boards: &[Dashboard], pick: Pick) -> Sweep {
    let mut sweep = Sweep::default();
    let now = unix_ms();
    for board in boards {
        let range = TimeRange::of(&board.json, now);
        let vars = resolve_variables(query_url, board, &range, pick, &mut sweep).await;
        if pick == Pick::Current {
            query_annotations(query_url, board, &vars, &range, &mut sweep).await;
        }
        for panel in all_panels(&board.json).into_iter().filter(|p| p["type"] != "row") {
            query_panel(query_url, board, panel, &vars, &range, pick, &mut sweep).await;
        }
    }
    sweep
}

/// The running system; its processes stop when this is dropped.
struct System {
    query_url: String,
    processes: Vec<(&'static str, ChildProcess)>,
    _redis: RedisServer,
    _dir: tempfile::TempDir,
}

impl System {
    fn logs(&self) -> String {
        self.processes.iter().map(|(name, p)| format!("--- {name} log:\n{}\n", p.log_tail(15))).collect()
    }
}

async fn start_system() -> anyhow::Result<System> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let redis = RedisServer::start()?;
    let sim =
        start_simulator(dir.path(), "us-west=2,eu-west=2", &["--nodes-per-region", "1", "--rps-per-pod", "20"]).await?;
    let admin = format!("http://{}", sim.address("admin")?);
    let port = |front: &str| -> anyhow::Result<String> {
        let addr =
            sim.ready["endpoints"][front].as_str().with_context(|| format!("no {front} front: {}", sim.ready))?;
        Ok(addr.rsplit(':').next().unwrap_or_default().to_string())
    };
    // Through `localhost` (a DNS phase, as real host names have), IPv4 as the fronts listen.
    let mut checks = String::new();
    for (id, front, scheme, labels) in [
        ("us-west", "us-west", "http", "{ region = \"us-west\" }"),
        ("eu-west", "eu-west", "http", "{ region = \"eu-west\" }"),
        ("edge", "edge", "http", "{}"),
        ("api", "api", "http", "{}"),
        // TLS to a plain-HTTP front: every probe fails in its TLS phase.
        ("api-tls", "api", "https", "{}"),
    ] {
        checks.push_str(&format!(
            "[[checks]]\nid = \"{id}\"\nurl = \"{scheme}://localhost:{}/health\"\nip = \"ip4\"\nlabels = {labels}\n",
            port(front)?
        ));
    }
    let aggregator_config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nregions = [\"us-west\", \"eu-west\"]\n[store]\nkind = \"redis\"\nurl = \"{}\"\n\
             [defaults]\ninterval_s = 1\ntimeout_ms = 1000\n[alerting]\nnotify = false\n{checks}",
            redis.url()
        ),
    )?;
    let (aggregator, grpc) = start_aggregator(dir.path(), &aggregator_config).await?;
    let (query, query_url) = start_query(dir.path(), &redis.url()).await?;
    let mut processes = vec![("simulator", sim.process), ("aggregator", aggregator.process), ("query", query.process)];
    for region in ["us-west", "eu-west"] {
        // The prober of the region's one node: its pods scraped and sampled, the node sampled
        // through the (simulated) kubelet.
        let config = ProberConfig::new(region, &[format!("http://{grpc}")])
            .node(&format!("node-{region}-0"))
            .buffer_dir(Path::new(&path("wal")))
            .section(&format!(
                r#"
                [scrape]
                interval_ms = 1000
                timeout_ms = 800
                [scrape.kubernetes]
                api_url = "{admin}/k8s"
                label_selector = "app=ai-mixer"
                discovery_interval_ms = 2000
                [pods]
                interval_ms = 1000
                [node]
                interval_ms = 1000
                source = "kubelet"
                "#
            ))
            .write(dir.path(), &format!("prober-{region}.toml"))?;
        let prober = start("mixmon-prober", &["--config".into(), config.display().to_string()])?;
        processes.push(if region == "us-west" { ("prober us-west", prober) } else { ("prober eu-west", prober) });
    }
    Ok(System { query_url, processes, _redis: redis, _dir: dir })
}

/// Data flows: every kind of variable lists something and the mixer's, the nodes' and the
/// probes' figures have values.
async fn data_flows(query_url: &str) -> Result<(), String> {
    for what in ["regions", "endpoints", "nodes", "pods", "genres", "mounts"] {
        let answer = post(&format!("{query_url}/variable"), &json!({"payload": {"target": what}})).await?;
        if variable_values(&answer)?.is_empty() {
            return Err(format!("/variable {what} lists nothing yet"));
        }
    }
    let now = unix_ms();
    for metric in
        ["mixer_request_rate", "mixer_genre_share", "node_net_rx_bytes_per_s", "pod_ready_ratio", "latency_p95"]
    {
        let body = json!({
            "range": {"from": now - 600_000, "to": now},
            "intervalMs": 60_000,
            "targets": [{"refId": "A", "target": metric, "payload": {}}],
        });
        let answer = post(&format!("{query_url}/query"), &body).await?;
        if data_for(&answer, "A") == 0 {
            return Err(format!("{metric} has no values yet"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_target_is_answered() -> anyhow::Result<()> {
    let started = Instant::now();
    let boards = load_dashboards()?;
    ensure!(!boards.is_empty(), "no dashboards in {}", dashboards_dir().display());
    let system = start_system().await?;
    let query_url = system.query_url.clone();

    let last = Mutex::new(String::new());
    let flowing = eventually(DATA_DEADLINE, POLL, || {
        let (query_url, last) = (&query_url, &last);
        async move {
            let outcome = data_flows(query_url).await;
            let ok = outcome.is_ok();
            if let (Err(e), Ok(mut last)) = (outcome, last.lock()) {
                *last = e;
            }
            ok
        }
    })
    .await;
    if flowing.is_err() {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        bail!("data never flowed within {DATA_DEADLINE:?}; last: {last}\n{}", system.logs());
    }
    println!("data flows after {:.1} s", started.elapsed().as_secs_f64());

    // Every target answered with data; a target still empty gets until the deadline (its
    // figure may need a second scrape), an error fails at once.
    let result: Mutex<Option<Sweep>> = Mutex::new(None);
    let _ = eventually(DATA_DEADLINE, POLL, || {
        let (query_url, boards, result) = (&query_url, &boards, &result);
        async move {
            let outcome = sweep(query_url, boards, Pick::Current).await;
            let done = outcome.problems.is_empty() || outcome.problems.iter().any(|p| p.error);
            if let Ok(mut slot) = result.lock() {
                *slot = Some(outcome);
            }
            done
        }
    })
    .await;
    let current = result.lock().ok().and_then(|mut s| s.take()).context("no sweep ran")?;
    if !current.problems.is_empty() {
        let list: Vec<String> = current.problems.iter().map(ToString::to_string).collect();
        bail!("{} dashboard queries were not answered:\n{}\n{}", list.len(), list.join("\n"), system.logs());
    }
    println!(
        "{} dashboards: {} panel targets, {} variable queries, {} annotation queries answered with data ({:.1} s)",
        boards.len(),
        current.targets,
        current.variable_queries,
        current.annotation_queries,
        started.elapsed().as_secs_f64()
    );

    let first = sweep(&query_url, &boards, Pick::First).await;
    let errors: Vec<String> = first.problems.iter().filter(|p| p.error).map(ToString::to_string).collect();
    ensure!(
        errors.is_empty(),
        "with each variable at its first value, {} queries failed:\n{}\n{}",
        errors.len(),
        errors.join("\n"),
        system.logs()
    );
    for (name, process) in &system.processes {
        let log = std::fs::read_to_string(process.log_path()).unwrap_or_default();
        ensure!(!log.contains("panicked"), "the {name} panicked:\n{}", process.log_tail(40));
    }
    println!(
        "with first values: {} panel targets answered; total {:.1} s",
        first.targets,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
