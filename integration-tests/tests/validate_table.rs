//! Whatever a service refuses at start, `mixmon validate` refuses first, with the same
//! message: one file per mistake, each run through the service binary and through
//! `mixmon validate`. And the environment of another service does not stop one.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context};
use mixmon_integration_tests::{run_to_exit, write};
use mixmon_testkit::{binary_path, read_ready_file, ChildProcess};

/// A good prober config but for `extra`, which is appended.
fn prober(extra: &str) -> String {
    format!(
        "[identity]\nregion = \"eu-west\"\nnode = \"n\"\n[aggregator]\naddresses = [\"http://127.0.0.1:1\"]\n{extra}"
    )
}

/// `(service binary, validate flag, file, the part of the message both must print)`.
fn mistakes() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let check = "[[checks]]\nid = \"api\"\nurl = \"http://127.0.0.1:1/health\"\n";
    vec![
        ("mixmon-aggregator", "--config", format!("listen = \"8090\"\n{check}"), "is not an address to listen on"),
        (
            "mixmon-aggregator",
            "--config",
            format!("listen = \"127.0.0.1:0\"\n{check}[[assignments]]\nchecks = [\"nope\"]\nregions = [\"eu-west\"]\n"),
            "unknown check \"nope\"",
        ),
        ("mixmon-aggregator", "--config", format!("listen = \"127.0.0.1:0\"\nlisen = 1\n{check}"), "lisen"),
        (
            "mixmon-aggregator",
            "--config",
            format!("listen = \"127.0.0.1:0\"\n{check}[alerting]\ntick_ms = 5\n"),
            "alerting.tick_ms",
        ),
        (
            "mixmon-aggregator",
            "--config",
            format!("listen = \"127.0.0.1:0\"\n{check}[connections]\nmax_connections = 0\n"),
            "connections.max_connections",
        ),
        ("mixmon-prober", "--prober", prober("").replace("eu-west", "_all"), "is reserved"),
        ("mixmon-prober", "--prober", prober("").replace("http://", ""), "needs a scheme"),
        ("mixmon-prober", "--prober", prober("[batch]\nmax_results = 0\n"), "batch.max_results"),
        ("mixmon-prober", "--prober", prober("[buffer]\nmax_bytes = 10\n"), "buffer.max_bytes"),
        ("mixmon-prober", "--prober", prober("[bufer]\n"), "bufer"),
        ("mixmon-query", "--query", "listen = \"8090\"\n".into(), "is not an address to listen on"),
        (
            "mixmon-query",
            "--query",
            "listen = \"127.0.0.1:0\"\n[limits]\nmax_concurrent_requests = 0\n".into(),
            "limits.max_concurrent_requests",
        ),
        (
            "mixmon-query",
            "--query",
            "listen = \"127.0.0.1:0\"\n[connections]\nidle_timeout_ms = 10\n".into(),
            "connections.idle_timeout_ms",
        ),
        (
            "mixmon-query",
            "--query",
            "listen = \"127.0.0.1:0\"\n[status_page]\nrefresh_seconds = 1\n".into(),
            "status_page.refresh_seconds",
        ),
    ]
}

/// The error a binary printed last: what follows its last `prefix`.
fn last_error<'a>(log: &'a str, prefix: &str) -> Option<&'a str> {
    log.rfind(prefix).map(|at| log[at + prefix.len()..].trim())
}

#[test]
fn every_mistake_a_service_refuses_at_start_validate_refuses_with_the_same_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (i, (binary, flag, text, expected)) in mistakes().into_iter().enumerate() {
        let file = write(dir.path(), &format!("mistake-{i}.toml"), &text)?;
        let path = file.display().to_string();
        let (code, log) = run_to_exit(binary, &["--config".into(), path.clone()])?;
        ensure!(code != 0, "{binary} started with mistake {i} ({expected}):\n{log}");
        let refused =
            last_error(&log, &format!("{binary}: ")).with_context(|| format!("{binary}, no error:\n{log}"))?;
        ensure!(refused.contains(expected), "{binary}, mistake {i}: expected {expected:?} in {refused:?}");

        let (code, log) = run_to_exit("mixmon", &["validate".into(), flag.into(), path])?;
        ensure!(code != 0, "validate {flag} passed mistake {i} ({expected}):\n{log}");
        let said = last_error(&log, "error: ").with_context(|| format!("validate, no error:\n{log}"))?;
        // The same message; validate may name the file in front of it.
        let first_line = refused.lines().next().unwrap_or_default();
        ensure!(said.contains(first_line), "mistake {i}: {binary} said {refused:?}, validate said {said:?}");
        ensure!(said.contains(expected), "mistake {i}: validate said {said:?}");
    }
    Ok(())
}

async fn becomes_ready(binary: &str, config: &Path, ready: &Path, env: &[(&str, &str)]) -> anyhow::Result<()> {
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let mut process = ChildProcess::spawn(&binary_path(binary)?, args, env)?;
    let outcome = read_ready_file(ready, Duration::from_secs(30)).await;
    let log = process.log_tail(40);
    process.terminate()?;
    outcome.with_context(|| format!("{binary} did not start with {env:?}:\n{log}"))?;
    Ok(())
}

#[tokio::test]
async fn another_services_variables_and_empty_ones_do_not_stop_a_service() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = [
        ("RUST_LOG", "info"),
        // The prober's and a test's variables, and an empty one of the service's own sections.
        ("MIXMON_IDENTITY__REGION", "eu-west"),
        ("MIXMON_FAULTS_OUTAGE_S", "30"),
        ("MIXMON_STORE__URL", ""),
        ("MIXMON_AUTH__TOKEN", ""),
    ];
    let query = write(dir.path(), "query.toml", "listen = \"127.0.0.1:0\"\n[store]\nkind = \"memory\"\n")?;
    becomes_ready("mixmon-query", &query, &dir.path().join("query.json"), &env).await?;
    let aggregator = write(
        dir.path(),
        "aggregator.toml",
        "listen = \"127.0.0.1:0\"\n[store]\nkind = \"memory\"\n[[checks]]\nid = \"api\"\nurl = \"http://127.0.0.1:1/\"\n",
    )?;
    becomes_ready("mixmon-aggregator", &aggregator, &dir.path().join("aggregator.json"), &env).await?;
    Ok(())
}
