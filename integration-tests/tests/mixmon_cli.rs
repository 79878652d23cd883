//! `mixmon up --demo` and `mixmon check`, run as a user runs them: the binary, its output,
//! its HTTP answers, its exit.

use std::time::Duration;

use anyhow::{ensure, Context};
use mixmon_integration_tests::{run_to_exit, start, write};
use mixmon_testkit::{eventually, free_port, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One command: a simulated fleet probed from every region, its figures, its alerts and its
/// notification receivers served on the query API; SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixmon_up_demo_serves_the_fleet_alerts_and_receivers_and_stops_on_sigterm() -> anyhow::Result<()> {
    let (query, grpc, admin) = (free_port()?, free_port()?, free_port()?);
    let args = [
        "up".to_string(),
        "--demo".into(),
        "--query-addr".into(),
        format!("127.0.0.1:{query}"),
        "--grpc-addr".into(),
        format!("127.0.0.1:{grpc}"),
        "--sim-admin-addr".into(),
        format!("127.0.0.1:{admin}"),
        "--status-every".into(),
        "0".into(),
    ];
    let mut up = start("mixmon", &args)?;
    let base = format!("http://127.0.0.1:{query}");
    // Every simulated endpoint reported from every region, with a success rate.
    let status = format!("{base}/api/v1/status");
    let ready = eventually(Duration::from_secs(60), Duration::from_millis(500), || async {
        let Ok(response) = http::get(&status).await else { return false };
        let Ok(body) = response.json() else { return false };
        let rows = body.as_array().cloned().unwrap_or_default();
        let merged: Vec<_> = rows.iter().filter(|r| r["region"] == "all").collect();
        merged.len() >= 6 && merged.iter().all(|r| r["success_rate_5m"].is_number())
    })
    .await;
    let log = up.log_tail(400);
    ready.with_context(|| format!("the status API never showed the fleet:\n{log}"))?;
    ensure!(log.contains("mixmon is up") && log.contains(&format!("http://127.0.0.1:{query}")), "{log}");

    let alerts = http::get(&format!("{base}/api/v2/alerts")).await?;
    ensure!(alerts.status == 200 && alerts.json()?.is_array(), "{}", alerts.text());
    // The shipped routing, with no secrets set: each integration is listed, and a page it
    // could not send says which secret is missing (never a secret's value).
    let receivers = http::get(&format!("{base}/api/v1/receivers")).await?;
    let text = receivers.text();
    ensure!(receivers.status == 200, "{text}");
    for integration in
        ["critical/pagerduty/0", "critical/email/0", "critical/slack/0", "warning/slack/0", "info/slack/0"]
    {
        ensure!(text.contains(integration), "{integration} missing: {text}");
    }

    up.terminate()?;
    let exit = up.wait_exit(Duration::from_secs(20))?;
    let log = up.log_tail(20);
    ensure!(exit.success(), "mixmon up exited {exit:?}:\n{log}");
    ensure!(log.contains("stopping..."), "{log}");
    ensure!(!log.contains("panicked"), "{log}");
    Ok(())
}

/// A tiny HTTP server answering every request 200, for `mixmon check`.
async fn healthy_target() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
            });
        }
    });
    Ok(port)
}

/// `mixmon check --once` prints one row per check and exits 1 when any is unhealthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixmon_check_prints_every_check_and_fails_when_one_is_down() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let up = healthy_target().await?;
    let down = free_port()?;
    let catalogue = |checks: &[(&str, u16)]| {
        let mut text = String::from("[defaults]\ninterval_s = 5\ntimeout_ms = 1000\n");
        for (id, port) in checks {
            text.push_str(&format!("[[checks]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{port}/health\"\n"));
        }
        text
    };
    let healthy = write(dir.path(), "healthy.toml", &catalogue(&[("api", up)]))?;
    let (code, out) =
        run_to_exit("mixmon", &["check".into(), "--once".into(), "--config".into(), healthy.display().to_string()])?;
    ensure!(code == 0, "exit {code}:\n{out}");
    ensure!(out.contains("CHECK") && out.lines().any(|l| l.starts_with("api") && l.contains(" ok ")), "{out}");

    let mixed = write(dir.path(), "mixed.toml", &catalogue(&[("api", up), ("edge", down)]))?;
    let (code, out) =
        run_to_exit("mixmon", &["check".into(), "--once".into(), "--config".into(), mixed.display().to_string()])?;
    ensure!(code == 1, "exit {code} with a check down:\n{out}");
    let edge = out.lines().find(|l| l.starts_with("edge")).with_context(|| format!("no edge row:\n{out}"))?;
    ensure!(!edge.contains(" ok ") && edge.to_lowercase().contains("refused"), "{edge}");
    let (code, out) = run_to_exit(
        "mixmon",
        &["check".into(), "--once".into(), "--json".into(), "--config".into(), mixed.display().to_string()],
    )?;
    ensure!(code == 1, "{out}");
    // The log holds stderr too: a warning's colour codes hold '[', so the JSON starts at the
    // first line that starts with a bracket.
    let json_start = out
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter(|i| out[*i..].starts_with(['[', '{']))
        .min()
        .context("no JSON")?;
    let body: serde_json::Value = serde_json::from_str(out[json_start..].trim()).with_context(|| out.clone())?;
    ensure!(body.to_string().contains("edge") && body.to_string().contains("api"), "{body}");
    Ok(())
}
