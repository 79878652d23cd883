//! The shipped routing file is an Alertmanager configuration: the real `amtool check-config`
//! accepts it, and mixmon loads the same file; a routing file with mistakes is refused with
//! every one pointed at, by `mixmon validate --routes` and by the aggregator at start.

use std::path::Path;

use anyhow::{bail, ensure};
use mixmon_integration_tests::{run_to_exit, write};

#[test]
fn amtool_and_mixmon_accept_the_shipped_routing_file() -> anyhow::Result<()> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/alertmanager.yml");
    match std::process::Command::new("amtool").arg("check-config").arg(&shipped).output() {
        Ok(out) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            ensure!(out.status.success() && text.contains("SUCCESS"), "amtool check-config refused it:\n{text}");
            ensure!(text.contains("3 receivers") && text.contains("3 inhibit rules"), "{text}");
        }
        Err(_) if std::env::var_os("REQUIRE_AMTOOL").is_some() => bail!("amtool is not installed"),
        Err(_) => eprintln!("SKIPPED amtool check-config: amtool is not installed (scripts/test.sh installs it)"),
    }
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--routes".into(), shipped.display().to_string()])?;
    ensure!(code == 0 && log.contains("ok, 3 receivers, 3 inhibit rules"), "exit {code}:\n{log}");
    Ok(())
}

#[test]
fn a_routing_file_with_mistakes_is_refused_line_by_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let routes = write(
        dir.path(),
        "alertmanager.yml",
        "route:\n  receiver: pager\n  group_wiat: 0s\nreceivers:\n  - name: pagr\n    email_configs:\n      - to: ops@example.com\n        smarthost: mail\n",
    )?;
    let expected = [
        "alertmanager.yml:3:3: unknown key \"group_wiat\" in a route; did you mean \"group_wait\"?",
        "alertmanager.yml:2:11: route names receiver \"pager\", which `receivers` does not define",
        "alertmanager.yml:7:11: smarthost \"mail\" must be host:port",
    ];
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--routes".into(), routes.display().to_string()])?;
    ensure!(code != 0, "exit {code}:\n{log}");
    for needle in expected {
        ensure!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    let config = write(
        dir.path(),
        "aggregator.toml",
        &format!("[store]\nkind = \"memory\"\n[alerting]\nroutes_file = \"{}\"\n", routes.display()),
    )?;
    let (code, log) = run_to_exit("mixmon-aggregator", &["--config".into(), config.display().to_string()])?;
    ensure!(code != 0, "exit {code}:\n{log}");
    for needle in expected {
        ensure!(log.contains(needle), "{needle:?} missing at start:\n{log}");
    }
    Ok(())
}
