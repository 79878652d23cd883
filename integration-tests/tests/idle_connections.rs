//! Idle clients cost nothing: 500 TCP connections that never speak, against each listener
//! (the query API and the aggregator's gRPC port), are closed after the configured timeout, and real clients are served while they are held; a client that trickles its
//! greeting (a byte at a time, each inside the idle timeout) is closed after the header-read
//! timeout.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use mixmon_integration_tests::{start_with_ready_file, write};
use mixmon_proto::pb;
use mixmon_testkit::http;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: usize = 500;
const IDLE_TIMEOUT_MS: u64 = 1_500;
const HEADER_READ_TIMEOUT_MS: u64 = 1_000;
/// Far above the idle timeout: how long a loaded machine may take to close them all.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

async fn open_idle(address: &str) -> anyhow::Result<Vec<TcpStream>> {
    let mut connections = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        connections.push(TcpStream::connect(address).await.with_context(|| format!("connecting to {address}"))?);
    }
    Ok(connections)
}

/// Waits until the server closed every connection; returns when the first one closed.
async fn all_closed(connections: Vec<TcpStream>, what: &str) -> anyhow::Result<Instant> {
    let reads = connections.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 16];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                // The server may say goodbye (an HTTP/2 GOAWAY) before it closes.
                Ok(_) => continue,
            }
        }
    });
    let closed = tokio::time::timeout(CLOSE_DEADLINE, futures::future::join_all(reads))
        .await
        .with_context(|| format!("{what}: idle connections still open after {CLOSE_DEADLINE:?}"))?;
    closed.into_iter().min().context("no connections")
}

/// A real control-plane client: a prober registering.
async fn register(grpc: &str, prober: &str) -> anyhow::Result<()> {
    let mut client = pb::control_plane_client::ControlPlaneClient::connect(format!("http://{grpc}")).await?;
    let identity = pb::ProberIdentity {
        prober_id: prober.into(),
        region: "eu-west".into(),
        node: "n".into(),
        version: "test".into(),
    };
    client.register(pb::RegisterRequest { identity: Some(identity) }).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_real_clients_are_served_meanwhile() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let connections = format!(
        "[connections]\nmax_connections = 1000\nidle_timeout_ms = {IDLE_TIMEOUT_MS}\n\
         header_read_timeout_ms = {HEADER_READ_TIMEOUT_MS}\n"
    );

    let config = write(
        dir.path(),
        "aggregator.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n[store]\nkind = \"memory\"\n{connections}\
             [[checks]]\nid = \"api\"\nurl = \"http://127.0.0.1:1/health\"\n"
        ),
    )?;
    let ready = dir.path().join("aggregator.json");
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let aggregator = start_with_ready_file("mixmon-aggregator", &args, &ready).await?;
    let grpc = aggregator.address("grpc")?;

    let config = write(
        dir.path(),
        "query.toml",
        &format!("listen = \"127.0.0.1:0\"\n[store]\nkind = \"memory\"\n{connections}"),
    )?;
    let ready = dir.path().join("query.json");
    let args = ["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()];
    let query = start_with_ready_file("mixmon-query", &args, &ready).await?;
    let api = query.address("http")?;

    let opened = Instant::now();
    let idle_grpc = open_idle(&grpc).await?;
    let idle_api = open_idle(&api).await?;

    // Served while 1 000 idle connections are held.
    let health = http::get(&format!("http://{api}/healthz")).await?;
    ensure!(health.status == 200, "query API: {} {}", health.status, health.text());
    register(&grpc, "p1").await.context("control plane")?;

    let first_grpc = all_closed(idle_grpc, "aggregator").await?;
    let first_api = all_closed(idle_api, "query API").await?;
    // Not before the timeout: closing early would cut slow but real clients. A connection
    // that never speaks ends at the earlier of its greeting's and its idle deadline.
    let timeout = Duration::from_millis(IDLE_TIMEOUT_MS.min(HEADER_READ_TIMEOUT_MS));
    ensure!(first_grpc.min(first_api) >= opened + timeout, "closed before the timeout");

    // Slow loris: a request (or an HTTP/2 preface) a byte every 500 ms, never idle for the
    // idle timeout, is closed once the header-read timeout passed.
    for (address, greeting) in
        [(&api, &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..]), (&grpc, &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..])]
    {
        let mut loris = TcpStream::connect(address.as_str()).await?;
        let started = Instant::now();
        let mut closed = false;
        for byte in greeting {
            if loris.write_all(&[*byte]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ensure!(
            closed || all_closed(vec![loris], "slow loris").await.is_ok(),
            "{address}: a trickled greeting was kept"
        );
        ensure!(
            started.elapsed() >= Duration::from_millis(HEADER_READ_TIMEOUT_MS),
            "{address}: the slow client was closed before the header-read timeout"
        );
    }

    // And the services still serve new clients afterwards.
    ensure!(http::get(&format!("http://{api}/healthz")).await?.status == 200);
    register(&grpc, "p2").await.context("control plane afterwards")?;
    ensure!(
        !aggregator.process.log_tail(200).contains("panicked") && !query.process.log_tail(200).contains("panicked")
    );
    Ok(())
}
