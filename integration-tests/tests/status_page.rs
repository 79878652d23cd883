//! The status page (`GET /status` of `mixmon-query`) of a running system fed by the simulated
//! fleet: redis-server, `mixmon-mixer-sim`, the aggregator (which evaluates the shipped rules),
//! two probers (us-west, eu-west) and `mixmon-query` with a token and `[status_page] public =
//! true`. Five checks, one of which (`api-tls`, TLS to a plain-HTTP front) fails every probe, so
//! the page has an unhealthy endpoint, failures and, once ServiceDown fires, an open incident.
//!
//! * `the_status_page_of_a_running_system`: fetched with a plain HTTP client (JavaScript off),
//!   the page lists every endpoint and region of `/api/v1/status` with its status and the same
//!   figures (success, p95, 24 h uptime, exact `<data value>`s) and the firing alerts; it is
//!   served without the token while the API still refuses without it. Then headless Chromium
//!   (Debian's `chromium`) renders it at desktop (1280x900) and phone (390x844) widths into
//!   `target/status-page/desktop.png` and `phone.png` (checked as PNGs of those sizes), and
//!   `--dump-dom` shows every endpoint and region with its status as the browser built it.
//!   Without chromium the browser part is skipped, loudly, unless `REQUIRE_CHROMIUM` is set
//!   (`scripts/test.sh` installs chromium and sets it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::{start, start_aggregator, start_simulator, start_with_ready_file, write};
use mixmon_testkit::{http, ChildProcess, ProberConfig, RedisServer};
use serde_json::Value;

