//! `mixmon up`: the whole system in one process, on the in-memory store. With `--demo` it
//! also starts the simulated mixer fleet, probes its six endpoints from one prober per
//! simulated region (each from its own loopback address, so one region's probers can be cut
//! off), samples each region's simulated node through its kubelet, and prints a live status
//! table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mixmon_aggregator::config::{CheckConfig, CheckType};
use mixmon_aggregator::{AggregatorConfig, Catalogue, CatalogueHandle, ServeOptions};
use mixmon_config::{startup, Secret};
use mixmon_prober::config::{AggregatorConfig as UplinkConfig, IdentityConfig};
use mixmon_prober::ProberConfig;
use mixmon_store::{MemoryStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::status_table;

/// Demo checks run this often unless `HEALTH_CHECK_INTERVAL` says otherwise: fast enough
/// that a newcomer sees figures move within seconds.
const DEMO_INTERVAL_S: u32 = 5;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Also start a simulated AI Mixer fleet and probe it.
    #[arg(long)]
    demo: bool,
    /// Check catalogue (the aggregator's config format); required without --demo.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the Grafana JSON datasource and REST API listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    query_addr: String,
    /// Where the gRPC control plane listens.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_addr: String,
    /// Where the simulated fleet's fault-injection API listens (with --demo).
    #[arg(long, default_value = "127.0.0.1:9100")]
    sim_admin_addr: String,
    /// Region of the local prober (without --demo).
    #[arg(long, default_value = "local")]
    region: String,
    /// Seconds between status tables; 0 prints none.
    #[arg(long, default_value_t = 10)]
    status_every: u64,
    /// Bearer token for the query API, required when it listens beyond loopback.
    #[arg(long, env = "MIXMON_QUERY_TOKEN", hide_env_values = true)]
    query_token: Option<String>,
    /// Alert rules (YAML); default: the shipped config/rules.yaml, built in. Reloaded on change.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Routing (an Alertmanager alertmanager.yml); default: the shipped config/alertmanager.yml.
    #[arg(long)]
    routes: Option<PathBuf>,
}

/// Scrape, pod and node sampling (the node's kubelet) against the simulator, every 5 s, and
/// probes from `source_ip` when given.
fn demo_observers(sim_admin: SocketAddr, source_ip: Option<IpAddr>) -> anyhow::Result<ProberConfig> {
    let mut text = format!(
        "[scrape]\ninterval_ms = 5000\ntimeout_ms = 2000\n\
         [scrape.kubernetes]\napi_url = \"http://{sim_admin}/k8s\"\ndiscovery_interval_ms = 10000\n\
         [pods]\ninterval_ms = 5000\n\
         [node]\ninterval_ms = 5000\nsource = \"kubelet\"\n"
    );
    if let Some(ip) = source_ip {
        text.push_str(&format!("[probe]\nsource_ip = \"{ip}\"\n"));
    }
    Ok(mixmon_config::parse_with_env("<demo prober>", &text, Vec::new())?)
}

/// One loopback source address per demo region (127.0.0.2, .3, ...), so a region's probers can
/// be cut off by address; `None` where the host has only 127.0.0.1 (macOS without aliases).
fn demo_source_ips(regions: usize) -> Option<Vec<IpAddr>> {
    let ips: Vec<IpAddr> = (0..regions)
        .map(|i| u8::try_from(i + 2).map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))))
        .collect::<Result<_, _>>()
        .ok()?;
    ips.iter().all(|ip| mixmon_prober::checks::check_source_ip(*ip).is_ok()).then_some(ips)
}

