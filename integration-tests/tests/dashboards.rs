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
//!   must be answered without an error. The requests are built by
//!   `mixmon_integration_tests::dashboards`, which `scripts/bench.sh dashboards` sends too.
//!
//! The fleet is probed through `localhost` (so probes have a DNS phase), and one check,
//! `api-tls`, speaks TLS to the plain-HTTP `api` front: every probe of it fails in its TLS
//! handshake, so the failure-kind, error-budget, burn-rate and time-to-exhaustion panels
//! have something to show, as a fleet with a broken endpoint would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::dashboards::{
    all_panels, dashboards_dir, data_for, interpolate, is_grafana_builtin, is_mixmon, list, load_dashboards,
    panel_name, post, process_payload, repo_root, sweep, variable_refs, variable_values, Format, Pick, Sweep, VarValue,
    Vars, MIXMON_UID, PLUGIN,
};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_simulator, unix_ms, write};
use mixmon_testkit::{eventually, ChildProcess, ProberConfig, RedisServer};
use serde_json::{json, Value};

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
// The live test: what Grafana would send (built by `mixmon_integration_tests::dashboards`,
// which `scripts/bench.sh dashboards` sends too)

const DATA_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

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
            let outcome = sweep(query_url, boards, Pick::Current, None).await;
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

    let first = sweep(&query_url, &boards, Pick::First, None).await;
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