const TOKEN: &str = "status-page-test-token";
const CHECKS: [&str; 5] = ["us-west", "eu-west", "edge", "api", "api-tls"];
const REGIONS: [&str; 2] = ["us-west", "eu-west"];
const DATA_DEADLINE: Duration = Duration::from_secs(90);
/// ServiceDown needs a minute of failures from a quorum of regions.
const INCIDENT_DEADLINE: Duration = Duration::from_secs(180);
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);
const STATUSES: [&str; 4] = ["healthy", "degraded", "unhealthy", "no_data"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
    let redis = RedisServer::start()?;
    let sim = start_simulator(dir.path(), "us-west=2,eu-west=2", &["--nodes-per-region", "1"]).await?;
    let port = |front: &str| -> anyhow::Result<String> {
        let addr =
            sim.ready["endpoints"][front].as_str().with_context(|| format!("no {front} front: {}", sim.ready))?;
        Ok(addr.rsplit(':').next().unwrap_or_default().to_string())
    };
    let mut checks = String::new();
    for (id, front, scheme) in [
        ("us-west", "us-west", "http"),
        ("eu-west", "eu-west", "http"),
        ("edge", "edge", "http"),
        ("api", "api", "http"),
        // TLS to a plain-HTTP front: every probe fails in its TLS phase.
        ("api-tls", "api", "https"),
    ] {
        checks
            .push_str(&format!("[[checks]]\nid = \"{id}\"\nurl = \"{scheme}://127.0.0.1:{}/health\"\n", port(front)?));
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
    let query_config = write(
        dir.path(),
        "query.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\n[auth]\ntoken = \"{TOKEN}\"\n\
             [status_page]\npublic = true\nrefresh_seconds = 30\n",
            redis.url()
        ),
    )?;
    let ready = dir.path().join("query.json");
    let args =
        ["--config".into(), query_config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let query = start_with_ready_file("mixmon-query", &args, &ready).await?;
    let query_url = format!("http://{}", query.address("http")?);
    let mut processes = vec![("simulator", sim.process), ("aggregator", aggregator.process), ("query", query.process)];
    for region in REGIONS {
        let config = ProberConfig::new(region, &[format!("http://{grpc}")])
            .buffer_dir(&dir.path().join(format!("wal-{region}")))
            .write(dir.path(), &format!("prober-{region}.toml"))?;
        let prober = start("mixmon-prober", &["--config".into(), config.display().to_string()])?;
        processes.push(if region == "us-west" { ("prober us-west", prober) } else { ("prober eu-west", prober) });
    }
    Ok(System { query_url, processes, _redis: redis, _dir: dir })
}

async fn api(url: &str) -> anyhow::Result<Value> {
    let auth = format!("Bearer {TOKEN}");
    let response = http::request("GET", url, &[("Authorization", &auth)], None).await?;
    ensure!(response.status == 200, "GET {url}: {} {}", response.status, response.text());
    Ok(response.json()?)
}

/// One row of the page's status table: (endpoint, region) → status and the exact figures.
#[derive(Debug, Clone, PartialEq)]
struct PageRow {
    status: String,
    figures: BTreeMap<String, Option<f64>>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

/// The status table's rows, from the page's markup or from the DOM Chromium built (both
/// serialise attributes in double quotes, in source order).
fn page_rows(html: &str) -> anyhow::Result<BTreeMap<(String, String), PageRow>> {
    let table = html.split("<table class=\"status\">").nth(1).context("no status table")?;
    let table = table.split("</table>").next().unwrap_or_default();
    let mut rows = BTreeMap::new();
    for chunk in table.split("<tr ").skip(1).filter(|c| c.contains("data-status=")) {
        let tag = format!(" {}", chunk.split('>').next().unwrap_or_default());
        let body = chunk.split("</tr>").next().unwrap_or_default();
        let mut figures = BTreeMap::new();
        for data in body.split("<data ").skip(1) {
            let tag = format!(" {}", data.split('>').next().unwrap_or_default());
            let value = attribute(&tag, "value").context("a figure without value")?;
            let value = if value.is_empty() { None } else { Some(value.parse::<f64>()?) };
            figures.insert(attribute(&tag, "data-field").context("a figure without a field")?, value);
        }
        let endpoint = attribute(&tag, "data-endpoint").context("a row without endpoint")?;
        let region = attribute(&tag, "data-region").context("a row without region")?;
        let status = attribute(&tag, "data-status").context("a row without status")?;
        ensure!(STATUSES.contains(&status.as_str()), "{endpoint} {region}: unknown status {status:?}");
        ensure!(
            body.contains(&format!("<span class=\"pill {status}\">")),
            "{endpoint} {region}: the status is not shown in words: {body}"
        );
        rows.insert((endpoint, region), PageRow { status, figures });
    }
    Ok(rows)
}

/// `/api/v1/status` as the page shows it.
fn api_rows(api: &Value) -> BTreeMap<(String, String), PageRow> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    api.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|row| {
            let figures =
                ["success_rate_5m", "p95_ms_5m", "uptime_24h"].map(|f| (f.to_string(), row[f].as_f64())).into();
            ((text(row, "endpoint"), text(row, "region")), PageRow { status: text(row, "status"), figures })
        })
        .collect()
}

/// Every (endpoint, region) the system must show: each check merged and from each region.
fn expected_rows() -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for check in CHECKS {
        for region in std::iter::once("all").chain(REGIONS) {
            rows.push((check.to_string(), region.to_string()));
        }
    }
    rows
}

/// The page's rows, with only the figures `/api/v1/status` has.
fn comparable(rows: &BTreeMap<(String, String), PageRow>) -> BTreeMap<(String, String), PageRow> {
    rows.iter()
        .map(|(key, row)| {
            let figures = row
                .figures
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "success_rate_5m" | "p95_ms_5m" | "uptime_24h"))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            (key.clone(), PageRow { status: row.status.clone(), figures })
        })
        .collect()
}

