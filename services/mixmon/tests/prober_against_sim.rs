//! The prober against the simulated fleet, where each needs the other: probes from a source
//! address the simulator cuts off fail with the failure kind a real partition gives (a black
//! hole: timeout while connecting; resets: a connection error), a killed endpoint refuses, and
//! the node sampler reads a simulated node's kubelet summary, pinned disk included. (Here and
//! not in either crate's own tests: services do not depend on one another, `mixmon` composes
//! them.)

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixmon_mixer_sim::{ClientCut, CutMode, EndpointFault, NodeFault, SimConfig, SimHandle};
use mixmon_model::{
    AddressPolicy, CheckId, CheckKind, CheckSpec, FailureKind, HttpCheck, NodeSample, ProbeResult, Record, TcpCheck,
};
use mixmon_prober::checks::{self, HttpProber};

const DEADLINE: Duration = Duration::from_secs(20);
/// The probes' own timeout: a black hole shows as this, in the connect phase.
const TIMEOUT_MS: u32 = 300;
const CUT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn fleet() -> SimHandle {
    let config = SimConfig { regions: vec![("a".into(), 2), ("b".into(), 2)], seed: 7, ..SimConfig::default() };
    mixmon_mixer_sim::start(config).await.expect("simulator starts")
}

fn prober(source: IpAddr) -> HttpProber {
    HttpProber::new().expect("prober").with_source_ip(Some(source))
}

async fn probe(prober: &HttpProber, kind: CheckKind) -> ProbeResult {
    let spec = CheckSpec {
        id: CheckId::new("a").expect("id"),
        interval_ms: 10_000,
        timeout_ms: TIMEOUT_MS,
        phase_shift_ms: 0,
        kind,
    };
    let mut results = tokio::time::timeout(DEADLINE, checks::run(prober, &spec, 0)).await.expect("in time");
    assert_eq!(results.len(), 1);
    results.remove(0)
}

fn http(sim: &SimHandle, endpoint: &str) -> CheckKind {
    CheckKind::Http(HttpCheck::get(format!("http://{}/health", sim.addresses().endpoints[endpoint])))
}

fn tcp(sim: &SimHandle, endpoint: &str) -> CheckKind {
    let addr = sim.addresses().endpoints[endpoint];
    CheckKind::Tcp(TcpCheck {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: false,
        address: AddressPolicy::default(),
    })
}

fn failed(result: &ProbeResult, kind: FailureKind, error_part: &str) {
    assert_eq!(result.failure, Some(kind), "{result:#?}");
    assert!(result.error.contains(error_part), "{:?} should say {error_part:?}", result.error);
}

#[tokio::test]
async fn probes_from_a_cut_off_source_fail_as_across_a_partition() {
    let sim = fleet().await;
    let (cut, other) = (prober(CUT), prober(OTHER));
    for endpoint in ["a", "api"] {
        assert!(probe(&cut, http(&sim, endpoint)).await.success());
    }

    sim.set_client_cut(CUT, ClientCut { cut: true, mode: CutMode::Blackhole, fronts: Vec::new() })
        .expect("a valid cut");
    let during = format!("timeout after {TIMEOUT_MS} ms during connect");
    for endpoint in ["a", "b", "edge", "api"] {
        failed(&probe(&cut, http(&sim, endpoint)).await, FailureKind::Timeout, &during);
        assert!(probe(&other, http(&sim, endpoint)).await.success(), "{endpoint}: only the cut source is cut");
    }
    failed(&probe(&cut, tcp(&sim, "a")).await, FailureKind::Timeout, &during);
    assert!(probe(&other, tcp(&sim, "a")).await.success());

    // Resets: the handshake completes, the request meets a reset.
    sim.set_client_cut(CUT, ClientCut { cut: true, mode: CutMode::Reset, fronts: Vec::new() }).expect("a valid cut");
    let reset = probe(&cut, http(&sim, "b")).await;
    assert_eq!(reset.failure, Some(FailureKind::Connection), "{reset:#?}");
    assert!(probe(&other, http(&sim, "b")).await.success());

    sim.set_client_cut(CUT, ClientCut { cut: false, mode: CutMode::Blackhole, fronts: Vec::new() }).expect("valid");
    assert!(probe(&cut, http(&sim, "b")).await.success(), "the partition healed");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_killed_endpoint_is_refused_to_every_prober_and_comes_back() {
    let sim = fleet().await;
    sim.set_endpoint_fault("edge", EndpointFault { down: true, ..EndpointFault::default() }).expect("known");
    for source in [CUT, OTHER] {
        let prober = prober(source);
        failed(&probe(&prober, http(&sim, "edge")).await, FailureKind::ConnectionRefused, "connection refused");
        failed(&probe(&prober, tcp(&sim, "edge")).await, FailureKind::ConnectionRefused, "connection refused");
        assert!(probe(&prober, http(&sim, "api")).await.success());
    }
    sim.set_endpoint_fault("edge", EndpointFault::default()).expect("known");
    assert!(probe(&prober(OTHER), http(&sim, "edge")).await.success());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_node_sampled_through_its_kubelet_carries_the_pinned_disk() {
    let sim = fleet().await;
    sim.set_node_fault("node-a-0", NodeFault { disk_used_ratio: Some(0.9), ..NodeFault::default() }).expect("known");
    let text = format!(
        "[scrape]\n[scrape.kubernetes]\napi_url = \"http://{}/k8s\"\n[node]\ninterval_ms = 100\nsource = \"kubelet\"\n",
        sim.addresses().admin
    );
    let config: mixmon_prober::ProberConfig =
        mixmon_config::parse_with_env("p.toml", &text, Vec::new()).expect("parses");
    let seen: Arc<Mutex<Vec<NodeSample>>> = Arc::default();
    let sink = seen.clone();
    let emit: mixmon_prober::observe::Emit = Arc::new(move |record| {
        if let Record::Node(sample) = record {
            sink.lock().expect("lock").push(sample);
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks =
        mixmon_prober::observe::spawn(config.observe().expect("valid"), "node-a-0", emit, stop_rx).expect("spawned");
    let waited = mixmon_testkit::eventually(DEADLINE, Duration::from_millis(20), || {
        let moved = seen.lock().expect("lock").iter().skip(1).any(|s| s.net_rx_bytes > 0);
        std::future::ready(moved)
    })
    .await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(DEADLINE, task).await;
    }
    let samples = seen.lock().expect("lock").clone();
    assert!(waited.is_ok(), "no node sample with network traffic: {samples:#?}");
    let first = &samples[0];
    assert_eq!(first.node.as_str(), "node-a-0");
    assert_eq!(first.disks.len(), 1, "{first:#?}");
    let disk = &first.disks[0];
    assert_eq!(disk.mount, "/");
    let ratio = disk.used_bytes as f64 / disk.total_bytes as f64;
    assert!((ratio - 0.9).abs() < 1e-9, "the pinned 90 % arrived as {ratio}");
    assert!(first.cpu_busy_ratio.is_some_and(|r| r > 0.0 && r < 1.0), "{first:#?}");
    assert_eq!(first.memory_total_bytes, 32 << 30, "the Node's capacity");
    assert!(first.memory_used_bytes > 0 && first.memory_used_bytes < first.memory_total_bytes);
    assert_eq!((first.net_rx_bytes, first.net_tx_bytes), (0, 0), "no deltas on the first sample");
    sim.shutdown().await;
}
