//! The alerting fleet: redis-server, the simulated fleet (four regions, a node each), one or
//! more aggregators evaluating the alert rules on that Redis, the query service, and four
//! probers (one per region, each probing from its own loopback address and observing its
//! node's pods through the simulator's Kubernetes API). The alerting test and
//! `scripts/bench.sh detect` both run it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_testkit::{http, ChildProcess, ProberConfig, RedisServer};
use serde_json::Value;

use crate::{start, start_query, start_simulator, start_with_ready_file, write, Service};

pub const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap"];

pub fn source_ip(region_index: usize) -> String {
    format!("127.0.0.{}", region_index + 2)
}

pub async fn send(method: &str, url: &str, body: &Value) -> anyhow::Result<()> {
    let body = serde_json::to_vec(body)?;
    let response = http::request(method, url, &[("Content-Type", "application/json")], Some(&body)).await?;
    ensure!((200..300).contains(&response.status), "{method} {url}: {} {}", response.status, response.text());
    Ok(())
}

/// The shipped rules, timed for a test: `for` 5 s, 5-minute windows 1 minute.
pub fn test_rules() -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.trim_start().starts_with("for:") {
            format!("{}for: 5s", &line[..line.len() - line.trim_start().len()])
        } else {
            line.replace("[5m]", "[1m]")
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// `(alertname, key label, state)` of every live alert.
pub async fn alerts(query_url: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let response = http::get(&format!("{query_url}/api/v1/alerts")).await?;
    ensure!(response.status == 200, "GET /api/v1/alerts: {} {}", response.status, response.text());
    let body: Value = response.json()?;
    let list = body.as_array().context("alerts: not a list")?;
    Ok(list
        .iter()
        .map(|a| {
            let labels = &a["labels"];
            let key = key_of(labels);
            let name = labels["alertname"].as_str().unwrap_or_default().to_string();
            (name, key, a["state"].as_str().unwrap_or_default().to_string())
        })
        .collect())
}

/// Waits until every `(alertname, key)` of `want` has gone to firing since `since_ms`, by the
/// alert history (an alert that fired and already resolved counts: each fault's rule fires
/// on its own clock).
pub async fn wait_fired(query_url: &str, want: &[(&str, &str)], since_ms: i64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let url = format!("{query_url}/api/v1/alerts/history?from={since_ms}&limit=10000");
        let response = http::get(&url).await?;
        ensure!(response.status == 200, "GET {url}: {} {}", response.status, response.text());
        let body: Value = response.json()?;
        let fired: Vec<(String, String)> = body
            .as_array()
            .context("history: not a list")?
            .iter()
            .filter(|t| t["to"].as_str() == Some("firing"))
            .map(|t| (t["alertname"].as_str().unwrap_or_default().to_string(), key_of(&t["labels"])))
            .collect();
        let missing: Vec<String> = want
            .iter()
            .filter(|(name, key)| !fired.iter().any(|(n, k)| n == name && k == key))
            .map(|(name, key)| format!("{name}{{{key}}}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("never fired within {within:?}: {missing:?}; live alerts: {:?}", alerts(query_url).await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The label an alert is told apart by in the scenarios.
fn key_of(labels: &Value) -> String {
    ["endpoint", "node", "pod", "prober", "region"]
        .iter()
        .find_map(|k| labels[*k].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Waits until every `(alertname, key)` of `want` is in `state` (or, for "gone", not firing).
pub async fn wait_for(query_url: &str, want: &[(&str, &str)], state: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let live = alerts(query_url).await?;
        let missing: Vec<String> = want
            .iter()
            .filter(|(name, key)| {
                let matching = live.iter().filter(|(n, k, _)| n == name && k == key);
                match state {
                    "not firing" => matching.clone().any(|(_, _, s)| s == "firing"),
                    _ => !matching.clone().any(|(_, _, s)| s == state),
                }
            })
            .map(|(name, key)| format!("{name}{{{key}}}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not {state} within {within:?}: {missing:?}; live alerts: {live:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub struct Fleet {
    pub redis: RedisServer,
    pub dir: tempfile::TempDir,
    pub sim: Service,
    /// The aggregators, each evaluating when it holds the lease.
    pub aggregators: Vec<Service>,
    pub aggregator_config: std::path::PathBuf,
    pub query: Service,
    pub probers: Vec<ChildProcess>,
    pub prober_configs: Vec<std::path::PathBuf>,
    pub admin: String,
    pub query_url: String,
}

/// What a fleet runs with besides its defaults.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// The rules file's text (`None`: the shipped rules, built in).
    pub rules: Option<String>,
    /// The routing file's text (`None`: the shipped routing, built in).
    pub routes: Option<String>,
    /// How many aggregator replicas share the Redis (the probers know them all); at least one.
    pub aggregators: usize,
    /// More `[alerting]` settings, as TOML lines (`alertmanagers = [...]`).
    pub alerting: String,
    /// Redis with `appendonly yes` (`appendfsync always`), so a restart loses nothing.
    pub append_only: bool,
}

impl Fleet {
    /// `rules`: the rules file's text (`None`: the shipped rules, built in); `aggregators`:
    /// how many replicas share the Redis (the probers know them all).
    pub async fn start(rules: Option<String>, aggregators: usize) -> anyhow::Result<Fleet> {
        Fleet::start_with(FleetOptions { rules, aggregators, ..FleetOptions::default() }).await
    }

    pub async fn start_with(options: FleetOptions) -> anyhow::Result<Fleet> {
        let FleetOptions { rules, routes, aggregators, alerting: extra, append_only } = options;
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name).display().to_string();
        let redis = RedisServer::builder().append_only(append_only).start()?;
        let sim =
            start_simulator(dir.path(), "us-west=2,us-east=2,eu-west=2,ap=2", &["--nodes-per-region", "1"]).await?;
        let admin = format!("http://{}", sim.address("admin")?);
        let endpoints = sim.ready["endpoints"].as_object().context("the simulator lists no endpoints")?.clone();
        let mut alerting = format!("[alerting]\n{extra}\n");
        if let Some(text) = rules {
            alerting.push_str(&format!("rules_file = \"{}\"\n", write(dir.path(), "rules.yaml", &text)?.display()));
        }
        if let Some(text) = routes {
            alerting.push_str(&format!("routes_file = \"{}\"\n", write(dir.path(), "routes.yaml", &text)?.display()));
        }
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nregions = {regions:?}\n[store]\nkind = \"redis\"\nurl = \"{redis}\"\n\
             {alerting}[defaults]\ninterval_s = 5\ntimeout_ms = 1000\n",
            regions = REGIONS,
            redis = redis.url(),
        );
        for (name, addr) in &endpoints {
            let addr = addr.as_str().context("endpoint address")?;
            config.push_str(&format!("[[checks]]\nid = \"{name}\"\nurl = \"http://{addr}/health\"\n"));
            if REGIONS.contains(&name.as_str()) {
                config.push_str(&format!("labels = {{ region = \"{name}\" }}\n"));
            }
        }
        let aggregator_config = write(dir.path(), "aggregator.toml", &config)?;
        let mut replicas = Vec::new();
        for i in 0..aggregators.max(1) {
            replicas.push(start_replica(dir.path(), &aggregator_config, i).await?);
        }
        let grpc: Vec<String> = replicas.iter().map(|a| a.address("grpc")).collect::<Result<_, _>>()?;
        let addresses: Vec<String> = grpc.iter().map(|g| format!("http://{g}")).collect();
        let (query, query_url) = start_query(dir.path(), &redis.url()).await?;
        let mut probers = Vec::new();
        let mut prober_configs = Vec::new();
        for (i, region) in REGIONS.iter().enumerate() {
            let config = ProberConfig::new(region, &addresses)
                .node(&format!("node-{region}-0"))
                .buffer_dir(Path::new(&path(&format!("wal-{region}"))))
                .source_ip(&source_ip(i))
                .section(&format!(
                    "[scrape]\ninterval_ms = 2000\ntimeout_ms = 1000\n\
                     [scrape.kubernetes]\napi_url = \"{admin}/k8s\"\ndiscovery_interval_ms = 2000\n\
                     [pods]\ninterval_ms = 2000\n[node]\ninterval_ms = 2000\nsource = \"kubelet\"\n"
                ))
                .write(dir.path(), &format!("prober-{region}.toml"))?;
            probers.push(start("mixmon-prober", &["--config".into(), config.display().to_string()])?);
            prober_configs.push(config);
        }
        Ok(Fleet {
            redis,
            dir,
            sim,
            aggregators: replicas,
            aggregator_config,
            query,
            probers,
            prober_configs,
            admin,
            query_url,
        })
    }

    pub fn logs(&mut self) -> String {
        let probers: Vec<String> = self.probers.iter().map(|p| p.log_tail(15)).collect();
        let aggregators: Vec<String> = self.aggregators.iter().map(|a| a.process.log_tail(30)).collect();
        format!(
            "--- aggregator logs:\n{}\n--- query log:\n{}\n--- simulator log:\n{}\n--- prober logs:\n{}",
            aggregators.join("\n"),
            self.query.process.log_tail(10),
            self.sim.process.log_tail(10),
            probers.join("\n")
        )
    }
}

impl Fleet {
    /// SIGKILLs aggregator replica `i` and starts it again on the same gRPC address (the
    /// probers know only the addresses they were started with); `generation` names its files.
    pub async fn kill_and_restart(&mut self, i: usize, generation: usize) -> anyhow::Result<()> {
        let addr = self.aggregators[i].address("grpc")?;
        self.aggregators[i].process.kill();
        let text = std::fs::read_to_string(&self.aggregator_config)?;
        let text = text.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""), 1);
        let config = write(self.dir.path(), &format!("aggregator-{i}-{generation}.toml"), &text)?;
        self.aggregators[i] = start_replica(self.dir.path(), &config, 1_000 * (i + 1) + generation).await?;
        Ok(())
    }
}

/// An aggregator replica (the `i`-th) with its own ready file.
pub async fn start_replica(dir: &std::path::Path, config: &std::path::Path, i: usize) -> anyhow::Result<Service> {
    let ready = dir.join(format!("aggregator-{i}.json"));
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    start_with_ready_file("mixmon-aggregator", &args, &ready).await
}