fn stop_signal(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

async fn bind(address: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({flag}); is another mixmon running? pass {flag} ADDR"))
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // Probers stop first, so their last batches still find an aggregator to acknowledge them.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_probers_tx, stop_probers_rx) = watch::channel(false);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let interval_env = std::env::var(mixmon_aggregator::catalogue::HEALTH_CHECK_INTERVAL).ok();
    let query_token = args.query_token.clone().filter(|t| !t.is_empty()).map(Secret::new);

    let query_listener = bind(&args.query_addr, "--query-addr").await?;
    let query_addr = query_listener.local_addr()?;
    startup::refuse_unguarded(query_addr, query_token.is_some(), false, "the query API", "set MIXMON_QUERY_TOKEN")
        .map_err(anyhow::Error::msg)?;
    let grpc_listener = bind(&args.grpc_addr, "--grpc-addr").await?;
    let grpc_addr = grpc_listener.local_addr()?;
    // `mixmon up` has no prober token: its control plane stays on loopback.
    startup::refuse_unguarded(grpc_addr, false, false, "the control plane", "mixmon up has no prober token")
        .map_err(anyhow::Error::msg)?;

    let (sim, catalogue, regions): (Option<mixmon_mixer_sim::SimHandle>, _, _) = if args.demo {
        let admin_addr: SocketAddr =
            args.sim_admin_addr.parse().with_context(|| format!("--sim-admin-addr {:?}", args.sim_admin_addr))?;
        // One simulated node per region, so the region's prober (on that node) finds all of its
        // pods, as a DaemonSet's prober finds the pods of its own node.
        let config = mixmon_mixer_sim::SimConfig { admin_addr, nodes_per_region: 1, ..Default::default() };
        let regions: Vec<String> = config.regions.iter().map(|(r, _)| r.clone()).collect();
        let sim = mixmon_mixer_sim::start(config).await.context("starting the simulated fleet")?;
        let checks = sim
            .addresses()
            .endpoints
            .iter()
            .map(|(name, addr)| CheckConfig {
                // A regional endpoint carries its region, so RegionalFailure knows what a
                // region's services are; `edge` and `api` are global.
                labels: regions.iter().filter(|r| *r == name).map(|r| ("region".to_string(), r.clone())).collect(),
                id: name.clone(),
                check_type: CheckType::Http,
                url: format!("http://{addr}/health"),
                method: "GET".into(),
                expected_status: vec![200],
                interval_s: None,
                timeout_ms: Some(2_000),
                ..Default::default()
            })
            .collect();
        let mut config: AggregatorConfig = mixmon_config::parse_with_env("<demo>", "", Vec::new())?;
        config.defaults.interval_s = DEMO_INTERVAL_S;
        config.checks = checks;
        (Some(sim), Catalogue::from_config(&config, interval_env.as_deref())?, regions)
    } else {
        let path = args.config.clone().context("mixmon up needs --config FILE with checks, or --demo")?;
        let config: AggregatorConfig = mixmon_config::load(Some(&path), mixmon_config::process_env())?;
        (None, Catalogue::from_config(&config, interval_env.as_deref())?, vec![args.region.clone()])
    };
    let check_count = catalogue.checks.len();
    let source_ips = if sim.is_some() { demo_source_ips(regions.len()) } else { None };

    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    let mut probers: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    // Each region's probers run a check at their own phase of its interval (spread evenly).
    let spread = mixmon_aggregator::assignment::Assignments::default().with_regions(regions.clone());
    let catalogue = CatalogueHandle::with_assignments(catalogue, spread);
    let alerting_config = mixmon_aggregator::config::AlertingConfig {
        rules_file: args.rules.clone(),
        routes_file: args.routes.clone(),
        ..Default::default()
    };
    let alerting =
        mixmon_aggregator::alerting::start(&alerting_config, store.clone(), catalogue.clone(), stop_rx.clone())?;
    let rule_count = alerting.rules.borrow().rules.rules.len();
    let options = ServeOptions {
        catalogue,
        store: store.clone(),
        auth_token: None,
        registry: Arc::default(),
        stats: Arc::default(),
        connections: Default::default(),
    };
    let stop = stop_signal(&stop_rx);
    tasks.spawn(async move {
        mixmon_aggregator::serve(options, grpc_listener, stop).await?;
        Ok("aggregator")
    });
    for (i, region) in regions.iter().enumerate() {
        let mut config = match &sim {
            // The demo prober of each region also does what a prober on a mixer node does: it
            // finds that node's pods through the simulator's Kubernetes API, scrapes their
            // metrics and samples them, and samples its (simulated) node through the kubelet.
            Some(sim) => {
                demo_observers(sim.addresses().admin, source_ips.as_ref().and_then(|ips| ips.get(i).copied()))?
            }
            None => ProberConfig::default(),
        };
        let node = if sim.is_some() { format!("node-{region}-0") } else { "local".into() };
        config.identity =
            IdentityConfig { id: Some(format!("local-{region}")), region: Some(region.clone()), node: Some(node) };
        config.aggregator =
            UplinkConfig { addresses: vec![format!("http://{grpc_addr}")], token: None, token_file: None };
        let stop = stop_signal(&stop_probers_rx);
        probers.spawn(async move {
            mixmon_prober::run(config, stop).await?;
            Ok("prober")
        });
    }
    let query_options = mixmon_query::QueryOptions { auth_token: query_token, ..Default::default() };
    let router = mixmon_query::app(store.clone(), query_options);
    let stop = stop_signal(&stop_rx);
    tasks.spawn(async move {
        mixmon_query::serve(query_listener, Default::default(), router, stop).await?;
        Ok("query")
    });

    println!("mixmon is up (in-memory store and prober buffers: nothing is kept after exit). Ctrl-C stops it.");
    println!("  Grafana JSON datasource  http://{query_addr}   (POST /query, /metrics, /variable, ...)");
    println!("  status API               http://{query_addr}/api/v1/status");
    println!("  status page              http://{query_addr}/status   (HTML, no JavaScript)");
    println!("  alerts ({rule_count} rules)        http://{query_addr}/api/v2/alerts   (Alertmanager's API: amtool, Grafana, karma)");
    println!("  control plane (gRPC)     {grpc_addr}");
    println!("  probers                  {} ({})", regions.len(), regions.join(", "));
    println!("  checks                   {check_count}");
    if let Some(sim) = &sim {
        let admin = sim.addresses().admin;
        println!("  simulated fleet admin    http://{admin}   ({} pods)", sim.addresses().pods.len());
        println!("    inject a fault:  curl -X PUT http://{admin}/faults/regions/eu-west -d '{{\"down\":true}}'");
        println!("    kill an endpoint: curl -X PUT http://{admin}/faults/endpoints/edge -d '{{\"down\":true}}'");
        println!(
            "    fill a disk:     curl -X PUT http://{admin}/faults/nodes/node-ap-0 -d '{{\"disk_used_ratio\":0.9}}'"
        );
        match &source_ips {
            Some(ips) => {
                let by_region: Vec<String> = regions.iter().zip(ips).map(|(r, ip)| format!("{r} {ip}")).collect();
                println!("    probers probe from: {}", by_region.join(", "));
                if let (Some(region), Some(ip)) = (regions.get(1), ips.get(1)) {
                    println!(
                        "    cut {region}'s probers off: curl -X PUT http://{admin}/faults/clients/{ip} -d '{{\"cut\":true}}'"
                    );
                }
            }
            None => println!(
                "    (this host has only 127.0.0.1: probers share it, so cutting one region's off is not possible)"
            ),
        }
        println!("    clear faults:    curl -X DELETE http://{admin}/faults");
    }
    println!(
        "  try:  curl -s http://{query_addr}/query -d '{{\"targets\":[{{\"refId\":\"A\",\"target\":\"success_rate\",\"payload\":{{\"region\":\"all\"}}}}]}}'"
    );

    let mut ticker = tokio::time::interval(Duration::from_secs(args.status_every.max(1)));
    ticker.tick().await;
    let failure = loop {
        tokio::select! {
            _ = mixmon_config::process::shutdown_signal() => break None,
            joined = async {
                tokio::select! {
                    joined = tasks.join_next() => joined,
                    joined = probers.join_next() => joined,
                }
            } => match joined {
                Some(Ok(Ok(name))) => break Some(anyhow::anyhow!("the {name} stopped unexpectedly")),
                Some(Ok(Err(err))) => break Some(err),
                Some(Err(err)) => break Some(anyhow::anyhow!("a component panicked: {err}")),
                None => break None,
            },
            _ = ticker.tick(), if args.status_every > 0 => {
                let now = mixmon_prober::scheduler::unix_ms();
                match mixmon_query::status_snapshot(store.as_ref(), now, &Default::default()).await {
                    Ok(rows) => println!("\n{}", status_table::render(&rows)),
                    Err(err) => eprintln!("status unavailable: {err}"),
                }
                match mixmon_query::mixer_snapshot(store.as_ref(), now).await {
                    Ok(rows) if !rows.is_empty() => print!("{}", status_table::render_mixer(&rows)),
                    Ok(_) => {}
                    Err(err) => eprintln!("mixer status unavailable: {err}"),
                }
            }
        }
    };
    println!("stopping...");
    let _ = stop_probers_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while probers.join_next().await.is_some() {}
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!("some components did not stop within 10 s");
    }
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
