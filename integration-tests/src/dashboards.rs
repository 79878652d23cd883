//! mixmon's Grafana dashboards (`deploy/grafana/dashboards/*.json`) as Grafana and the
//! `simpod-json-datasource` plugin send them: the dashboards loaded, their `$variables`
//! interpolated the plugin's way, the variables resolved against a running query service
//! (`POST /variable`, `/tag-keys`, `/tag-values`), each panel's exact `POST /query` body built
//! with Grafana's request fields and interval math, and the targets answered with nothing
//! counted. The dashboards test (`tests/dashboards.rs`) and `scripts/bench.sh dashboards`
//! both send these requests, so what is benchmarked is what is tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mixmon_testkit::http;
use serde_json::{json, Map, Value};

use crate::unix_ms;

pub const MIXMON_UID: &str = "mixmon";
pub const PLUGIN: &str = "simpod-json-datasource";
pub const GRAFANA_BUILTIN_UID: &str = "-- Grafana --";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn dashboards_dir() -> PathBuf {
    repo_root().join("deploy/grafana/dashboards")
}

pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    pub fn title(&self) -> String {
        self.json["title"].as_str().unwrap_or("?").to_string()
    }

    /// "<title> (<file>)", for messages.
    pub fn name(&self) -> String {
        format!("{} ({})", self.title(), self.file)
    }
}

