//! `mixmon check` and `mixmon validate`: run the catalogue's checks from here, once or
//! repeatedly, and print what they found.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use mixmon_aggregator::{AggregatorConfig, Catalogue};
use mixmon_model::ProbeResult;
use mixmon_prober::checks::HttpProber;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Check catalogue (the aggregator's config format).
    #[arg(long, default_value = "mixmon.toml")]
    config: std::path::PathBuf,
    /// Run every check once and exit (otherwise repeat every HEALTH_CHECK_INTERVAL seconds).
    #[arg(long)]
    once: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn load_catalogue(path: &Path) -> anyhow::Result<Catalogue> {
    let config: AggregatorConfig = mixmon_config::load(Some(path), mixmon_config::process_env())?;
    let interval = std::env::var(mixmon_aggregator::catalogue::HEALTH_CHECK_INTERVAL).ok();
    Ok(Catalogue::from_config(&config, interval.as_deref())?)
}

fn validate_rules(path: &Path) -> anyhow::Result<()> {
    let rules = mixmon_rules::load(path)?;
    let groups: std::collections::BTreeSet<&str> = rules.rules.iter().map(|r| r.group.as_str()).collect();
    println!(
        "{}: ok, {} rules in {} groups, {} maintenance windows",
        path.display(),
        rules.rules.len(),
        groups.len(),
        rules.maintenance.len()
    );
    Ok(())
}

fn validate_routes(path: &Path) -> anyhow::Result<()> {
    let routing = mixmon_rules::routes::load(path)?;
    println!(
        "{}: ok, {} receivers, {} inhibit rules, {} time intervals",
        path.display(),
        routing.receivers.len(),
        routing.inhibit_rules.len(),
        routing.time_intervals.len()
    );
    Ok(())
}

pub fn validate(
    catalogue: Option<&Path>,
    prober: Option<&Path>,
    query: Option<&Path>,
    rules: Option<&Path>,
    routes: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = catalogue {
        let config: mixmon_aggregator::AggregatorConfig =
            mixmon_config::load(Some(path), mixmon_config::process_env())?;
        let interval = std::env::var(mixmon_aggregator::catalogue::HEALTH_CHECK_INTERVAL).ok();
        let (catalogue, _) = mixmon_aggregator::reload::prepare(&config, interval.as_deref())?;
        println!(
            "{}: ok, {} checks, catalogue version {:016x}",
            path.display(),
            catalogue.checks.len(),
            catalogue.version
        );
        if let Some(rules) = &config.alerting.rules_file {
            validate_rules(rules)?;
        }
        if let Some(routes) = &config.alerting.routes_file {
            validate_routes(routes)?;
        }
    }
    if let Some(path) = query {
        let config: mixmon_query::config::QueryConfig = mixmon_config::load(Some(path), mixmon_config::process_env())?;
        mixmon_query::config::prepare(&config).map_err(anyhow::Error::msg)?;
        println!("{}: ok, the query API on {}", path.display(), config.listen);
    }
    if let Some(path) = rules {
        validate_rules(path)?;
    }
    if let Some(path) = routes {
        validate_routes(path)?;
    }
    if let Some(path) = prober {
        // Everything the prober checks at start, without starting it (`prepare`, which its
        // start calls too); whether the source address is one of this host is for the
        // prober's own start (this may well run elsewhere, in CI).
        let config: mixmon_prober::ProberConfig = mixmon_config::load(Some(path), mixmon_config::process_env())?;
        let prepared = config.prepare().with_context(|| format!("{}", path.display()))?;
        let (identity, source_ip, observe) = (prepared.identity, prepared.source_ip, prepared.observe);
        let mut observers = Vec::new();
        if let Some(scrape) = &observe.scrape {
            observers.push(format!("scrape of {} static targets", scrape.targets.len()));
        }
        if observe.kubernetes.is_some() {
            observers.push("pod discovery".to_string());
        }
        if let Some(node) = &observe.node {
            let source = match node.source {
                mixmon_prober::observe::node::NodeSource::Proc => "/proc",
                mixmon_prober::observe::node::NodeSource::Kubelet => "kubelet",
            };
            observers.push(format!("node sampling ({source})"));
        }
        if observe.pods.is_some() {
            observers.push("pod sampling".to_string());
        }
        let observers = if observers.is_empty() { "no observers".to_string() } else { observers.join(", ") };
        let from = source_ip.map(|ip| format!(", probes from {ip}")).unwrap_or_default();
        println!("{}: ok, prober {} in {}{from}, {observers}", path.display(), identity.id, identity.region);
    }
    Ok(())
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let catalogue = load_catalogue(&args.config)?;
    let prober = HttpProber::new().context("starting the HTTP check engine")?;
    let interval_s = std::env::var(mixmon_aggregator::catalogue::HEALTH_CHECK_INTERVAL)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(10);
    loop {
        let results = run_all(&prober, &catalogue).await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&to_json(&catalogue, &results))?);
        } else {
            print!("{}", render(&catalogue, &results));
        }
        let healthy = results.iter().all(ProbeResult::success);
        if args.once {
            return Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval_s)) => {}
            _ = mixmon_config::process::shutdown_signal() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn run_all(prober: &HttpProber, catalogue: &Catalogue) -> Vec<ProbeResult> {
    let probes = catalogue
        .checks
        .values()
        .map(|spec| mixmon_prober::checks::run(prober, spec, mixmon_prober::scheduler::unix_ms()));
    futures::future::join_all(probes).await.into_iter().flatten().collect()
}

