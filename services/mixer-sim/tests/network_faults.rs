//! Faults of the network around the pods, seen from real sockets: an endpoint killed (refused,
//! then listening again on the same port), hanging, slow or failing a share; a client cut off
//! every front and pod, as a black hole (its connects time out, its open connections freeze
//! and resume) or with resets.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mixmon_mixer_sim::{ClientCut, CutMode, EndpointFault, SimError};
use support::{connect_from, endpoint, get, health_on, keep_alive_health, pod_addr, request, small_fleet, DEADLINE};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Long enough that a loopback connect or answer that is going to happen has happened: each
/// takes well under a millisecond here. It stands for "never" in the checks below.
const NEVER: Duration = Duration::from_millis(500);

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn blackhole() -> ClientCut {
    ClientCut { cut: true, mode: CutMode::Blackhole, fronts: Vec::new() }
}

#[tokio::test]
async fn a_killed_endpoint_refuses_then_listens_again_on_the_same_port() {
    let sim = small_fleet(None).await;
    let front = endpoint(&sim, "a");
    // A request hanging on the front when it is killed: its connection dies with it.
    sim.set_endpoint_fault("a", EndpointFault { hang: true, ..EndpointFault::default() }).expect("known endpoint");
    let hanging = tokio::spawn(async move { request(front, "GET", "/health", &[], None).await });
    tokio::time::sleep(NEVER).await;
    assert!(!hanging.is_finished(), "the hanging endpoint answered");
    sim.set_endpoint_fault("a", EndpointFault { down: true, ..EndpointFault::default() }).expect("known endpoint");

    let refused = TcpStream::connect(front).await.expect_err("a killed endpoint accepts nothing");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    let outcome = tokio::time::timeout(DEADLINE, hanging).await.expect("the hanging request ended").expect("task ran");
    assert!(outcome.is_err(), "a killed endpoint answered: {outcome:?}");
    // Only that front: the others, and the pods behind it, answer.
    assert_eq!(get(endpoint(&sim, "b"), "/health").await.status, 200);
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/health").await.status, 200);
    let listed = sim.all_faults();
    assert_eq!(listed.endpoints.get("a"), Some(&EndpointFault { down: true, ..EndpointFault::default() }));

    sim.set_endpoint_fault("a", EndpointFault::default()).expect("known endpoint");
    let reply = get(front, "/health").await;
    assert_eq!(reply.status, 200, "the same address serves again");
    assert!(reply.header("x-mixer-pod").is_some());
    assert!(sim.all_faults().endpoints.is_empty());

    // Killed again and cleared with everything else.
    sim.set_endpoint_fault("a", EndpointFault { down: true, ..EndpointFault::default() }).expect("known endpoint");
    assert!(TcpStream::connect(front).await.is_err());
    sim.clear_faults().expect("every fault cleared");
    assert_eq!(get(front, "/health").await.status, 200);
    let unknown = sim.set_endpoint_fault("zz", EndpointFault::default());
    assert!(matches!(unknown, Err(SimError::UnknownEndpoint(_))), "{unknown:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_hangs_slows_or_fails_an_exact_share_while_its_pods_are_fine() {
    let sim = small_fleet(None).await;
    let front = endpoint(&sim, "b");
    sim.set_endpoint_fault("b", EndpointFault { error_share: 0.25, ..EndpointFault::default() }).expect("valid");
    let mut errors = 0;
    for _ in 0..100 {
        let reply = get(front, "/health").await;
        match reply.status {
            500 => {
                errors += 1;
                assert_eq!(reply.json()["endpoint"], "b");
                assert!(reply.header("x-mixer-pod").is_none(), "the front failed, no pod was asked");
            }
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(errors, 25);
    assert_eq!(get(pod_addr(&sim, "mixer-b-0"), "/health").await.status, 200, "the pods are fine");

    sim.set_endpoint_fault("b", EndpointFault { latency_ms: 60, ..EndpointFault::default() }).expect("valid");
    let started = Instant::now();
    assert_eq!(get(front, "/health").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(60), "took {:?}", started.elapsed());

    sim.set_endpoint_fault("b", EndpointFault { hang: true, ..EndpointFault::default() }).expect("valid");
    let hung = tokio::time::timeout(NEVER, request(front, "GET", "/health", &[], None)).await;
    assert!(hung.is_err(), "a hanging endpoint answered: {hung:?}");
    assert_eq!(get(endpoint(&sim, "edge"), "/health").await.status, 200);
    tokio::time::timeout(Duration::from_secs(3), sim.shutdown()).await.expect("prompt shutdown");
}

#[tokio::test]
async fn a_blackholed_client_cannot_connect_and_its_open_connection_freezes_then_resumes() {
    let sim = small_fleet(None).await;
    let cut = client(3);
    let front = endpoint(&sim, "a");
    let pod = pod_addr(&sim, "mixer-b-1");
    // Opened before the cut, kept alive.
    let mut open = connect_from(cut, front).await.expect("connect before the cut");
    assert_eq!(keep_alive_health(&mut open).await.expect("an answer").status, 200);

    sim.set_client_cut(cut, blackhole()).expect("a valid cut");
    for addr in [front, pod] {
        let attempt = tokio::time::timeout(NEVER, connect_from(cut, addr)).await;
        assert!(attempt.is_err(), "{addr}: the handshake completed across a black hole: {attempt:?}");
    }
    // Everyone else gets through, to the same listeners.
    let other = health_on(connect_from(client(2), front).await.expect("connect"), front).await.expect("answer");
    assert_eq!(other.status, 200);
    assert_eq!(get(pod, "/health").await.status, 200);
    let listed = sim.all_faults().clients;
    assert_eq!(listed.get(&cut), Some(&blackhole()));

    // The open connection: the request goes out, nothing comes back while cut...
    let pending = tokio::spawn(async move {
        let reply = keep_alive_health(&mut open).await;
        (reply, open)
    });
    tokio::time::sleep(NEVER).await;
    assert!(!pending.is_finished(), "an answer crossed the black hole");
    // ...and the answer arrives once the partition heals, as TCP delivers it late.
    sim.set_client_cut(cut, ClientCut { cut: false, mode: CutMode::Blackhole, fronts: Vec::new() }).expect("valid");
    let (reply, _open) = tokio::time::timeout(DEADLINE, pending).await.expect("answered after the cut").expect("task");
    assert_eq!(reply.expect("an answer").status, 200);
    let after = tokio::time::timeout(DEADLINE, connect_from(cut, front)).await.expect("connects again").expect("ok");
    assert_eq!(health_on(after, front).await.expect("answer").status, 200);
    assert!(sim.all_faults().clients.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_cut_with_resets_is_reset_on_every_connection() {
    let sim = small_fleet(None).await;
    let cut = client(4);
    let front = endpoint(&sim, "api");
    let mut open = connect_from(cut, front).await.expect("connect before the cut");
    assert_eq!(keep_alive_health(&mut open).await.expect("an answer").status, 200);

    sim.set_client_cut(cut, ClientCut { cut: true, mode: CutMode::Reset, fronts: Vec::new() }).expect("a valid cut");
    // The connection it had is reset: reading it ends in an error, not an answer.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, open.read(&mut buf)).await.expect("the reset arrives");
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected a reset, got {read:?}"
    );
    // A new one is accepted and reset at once.
    for addr in [front, pod_addr(&sim, "mixer-a-1")] {
        let stream = connect_from(cut, addr).await.expect("the handshake completes");
        let outcome = tokio::time::timeout(DEADLINE, health_on(stream, addr)).await.expect("ends at once");
        assert!(
            matches!(&outcome, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{addr}: expected a reset, got {outcome:?}"
        );
    }
    assert_eq!(get(front, "/health").await.status, 200, "other clients are served");
    sim.clear_faults().expect("every fault cleared");
    let stream = connect_from(cut, front).await.expect("connect");
    assert_eq!(health_on(stream, front).await.expect("answer").status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn cuts_are_bounded() {
    let sim = small_fleet(None).await;
    for last in 0..64u8 {
        sim.set_client_cut(IpAddr::V4(Ipv4Addr::new(10, 9, 0, last)), blackhole()).expect("within the bound");
    }
    let one_more = sim.set_client_cut(client(5), blackhole());
    assert!(matches!(one_more, Err(SimError::InvalidCut(_))), "{one_more:?}");
    // Changing one already cut is not one more.
    sim.set_client_cut(
        IpAddr::V4(Ipv4Addr::new(10, 9, 0, 7)),
        ClientCut { cut: true, mode: CutMode::Reset, fronts: Vec::new() },
    )
    .expect("an update");
    // With 63 blackholed addresses in the filter, everyone else still gets through.
    assert_eq!(get(endpoint(&sim, "a"), "/health").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_cut_scoped_to_one_front_leaves_the_others_open() {
    let sim = small_fleet(None).await;
    let cut = client(6);
    let scoped = ClientCut { cut: true, mode: CutMode::Blackhole, fronts: vec!["api".into()] };
    sim.set_client_cut(cut, scoped.clone()).expect("a valid cut");
    // The cut front accepts and then answers nothing; another front answers that client.
    let api = endpoint(&sim, "api");
    let stream = connect_from(cut, api).await.expect("the handshake completes");
    assert!(tokio::time::timeout(NEVER, health_on(stream, api)).await.is_err(), "the cut front answered");
    let other = endpoint(&sim, "a");
    let stream = connect_from(cut, other).await.expect("connect");
    assert_eq!(health_on(stream, other).await.expect("answer").status, 200);
    assert_eq!(sim.all_faults().clients.get(&cut), Some(&scoped));
    let unknown = sim.set_client_cut(cut, ClientCut { fronts: vec!["nope".into()], ..scoped });
    assert!(matches!(unknown, Err(SimError::InvalidCut(_))), "{unknown:?}");
    sim.clear_faults().expect("every fault cleared");
    let stream = connect_from(cut, api).await.expect("connect");
    assert_eq!(health_on(stream, api).await.expect("answer").status, 200);
    sim.shutdown().await;
}
