//! The `mixmon-mixer-sim` binary: flags, the address file, the env token, SIGTERM.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mixmon_mixer_sim::SimAddresses;
use support::{eventually, get, request, DEADLINE};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mixmon-mixer-sim");

/// A fresh directory per test under the system temp dir, removed by the caller.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mixer-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn bad_flags_exit_non_zero_with_a_reason() {
    for (flags, reason) in [
        (vec!["--regions", "us-west"], "REGION=PODS"),
        (vec!["--regions", "us west=2"], "region name"),
        (vec!["--regions", "a=0"], "pods"),
        (vec!["--rps-per-pod=-5"], "requests per second"),
        (vec!["--bind", "not-an-ip"], "--bind"),
        (vec!["--admin-addr", "127.0.0.1"], "--admin-addr"),
        (vec!["--seed", "x"], "--seed"),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ] {
        let mut args = vec!["--admin-addr", "127.0.0.1:0"];
        args.extend(flags.iter().copied());
        let output =
            tokio::time::timeout(DEADLINE, Command::new(BIN).args(&args).env_remove("MIXMON_SIM_ADMIN_TOKEN").output())
                .await
                .expect("exits within the deadline")
                .expect("binary runs");
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{flags:?}: stderr lacks `{reason}`:\n{stderr}");
    }
}

#[tokio::test]
async fn writes_addresses_serves_and_stops_on_sigterm() {
    let dir = scratch_dir("run");
    let addr_file = dir.join("addrs.json");
    let mut child = Command::new(BIN)
        .args(["--regions", "x=1,y=2", "--admin-addr", "127.0.0.1:0", "--seed", "3"])
        .arg("--addr-file")
        .arg(&addr_file)
        .env("MIXMON_SIM_ADMIN_TOKEN", "tok")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");

    let addresses: SimAddresses = eventually("the address file", || async {
        let text = std::fs::read_to_string(&addr_file).ok()?;
        Some(serde_json::from_str(&text).expect("the file is never half-written"))
    })
    .await;
    assert_eq!(addresses.pods.len(), 3);
    assert_eq!(addresses.endpoints.len(), 4, "x, y, edge, api");
    assert_eq!(get(addresses.pods[2].addr, "/health").await.json()["pod"], "mixer-y-1");
    let without = request(addresses.admin, "GET", "/pods", &[], None).await.expect("admin answers");
    assert_eq!(without.status, 403, "the env token guards the admin API");
    let with = request(addresses.admin, "GET", "/pods", &[("Authorization", "Bearer tok")], None)
        .await
        .expect("admin answers");
    assert_eq!(with.status, 200);

    let pid = child.id().expect("still running").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, child.wait()).await.expect("stops promptly").expect("wait");
    assert!(status.success(), "graceful exit, got {status}");
    let after_exit =
        tokio::time::timeout(Duration::from_secs(1), request(addresses.pods[0].addr, "GET", "/health", &[], None))
            .await;
    assert!(matches!(after_exit, Ok(Err(_))), "nothing listens after exit: {after_exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