/// The firing alerts' names (what the page calls open incidents).
async fn firing(query_url: &str) -> anyhow::Result<Vec<String>> {
    let alerts = api(&format!("{query_url}/api/v1/alerts")).await?;
    Ok(alerts
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| a["state"] == "firing" && a["event"] != true)
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_of_a_running_system() -> anyhow::Result<()> {
    let started = Instant::now();
    let system = start_system().await?;
    let url = system.query_url.clone();

    // Every endpoint seen from both regions, api-tls failing, and its ServiceDown firing.
    let mut last = String::new();
    loop {
        let rows = api_rows(&api(&format!("{url}/api/v1/status")).await?);
        let missing: Vec<_> =
            expected_rows().into_iter().filter(|key| rows.get(key).is_none_or(|r| r.status == "no_data")).collect();
        let alerts = firing(&url).await?;
        if missing.is_empty() && alerts.iter().any(|a| a == "ServiceDown") {
            break;
        }
        last = format!("without data: {missing:?}; firing: {alerts:?}");
        let deadline = if missing.is_empty() { INCIDENT_DEADLINE } else { DATA_DEADLINE };
        if started.elapsed() > deadline {
            bail!("the system never showed every endpoint and the api-tls incident: {last}\n{}", system.logs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("data and the incident after {:.1} s ({last})", started.elapsed().as_secs_f64());

    // Public: served without the token; the API still wants it.
    assert_eq!(http::get(&format!("{url}/api/v1/status")).await?.status, 403);
    let page = http::get(&format!("{url}/status")).await?;
    ensure!(page.status == 200, "GET /status: {} {}", page.status, page.text());
    ensure!(page.header("content-type") == Some("text/html; charset=utf-8"), "{:?}", page.headers);
    let html = page.text();
    ensure!(!html.to_lowercase().contains("<script"), "the page carries no JavaScript");
    ensure!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"), "the page refreshes itself");

    // With JavaScript off: the same rows, statuses and figures as /api/v1/status. Probes land
    // every second, so the comparison is made between two equal API answers, on a page rendered
    // between them (a render is reused for 5 s: wait it out before each try).
    let mut attempts = 0;
    loop {
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(5_200)).await;
        let before = api(&format!("{url}/api/v1/status")).await?;
        let page = http::get(&format!("{url}/status")).await?.text();
        let after = api(&format!("{url}/api/v1/status")).await?;
        let rows = page_rows(&page)?;
        for key in expected_rows() {
            ensure!(rows.contains_key(&key), "the page does not list {key:?}");
        }
        let (before, after) = (api_rows(&before), api_rows(&after));
        if before == after && comparable(&rows) == before {
            ensure!(rows[&("api-tls".to_string(), "all".to_string())].status == "unhealthy");
            ensure!(rows.values().all(|r| r.figures.contains_key("uptime_7d") && r.figures.contains_key("uptime_15d")));
            break;
        }
        if before == after {
            let page = comparable(&rows);
            let keys: std::collections::BTreeSet<_> = page.keys().chain(before.keys()).collect();
            let differences: Vec<String> = keys
                .into_iter()
                .filter(|k| page.get(*k) != before.get(*k))
                .map(|k| format!("{k:?}: page {:?}, API {:?}", page.get(k), before.get(k)))
                .collect();
            bail!("the page differs from /api/v1/status for the same data:\n{}", differences.join("\n"));
        }
        ensure!(attempts < 30, "the API never answered the same twice in a row around a page fetch");
    }
    println!("plain HTTP: page = /api/v1/status after {attempts} attempt(s)");
    let incidents = html.split("<section id=\"incidents\">").nth(1).unwrap_or_default();
    ensure!(incidents.contains("data-alertname=\"ServiceDown\""), "the open incident is listed: {incidents}");
    let failures = html.split("<section id=\"failures\">").nth(1).unwrap_or_default();
    ensure!(failures.contains("data-endpoint=\"api-tls\""), "api-tls's failed probes are listed: {failures}");

    // Headless Chromium.
    let chromium = match std::process::Command::new("chromium").arg("--version").output() {
        Ok(output) if output.status.success() => "chromium",
        _ if std::env::var_os("REQUIRE_CHROMIUM").is_some() => bail!("chromium is not installed"),
        _ => {
            eprintln!("SKIPPED the headless Chromium part: chromium is not installed (scripts/test.sh installs it)");
            return Ok(());
        }
    };
    let out_dir = repo_root().join("target/status-page");
    std::fs::create_dir_all(&out_dir)?;
    let profile = tempfile::tempdir()?;
    let page_url = format!("{url}/status");
    for (name, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        let file = out_dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        let screenshot = format!("--screenshot={}", file.display());
        let size = format!("--window-size={width},{height}");
        run_chromium(chromium, profile.path(), &[&screenshot, &size, &page_url]).await?;
        let png = std::fs::read(&file).with_context(|| format!("chromium wrote no {}", file.display()))?;
        let (w, h) = png_size(&png).with_context(|| format!("{} is not a PNG", file.display()))?;
        ensure!((w, h) == (width, height), "{name}: {w}x{h}, asked for {width}x{height}");
        // A blank page of that size compresses to a few kilobytes; text, pills and charts do not.
        ensure!(png.len() > 20_000, "{name}.png is {} bytes: nearly blank", png.len());
        println!("{name}: {} ({w}x{h}, {} bytes)", file.display(), png.len());
    }
    let mut dom = run_chromium(chromium, profile.path(), &["--dump-dom", &page_url]).await?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        ensure!(!dom.to_lowercase().contains("<script"), "no script in the DOM");
        let problems = dom_problems(&dom, &url).await?;
        if problems.is_empty() {
            break;
        }
        // A status may have turned between the render and the API's answer: render again.
        ensure!(attempts < 5, "the DOM's statuses differ from the API's: {problems:#?}");
        tokio::time::sleep(Duration::from_millis(5_200)).await;
        dom = run_chromium(chromium, profile.path(), &["--dump-dom", &page_url]).await?;
    }
    ensure!(dom.contains("data-alertname=\"ServiceDown\""), "the DOM lists the open incident");
    for (name, process) in &system.processes {
        let log = std::fs::read_to_string(process.log_path()).unwrap_or_default();
        ensure!(!log.contains("panicked"), "the {name} panicked:\n{}", process.log_tail(40));
    }
    println!("chromium: every endpoint and region with its status; total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// What the DOM Chromium built gets wrong against `/api/v1/status`: a missing row or another
/// status.
async fn dom_problems(dom: &str, url: &str) -> anyhow::Result<Vec<String>> {
    let rows = page_rows(dom)?;
    let api = api_rows(&api(&format!("{url}/api/v1/status")).await?);
    let mut problems = Vec::new();
    if rows.len() != api.len() {
        problems.push(format!("DOM rows {} vs API rows {}", rows.len(), api.len()));
    }
    for key in expected_rows() {
        let (page, api) = (rows.get(&key).map(|r| &r.status), api.get(&key).map(|r| &r.status));
        if page.is_none() || page != api {
            problems.push(format!("{key:?}: DOM {page:?}, API {api:?}"));
        }
    }
    Ok(problems)
}

/// Runs headless chromium with `args` (its own profile directory, so runs never share one) and
/// returns its standard output; fails on a non-zero exit or past the deadline.
async fn run_chromium(chromium: &str, profile: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(chromium);
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CHROMIUM_DEADLINE, command.output())
        .await
        .with_context(|| format!("chromium {args:?} took longer than {CHROMIUM_DEADLINE:?}"))??;
    ensure!(
        output.status.success(),
        "chromium {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Width and height from a PNG's signature and IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.get(..8)? != SIGNATURE || png.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| Some(u32::from_be_bytes(png.get(at..at + 4)?.try_into().ok()?));
    Some((be(16)?, be(20)?))
}

#[test]
fn png_size_reads_the_ihdr_chunk() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&1280u32.to_be_bytes());
    png.extend_from_slice(&900u32.to_be_bytes());
    assert_eq!(png_size(&png), Some((1280, 900)));
    assert_eq!(png_size(b"GIF89a"), None);
    assert_eq!(png_size(&png[..20]), None);
}
