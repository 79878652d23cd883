//! The services' own metrics, read by the real tools: the aggregator (`[metrics] listen`), a
//! prober (its health listener) and the query service each serve `GET /metrics`; Debian's
//! `promtool check metrics` (Prometheus 2.42) accepts each body, a real `prometheus` scrapes
//! all three, and the SLI gauge it stored (`mixmon_sli_uptime_24h_ratio`) equals what the query
//! API answers for every endpoint and region once the prober has stopped (so nothing moves).
//! Needs `prometheus` and `promtool` on the PATH (the test command installs them).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_query, start_simulator, write};
use mixmon_testkit::{free_port, http, ChildProcess, ProberConfig, RedisServer};
use serde_json::Value;

fn promtool_accepts(name: &str, body: &str) -> anyhow::Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool (Debian package prometheus) is not installed")?;
    child.stdin.take().context("stdin")?.write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "promtool check metrics refused {name}'s /metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Retries `f` every 500 ms until it is `Ok`, for at most a minute; the last error otherwise.
async fn until_ok<F, Fut>(mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(why) if std::time::Instant::now() > end => anyhow::bail!("{why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn body(url: &str) -> anyhow::Result<String> {
    let response = http::get(url).await?;
    ensure!(response.status == 200, "{url}: {} {}", response.status, response.text());
    Ok(response.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_service_and_stores_the_slis_the_api_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = RedisServer::start()?;
    let sim = start_simulator(dir.path(), "us-west=2", &[]).await?;
    let front = sim.ready["endpoints"]["us-west"].as_str().context("no us-west front")?.to_string();
    let (aggregator_metrics, prober_health, prometheus_port) = (free_port()?, free_port()?, free_port()?);
    let config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:{aggregator_metrics}\"\n[store]\nkind = \"redis\"\n\
             url = \"{}\"\n[defaults]\ninterval_s = 1\n[[checks]]\nid = \"us-west-health\"\nurl = \"http://{front}/health\"\n",
            redis.url()
        ),
    )?;
    let (_aggregator, grpc) = start_aggregator(dir.path(), &config).await?;
    let (_query, query_url) = start_query(dir.path(), &redis.url()).await?;
    let prober_config = ProberConfig::new("us-west", &[format!("http://{grpc}")])
        .section(&format!("[health]\nlisten = \"127.0.0.1:{prober_health}\"\n"))
        .write(dir.path(), "prober.toml")?;
    let mut prober = start("mixmon-prober", &["--config".into(), prober_config.display().to_string()])?;

    let targets = [
        ("aggregator", format!("127.0.0.1:{aggregator_metrics}")),
        ("prober", format!("127.0.0.1:{prober_health}")),
        ("query", query_url.trim_start_matches("http://").to_string()),
    ];
    // Probes flow and every service has counted some.
    until_ok(|| async {
        let text = body(&format!("{query_url}/metrics")).await.map_err(|e| e.to_string())?;
        text.contains("mixmon_sli_uptime_24h_ratio{").then_some(()).ok_or("no SLI gauge yet".to_string())
    })
    .await?;
    for (name, address) in &targets {
        let text = body(&format!("http://{address}/metrics")).await?;
        promtool_accepts(name, &text)?;
    }
    let prober_text = body(&format!("http://127.0.0.1:{prober_health}/metrics")).await?;
    ensure!(prober_text.contains("mixmon_prober_records_total{kind=\"probe\",outcome=\"ok\"}"), "{prober_text}");
    let aggregator_text = body(&format!("http://127.0.0.1:{aggregator_metrics}/metrics")).await?;
    ensure!(!aggregator_text.contains("mixmon_ingest_results_stored_total 0\n"), "{aggregator_text}");

    // A real Prometheus scrapes all three.
    let scrape_configs: String = targets
        .iter()
        .map(|(name, address)| {
            format!(
                "  - job_name: {name}\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{address}']\n"
            )
        })
        .collect();
    let prometheus_config = write(dir.path(), "prometheus.yml", &format!("scrape_configs:\n{scrape_configs}"))?;
    let check = Command::new("promtool").args(["check", "config"]).arg(&prometheus_config).output()?;
    ensure!(check.status.success(), "promtool check config: {}", String::from_utf8_lossy(&check.stdout));
    let _prometheus = ChildProcess::spawn(
        std::path::Path::new("prometheus"),
        [
            format!("--config.file={}", prometheus_config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &[],
    )?;
    let api = format!("http://127.0.0.1:{prometheus_port}/api/v1");
    until_ok(|| {
        let api = api.clone();
        async move {
            let up = http::get(&format!("{api}/query?query=up")).await.map_err(|e| e.to_string())?;
            let up: Value = up.json().map_err(|e| e.to_string())?;
            let ups = up["data"]["result"].as_array().cloned().unwrap_or_default();
            if ups.len() != 3 || ups.iter().any(|r| r["value"][1] != "1") {
                return Err(format!("not every target is up yet: {up}"));
            }
            Ok(())
        }
    })
    .await?;
    // Then the data is frozen (the prober stops, its last batches land), and what Prometheus
    // scraped from the query service must be what its API answers.
    prober.terminate()?;
    prober.wait_exit(Duration::from_secs(30))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, table) = {
        let response = http::get(&format!("{query_url}/api/v1/status")).await?;
        (response.status, response.json()?)
    };
    ensure!(status == 200, "status API: {status}");
    let rows = table.as_array().context("status is a list")?.clone();
    ensure!(!rows.is_empty(), "no status rows");
    until_ok(|| {
        let (api, rows) = (api.clone(), rows.clone());
        async move {
            for row in &rows {
                let (endpoint, region) = (row["endpoint"].as_str().unwrap_or(""), row["region"].as_str().unwrap_or(""));
                let query = format!("mixmon_sli_uptime_24h_ratio{{endpoint=\"{endpoint}\",region=\"{region}\"}}");
                let url = format!(
                    "{api}/query?query={}",
                    query
                        .replace('{', "%7B")
                        .replace('}', "%7D")
                        .replace('"', "%22")
                        .replace('=', "%3D")
                        .replace(',', "%2C")
                );
                let answer: Value =
                    http::get(&url).await.map_err(|e| e.to_string())?.json().map_err(|e| e.to_string())?;
                let stored = answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
                if stored != row["uptime_24h"].as_f64() {
                    return Err(format!(
                        "{endpoint}/{region}: Prometheus holds {stored:?}, the API answers {}",
                        row["uptime_24h"]
                    ));
                }
            }
            Ok(())
        }
    })
    .await?;
    Ok(())
}