fn url(catalogue: &Catalogue, result: &ProbeResult) -> String {
    let target = catalogue.checks.get(&result.check_id).map(|spec| spec.kind.target()).unwrap_or_default();
    // The address probed, when the target does not already name it (a DNS server does).
    match result.details.address {
        Some(addr) if !target.contains(&addr.to_string()) => format!("{target} ({addr})"),
        _ => target,
    }
}

fn render(catalogue: &Catalogue, results: &[ProbeResult]) -> String {
    let mut out = format!("{:<16} {:<9} {:>6} {:>11}  {}\n", "CHECK", "RESULT", "STATUS", "LATENCY", "URL / ERROR");
    for result in results {
        let (verdict, detail) = match result.failure {
            None => ("ok".to_string(), url(catalogue, result)),
            Some(kind) => (kind.as_str().to_string(), result.error.clone()),
        };
        let status = if result.status_code == 0 { "-".to_string() } else { result.status_code.to_string() };
        out.push_str(&format!(
            "{:<16} {:<9} {:>6} {:>8.1} ms  {}\n",
            result.check_id,
            verdict,
            status,
            result.duration_us as f64 / 1_000.0,
            detail
        ));
    }
    out
}

fn to_json(catalogue: &Catalogue, results: &[ProbeResult]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "check": r.check_id.as_str(),
                "url": url(catalogue, r),
                "healthy": r.success(),
                "failure": r.failure.map(|f| f.as_str()),
                "status_code": r.status_code,
                "duration_ms": r.duration_us as f64 / 1_000.0,
                "error": r.error,
                "phases_ms": {
                    "dns": r.phases.dns_us as f64 / 1_000.0,
                    "connect": r.phases.connect_us as f64 / 1_000.0,
                    "tls": r.phases.tls_us as f64 / 1_000.0,
                    "first_byte": r.phases.first_byte_us as f64 / 1_000.0,
                    "transfer": r.phases.transfer_us as f64 / 1_000.0,
                },
                "address": r.details.address.map(|a| a.to_string()),
                "http_version": r.details.http_version.map(|v| v.as_str()),
                "redirects": r.details.redirects,
                "tls": r.details.tls.as_ref().map(|t| serde_json::json!({
                    "version": t.version,
                    "valid": t.valid,
                    "cert_not_after_s": t.cert_not_after_s,
                    "days_left": r.tls_days_left(),
                })),
            })
        })
        .collect();
    serde_json::json!({ "healthy": results.iter().all(ProbeResult::success), "checks": rows })
}
