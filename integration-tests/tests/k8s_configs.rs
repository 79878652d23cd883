//! The configuration files the Kubernetes manifests ship (`deploy/k8s/base/*/config/`) pass
//! `mixmon validate`, the services' own start-up checks, with the environment each overlay
//! gives them: the store URL from its Secret, and for the probers either nothing (all-in-one:
//! the region is the node's label) or a region overlay's MIXMON_IDENTITY__REGION and the
//! central aggregator's address (components/remote-aggregator). The manifests themselves are
//! checked by deploy/check.sh (schema and policy).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use mixmon_testkit::binary_path;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `value:` of the env entry named `name` in a kustomization's inline patch.
fn env_value(kustomization: &Path, name: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(kustomization).with_context(|| format!("{}", kustomization.display()))?;
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("- name: {name}"));
    lines.next().with_context(|| format!("{} sets no {name}", kustomization.display()))?;
    let value = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("value: "))
        .with_context(|| format!("{}: {name} has no value on the next line", kustomization.display()))?;
    Ok(value.trim_matches('\'').to_string())
}

/// `mixmon validate ARGS` in `deploy/k8s/base` with `env`; its output, or why it failed.
fn validate(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<String> {
    let token = tempfile::NamedTempFile::new()?;
    std::fs::write(token.path(), "a-token-of-the-right-shape")?;
    let token_path = token.path().display().to_string();
    let mut command = std::process::Command::new(binary_path("mixmon")?);
    command
        .arg("validate")
        .args(args)
        .current_dir(repo_root().join("deploy/k8s/base"))
        // The Secrets' mount paths do not exist here; the same keys, pointed at a real file.
        .env("MIXMON_AUTH__TOKEN_FILE", &token_path)
        .env("MIXMON_AGGREGATOR__TOKEN_FILE", &token_path)
        .env("MIXMON_STORE__URL", "redis://:a-password@mixmon-redis:6379")
        .env("NODE_NAME", "node-1")
        .env_remove("MIXMON_IDENTITY__REGION")
        .env_remove("MIXMON_AGGREGATOR__ADDRESSES");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().context("running mixmon validate")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "mixmon validate {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

#[test]
fn the_central_configs_pass_their_services_checks() -> anyhow::Result<()> {
    let out = validate(&["--config", "central/config/aggregator.toml", "--query", "central/config/query.toml"], &[])?;
    ensure!(out.contains("aggregator.toml: ok, 6 checks"), "{out}");
    ensure!(out.contains("query.toml: ok, the query API on 0.0.0.0:8090"), "{out}");
    Ok(())
}

#[test]
fn the_all_in_one_prober_takes_its_region_from_its_node() -> anyhow::Result<()> {
    let out = validate(&["--prober", "prober/config/prober.toml"], &[])?;
    ensure!(out.contains("prober node-1 in the region of its node's topology.kubernetes.io/region label"), "{out}");
    ensure!(out.contains("pod discovery, node sampling (kubelet), pod sampling"), "{out}");
    Ok(())
}

#[test]
fn each_region_overlays_prober_is_valid_in_its_region() -> anyhow::Result<()> {
    let k8s = repo_root().join("deploy/k8s");
    let addresses =
        env_value(&k8s.join("components/remote-aggregator/kustomization.yaml"), "MIXMON_AGGREGATOR__ADDRESSES")?;
    ensure!(addresses.starts_with("[\"http"), "{addresses}");
    for region in ["us-west", "us-east", "eu-west", "ap"] {
        let overlay = k8s.join(format!("overlays/region/{region}/kustomization.yaml"));
        let set = env_value(&overlay, "MIXMON_IDENTITY__REGION")?;
        ensure!(set == region, "{} sets region {set}", overlay.display());
        let env = [("MIXMON_IDENTITY__REGION", set), ("MIXMON_AGGREGATOR__ADDRESSES", addresses.clone())];
        let out = validate(&["--prober", "prober/config/prober.toml"], &env)?;
        ensure!(out.contains(&format!("prober node-1 in {region},")), "{region}: {out}");
    }
    Ok(())
}