/// Every `*.json` file of the dashboards folder, parsed, sorted by file name.
pub fn load_dashboards() -> anyhow::Result<Vec<Dashboard>> {
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

pub fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Every panel, the panels nested in (collapsed) rows included.
pub fn all_panels(board: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in list(board, "panels") {
        panels.push(panel);
        panels.extend(list(panel, "panels"));
    }
    panels
}

pub fn panel_name(panel: &Value) -> String {
    format!("'{}' (id {})", panel["title"].as_str().unwrap_or(""), panel["id"])
}

// ------------------------------------------------------------------------------------------
// Template variables: Grafana's `$name`, `${name}`, `${name:format}`, `${name.path}`,
// `[[name]]` and `[[name:format]]`

/// One variable reference in a text: its byte range and the variable's name.
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub name: String,
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
pub fn tokens(text: &str) -> Vec<Token> {
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
pub fn variable_refs(text: &str) -> Vec<String> {
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
pub enum VarValue {
    One(String),
    Many(Vec<String>),
}

pub type Vars = BTreeMap<String, VarValue>;

#[derive(Clone, Copy)]
pub enum Format {
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
pub fn interpolate(text: &str, vars: &Vars, format: Format) -> String {
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
pub fn process_payload(payload: &Value, vars: &Vars) -> Result<Value, String> {
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

// ------------------------------------------------------------------------------------------
// Datasources

pub fn is_mixmon(ds: Option<&Value>) -> bool {
    ds.is_some_and(|ds| {
        ds["uid"] == MIXMON_UID && (ds.get("type").is_none() || ds["type"] == PLUGIN) && ds.as_object().is_some()
    })
}

pub fn is_grafana_builtin(ds: Option<&Value>) -> bool {
    ds.is_some_and(|ds| ds["uid"] == GRAFANA_BUILTIN_UID)
}

// ------------------------------------------------------------------------------------------
// The live test: what Grafana would send

/// The width of a panel in pixels, which Grafana sends as `maxDataPoints`.
pub const MAX_DATA_POINTS: i64 = 1_200;
/// Annotation queries send the window's width.
pub const ANNOTATION_MAX_DATA_POINTS: i64 = 1_920;

/// A duration as Grafana writes it ("30s", "5m", "6h", "7d").
pub fn parse_duration_ms(text: &str) -> Option<i64> {
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

pub fn interval_text(ms: i64) -> String {
    for (unit, unit_ms) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= unit_ms && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

/// Grafana's interval for a range and a panel width: the range over the points, rounded up to
/// a round step, at least the panel's own minimum interval.
pub fn grafana_interval_ms(range_ms: i64, max_points: i64, min_ms: i64) -> i64 {
    const STEPS: [i64; 17] = [
        1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
        3_600_000, 10_800_000, 21_600_000, 43_200_000,
    ];
    let raw = range_ms / max_points.max(1);
    let rounded = STEPS.iter().copied().find(|s| *s >= raw).unwrap_or(86_400_000);
    rounded.max(min_ms)
}

/// Epoch milliseconds as RFC 3339 with milliseconds, as Grafana sends `range.from`/`to`.
pub fn iso8601(ms: i64) -> String {
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

/// A time range ending now ("now-6h" .. "now") at `now_ms`.
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
    pub raw_from: String,
}

impl TimeRange {
    /// The dashboard's default range.
    pub fn of(board: &Value, now_ms: i64) -> TimeRange {
        TimeRange::relative(board["time"]["from"].as_str().unwrap_or("now-6h"), now_ms)
    }

    /// `raw_from` ("now-24h") .. "now"; 6 h when `raw_from` is not of that form.
    pub fn relative(raw_from: &str, now_ms: i64) -> TimeRange {
        let span = raw_from.strip_prefix("now-").and_then(parse_duration_ms).unwrap_or(6 * 3_600_000);
        TimeRange { from_ms: now_ms - span, to_ms: now_ms, raw_from: raw_from.to_string() }
    }

    pub fn json(&self) -> Value {
        json!({"from": iso8601(self.from_ms), "to": iso8601(self.to_ms), "raw": {"from": self.raw_from, "to": "now"}})
    }
}

/// What a dashboard's variables are set to in a pass.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// What the dashboard opens with: `All` (every value) where allowed, else the first.
    Current,
    /// Each variable at the first value `/variable` returned.
    First,
}

/// A target, variable or annotation that was not answered as it must be.
pub struct Problem {
    pub place: String,
    pub what: String,
    /// An error from the server (or a broken request): waiting does not help.
    pub error: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

#[derive(Default)]
pub struct Sweep {
    pub problems: Vec<Problem>,
    pub targets: usize,
    pub variable_queries: usize,
    pub annotation_queries: usize,
}

impl Sweep {
    pub fn error(&mut self, place: String, what: String) {
        self.problems.push(Problem { place, what, error: true });
    }

    pub fn empty(&mut self, place: String, what: String) {
        self.problems.push(Problem { place, what, error: false });
    }
}

pub async fn post(url: &str, body: &Value) -> Result<Value, String> {
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
pub fn variable_values(answer: &Value) -> Result<Vec<String>, String> {
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
pub async fn resolve_variables(
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

pub fn scoped_vars(vars: &Vars, interval_ms: i64) -> Value {
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
pub fn process_target(target: &Value, vars: &Vars) -> Result<Value, String> {
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
pub fn data_for(answer: &Value, ref_id: &str) -> usize {
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

// ------------------------------------------------------------------------------------------
// The requests of one refresh

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Panel,
    Annotation,
}

/// One target of a request: where it is written (for messages) and its `refId`.
pub struct SentTarget {
    pub place: String,
    pub ref_id: String,
    /// The payload as sent (variables replaced).
    pub payload: Value,
}

/// One `POST /query` a dashboard sends when it refreshes: a panel's targets, or an annotation.
pub struct Request {
    pub kind: Kind,
    /// "<title> (<file>), panel '<title>' (id <id>)" or "<title> (<file>), annotation '<name>'".
    pub place: String,
    pub body: Value,
    pub targets: Vec<SentTarget>,
}

/// A panel's `POST /query` as Grafana sends it over `range`: its visible targets processed the
/// plugin's way, `maxDataPoints` and the interval Grafana computes for the panel. `None` when
/// no target could be sent (each one's reason is in `sweep`); counts the targets in `sweep`.
pub fn panel_request(
    board: &Dashboard,
    panel: &Value,
    vars: &Vars,
    range: &TimeRange,
    sweep: &mut Sweep,
) -> Option<Request> {
    let uid = board.json["uid"].as_str().unwrap_or("");
    let title = panel["title"].as_str().unwrap_or("");
    let shown_title = interpolate(title, vars, Format::Regex);
    let place = |target: &Value| {
        format!(
            "{}, panel '{shown_title}', target {} {} {}",
            board.name(),
            target["refId"].as_str().unwrap_or("?"),
            target["target"].as_str().unwrap_or("?"),
            target["payload"]
        )
    };
    let min_interval = panel["interval"].as_str().and_then(parse_duration_ms).unwrap_or(0);
    let max_points = panel["maxDataPoints"].as_i64().unwrap_or(MAX_DATA_POINTS);
    let interval_ms = grafana_interval_ms(range.to_ms - range.from_ms, max_points, min_interval);
    let mut targets = Vec::new();
    let mut processed = Vec::new();
    for target in list(panel, "targets").iter().filter(|t| t["hide"].as_bool() != Some(true)) {
        match process_target(target, vars) {
            Ok(sent) => {
                targets.push(SentTarget {
                    place: place(target),
                    ref_id: sent["refId"].as_str().unwrap_or("").to_string(),
                    payload: sent["payload"].clone(),
                });
                processed.push(sent);
            }
            Err(e) => sweep.error(place(target), e),
        }
    }
    if targets.is_empty() {
        return None;
    }
    sweep.targets += targets.len();
    let body = json!({
        "app": "dashboard",
        "requestId": format!("SQR{}", panel["id"]),
        "timezone": "browser",
        "range": range.json(),
        "interval": interval_text(interval_ms),
        "intervalMs": interval_ms,
        "maxDataPoints": max_points,
        "targets": processed,
        "scopedVars": scoped_vars(vars, interval_ms),
        "startTime": unix_ms(),
        "rangeRaw": range.json()["raw"],
        "dashboardUID": uid,
        "panelId": panel["id"],
        "panelName": title,
        "panelPluginId": panel["type"],
        "filters": [],
    });
    let place = format!("{}, panel '{shown_title}' (id {})", board.name(), panel["id"]);
    Some(Request { kind: Kind::Panel, place, body, targets })
}

/// The dashboard's annotation queries to mixmon (the alert history) over `range`, as Grafana
/// sends them; counted in `sweep`.
pub fn annotation_requests(board: &Dashboard, vars: &Vars, range: &TimeRange, sweep: &mut Sweep) -> Vec<Request> {
    let mut requests = Vec::new();
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
        let sent = SentTarget { place: place.clone(), ref_id: "Anno".into(), payload: target["payload"].clone() };
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
        requests.push(Request { kind: Kind::Annotation, place, body, targets: vec![sent] });
    }
    requests
}

/// Judges the answer to `request`: an error, a non-list, or (with the variables at
/// [`Pick::Current`]) a target answered no data points or rows goes into `sweep`. The second
/// pass (first values) only has to be answered: some single values legitimately have nothing
/// (an endpoint that speaks no TLS has no TLS phase).
pub fn judge(request: &Request, answer: Result<Value, String>, pick: Pick, sweep: &mut Sweep) {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            for target in &request.targets {
                sweep.error(target.place.clone(), format!("POST /query {e}"));
            }
            return;
        }
    };
    match request.kind {
        Kind::Panel if !answer.is_array() => {
            let place = request.targets.first().map_or_else(|| request.place.clone(), |t| t.place.clone());
            sweep.error(place, format!("POST /query answered a non-list: {answer}"));
        }
        Kind::Panel => {
            if pick == Pick::Current {
                for target in &request.targets {
                    if data_for(&answer, &target.ref_id) == 0 {
                        sweep.empty(
                            target.place.clone(),
                            format!("answered no data points or rows (sent {})", target.payload),
                        );
                    }
                }
            }
        }
        Kind::Annotation => {
            let table = answer.as_array().into_iter().flatten().find(|e| e["refId"] == "Anno");
            let columns: Vec<&str> = table
                .map(|t| list(t, "columns").iter().filter_map(|c| c["text"].as_str()).collect())
                .unwrap_or_default();
            if !columns.contains(&"time") || !columns.contains(&"title") {
                sweep
                    .error(request.place.clone(), format!("no annotation table with time and title columns: {answer}"));
            } else if data_for(&answer, "Anno") == 0 {
                sweep.empty(request.place.clone(), format!("answered no annotation rows: {answer}"));
            }
        }
    }
}

/// Resolves `board`'s variables against the query service at `query_url` (see
/// [`resolve_variables`]) and builds what one refresh of it sends over `range`: the annotation
/// queries (with [`Pick::Current`] only; they use no variable) and every panel's request (rows
/// left out), in the dashboard's order.
pub async fn prepare(
    query_url: &str,
    board: &Dashboard,
    range: &TimeRange,
    pick: Pick,
    sweep: &mut Sweep,
) -> Vec<Request> {
    let vars = resolve_variables(query_url, board, range, pick, sweep).await;
    let mut requests = Vec::new();
    if pick == Pick::Current {
        requests.extend(annotation_requests(board, &vars, range, sweep));
    }
    for panel in all_panels(&board.json).into_iter().filter(|p| p["type"] != "row") {
        requests.extend(panel_request(board, panel, &vars, range, sweep));
    }
    requests
}

/// Sends `request` and judges its answer.
pub async fn send(query_url: &str, request: &Request, pick: Pick, sweep: &mut Sweep) {
    let answer = post(&format!("{query_url}/query"), &request.body).await;
    judge(request, answer, pick, sweep);
}

/// Every dashboard's variables, annotations and panels, once, over each dashboard's default
/// range, or over `range_from` ("now-24h") when given.
pub async fn sweep(query_url: &str, boards: &[Dashboard], pick: Pick, range_from: Option<&str>) -> Sweep {
    let mut sweep = Sweep::default();
    let now = unix_ms();
    for board in boards {
        let range = match range_from {
            Some(from) => TimeRange::relative(from, now),
            None => TimeRange::of(&board.json, now),
        };
        for request in prepare(query_url, board, &range, pick, &mut sweep).await {
            send(query_url, &request, pick, &mut sweep).await;
        }
    }
    sweep
}
