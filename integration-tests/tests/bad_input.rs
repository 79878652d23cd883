//! Bad input from outside gets a clear error and never a panic, and never takes a service
//! down: malformed config files, an unreachable Redis at start, garbage HTTP requests to the
//! query API, garbage on the gRPC control plane.

use anyhow::{ensure, Context};
use mixmon_integration_tests::{run_to_exit, start_with_ready_file, write};
use mixmon_proto::pb;
use mixmon_testkit::http;
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// A port nothing listens on (bound, then released).
fn dead_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One rule for every service: beyond loopback, no listener without a token, unless the
/// operator says `--insecure-no-auth`; a token from both places, or a blank one, is refused.
#[test]
fn no_service_listens_beyond_loopback_without_a_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (binary, listener) in [("mixmon-aggregator", "the control plane"), ("mixmon-query", "the query API")] {
        let (code, log) = run_to_exit(binary, &["--listen".into(), "0.0.0.0:0".into()])?;
        ensure!(code != 0, "{binary} listened on 0.0.0.0 without a token:\n{log}");
        ensure!(
            log.contains(&format!("refusing to serve {listener} on 0.0.0.0:")) && log.contains("--insecure-no-auth"),
            "{binary}: {log}"
        );
        let token = write(dir.path(), "token", "t0ken\n")?;
        let config = write(
            dir.path(),
            &format!("{binary}.toml"),
            &format!("[auth]\ntoken = \"inline\"\ntoken_file = \"{}\"\n", token.display()),
        )?;
        let (code, log) = run_to_exit(binary, &["--config".into(), config.display().to_string()])?;
        ensure!(code != 0 && log.contains("set only one of auth.token and auth.token_file"), "{binary}: {log}");
    }
    Ok(())
}

#[test]
fn a_malformed_config_is_refused_naming_the_file_and_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write(dir.path(), "aggregator.toml", "[[checks]]\nid = \"api\"\nurll = \"http://x\"\n")?;
    let (code, log) = run_to_exit("mixmon-aggregator", &["--config".into(), config.display().to_string()])?;
    ensure!(code != 0, "exit code {code}");
    ensure!(log.contains("aggregator.toml") && log.contains("urll"), "unclear error:\n{log}");

    let config = write(dir.path(), "prober.toml", "[identity]\nregion = \"not a region\"\n")?;
    let (code, log) = run_to_exit("mixmon-prober", &["--config".into(), config.display().to_string()])?;
    ensure!(code != 0 && log.contains("identity.region"), "exit {code}:\n{log}");

    let config = write(dir.path(), "query.toml", "listen = 8090\n")?;
    let (code, log) = run_to_exit("mixmon-query", &["--config".into(), config.display().to_string()])?;
    ensure!(code != 0 && log.contains("query.toml") && log.contains("listen"), "exit {code}:\n{log}");
    Ok(())
}

#[test]
fn a_catalogue_with_several_mistakes_lists_every_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write(
        dir.path(),
        "mixmon.toml",
        "[[checks]]\nid = \"a\"\nurl = \"ftp://x\"\n[[checks]]\nid = \"a\"\nurl = \"http://x\"\ntimeout_ms = 0\n",
    )?;
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--config".into(), config.display().to_string()])?;
    ensure!(code != 0, "exit {code}");
    for needle in ["checks[0]", "ftp://x", "checks[1]", "timeout", "duplicate check id a"] {
        ensure!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    Ok(())
}

#[test]
fn a_prober_config_is_validated_like_the_prober_starts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = write(
        dir.path(),
        "prober.toml",
        "[identity]\nregion = \"eu-west\"\nnode = \"node-a\"\n\
         [scrape]\ninterval_ms = 15000\ntargets = [{ pod = \"mixer-0\", url = \"http://127.0.0.1:9201/metrics\" }]\n\
         [node]\ninterval_ms = 15000\n",
    )?;
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--prober".into(), good.display().to_string()])?;
    ensure!(code == 0, "exit {code}:\n{log}");
    // A mistake in an observer section is named by its key and the file.
    let bad = write(
        dir.path(),
        "bad-prober.toml",
        "[identity]\nregion = \"eu-west\"\nnode = \"node-a\"\n[scrape]\ninterval_ms = 0\ntargets = []\n",
    )?;
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--prober".into(), bad.display().to_string()])?;
    ensure!(code != 0 && log.contains("bad-prober.toml") && log.contains("scrape.interval_ms"), "exit {code}:\n{log}");
    let pods =
        write(dir.path(), "pods.toml", "[identity]\nregion = \"eu-west\"\nnode = \"n\"\n[pods]\ninterval_ms = 1000\n")?;
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--prober".into(), pods.display().to_string()])?;
    ensure!(code != 0 && log.contains("scrape.kubernetes"), "exit {code}:\n{log}");
    Ok(())
}

#[test]
fn an_unreachable_redis_at_start_is_a_clear_error_that_hides_the_password() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("redis://:hunter2@127.0.0.1:{}", dead_port()?);
    let store = format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\n");
    for (binary, name) in [("mixmon-aggregator", "aggregator.toml"), ("mixmon-query", "query.toml")] {
        let config = write(dir.path(), name, &format!("listen = \"127.0.0.1:0\"\n{store}"))?;
        let (code, log) = run_to_exit(binary, &["--config".into(), config.display().to_string()])?;
        ensure!(code != 0, "{binary}: exit {code}");
        ensure!(log.contains("127.0.0.1") && log.to_lowercase().contains("redis"), "{binary}: unclear error:\n{log}");
        ensure!(!log.contains("hunter2"), "{binary} logged the password:\n{log}");
    }
    Ok(())
}

#[tokio::test]
async fn the_query_api_answers_garbage_with_json_errors_and_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ready = dir.path().join("query.json");
    let query = start_with_ready_file(
        "mixmon-query",
        &["--listen".into(), "127.0.0.1:0".into(), "--ready-file".into(), ready.display().to_string()],
        &ready,
    )
    .await?;
    let base = format!("http://{}", query.address("http")?);
    let json_header = [("Content-Type", "application/json")];
    let garbage: Vec<(&str, &str, Vec<u8>)> = vec![
        ("POST", "/query", b"{not json".to_vec()),
        ("POST", "/query", b"[1,2,3]".to_vec()),
        ("POST", "/query", vec![0xff, 0xfe, 0x00, 0x01]),
        ("POST", "/query", br#"{"targets":[{"refId":"A","target":"no_such_metric"}]}"#.to_vec()),
        ("POST", "/query", br#"{"range":{"from":"yesterday","to":"now"},"targets":[{"refId":"A","target":"uptime"}]}"#.to_vec()),
        // (A huge range is clamped to 31 days and answered, not refused: a range backwards is.)
        ("POST", "/query", br#"{"range":{"from":99999999999999,"to":0},"targets":[{"refId":"A","target":"uptime"}]}"#.to_vec()),
        ("POST", "/query", br#"{"targets":[{"refId":"A","target":"uptime"}],"filters":[{"key":"region","operator":"~~","value":"x"}]}"#.to_vec()),
        ("POST", "/variable", b"\"just a string\"".to_vec()),
        ("GET", "/no/such/route", Vec::new()),
        ("POST", "/query", vec![b'['; 2_000_000]),
    ];
    for (method, path, body) in garbage {
        let response = http::request(method, &format!("{base}{path}"), &json_header, Some(&body)).await?;
        ensure!(
            (400..500).contains(&response.status),
            "{method} {path}: status {}: {}",
            response.status,
            response.text()
        );
        let error = response.json().with_context(|| format!("{method} {path}: not JSON: {}", response.text()))?;
        ensure!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: no message: {error}");
    }
    let (status, body) = http::post_json(&format!("{base}/query"), &json!({"targets": []}), None).await?;
    ensure!(status == 200 && body == json!([]), "still serving: {status} {body}");
    ensure!(http::get(&base).await?.status == 200);
    ensure!(!query.process.log_tail(200).contains("panicked"));
    Ok(())
}

#[tokio::test]
async fn the_control_plane_refuses_garbage_and_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write(
        dir.path(),
        "aggregator.toml",
        "listen = \"127.0.0.1:0\"\n[[checks]]\nid = \"api\"\nurl = \"http://127.0.0.1:1/health\"\n",
    )?;
    let ready = dir.path().join("aggregator.json");
    let aggregator = start_with_ready_file(
        "mixmon-aggregator",
        &["--config".into(), config.display().to_string(), "--ready-file".into(), ready.display().to_string()],
        &ready,
    )
    .await?;
    let address = aggregator.address("grpc")?;

    // Raw bytes that are not HTTP/2 at all.
    let mut socket = tokio::net::TcpStream::connect(&address).await?;
    socket.write_all(b"GET / HTTP/1.0\r\n\r\n\x00\x01garbage").await?;
    drop(socket);

    let mut client = pb::control_plane_client::ControlPlaneClient::connect(format!("http://{address}")).await?;
    let identity = pb::ProberIdentity {
        prober_id: "p1".into(),
        region: "eu-west".into(),
        node: "n".into(),
        version: "test".into(),
    };

    let bad = client
        .register(pb::RegisterRequest {
            identity: Some(pb::ProberIdentity { region: "bad region".into(), ..identity.clone() }),
        })
        .await;
    let status = bad.err().context("a bad identity was accepted")?;
    ensure!(status.code() == tonic::Code::InvalidArgument && status.message().contains("region"), "{status:?}");

    // A report stream that does not start with hello.
    let batch = |seq: u64, results: Vec<pb::ProbeResult>| pb::ReportRequest {
        msg: Some(pb::report_request::Msg::Batch(pb::ResultBatch { seq, results, ..Default::default() })),
    };
    let mut acks = client.report(tokio_stream::iter(vec![batch(1, Vec::new())])).await?.into_inner();
    let refused = acks.message().await.err().context("a stream without hello was accepted")?;
    ensure!(refused.code() == tonic::Code::InvalidArgument && refused.message().contains("hello"), "{refused:?}");

    // A prober id that never registered.
    let hello = pb::ReportRequest {
        msg: Some(pb::report_request::Msg::Hello(pb::ReportHello { identity: Some(identity.clone()), epoch: 7 })),
    };
    let mut acks = client.report(tokio_stream::iter(vec![hello])).await?.into_inner();
    let refused = acks.message().await.err().context("a report from an unknown prober was accepted")?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition && refused.message().contains("unknown prober id p1"),
        "{refused:?}"
    );
    client.register(pb::RegisterRequest { identity: Some(identity.clone()) }).await?;

    // A message above the size limit (16 MiB) ends that stream with a clear status.
    let huge = pb::ProbeResult { check_id: "api".into(), error: "x".repeat(17 * 1024 * 1024), ..Default::default() };
    let hello = pb::ReportRequest {
        msg: Some(pb::report_request::Msg::Hello(pb::ReportHello { identity: Some(identity.clone()), epoch: 6 })),
    };
    let mut acks = client.report(tokio_stream::iter(vec![hello, batch(1, vec![huge])])).await?.into_inner();
    let refused = acks.message().await.err().context("an oversized message was accepted")?;
    ensure!(
        matches!(refused.code(), tonic::Code::ResourceExhausted | tonic::Code::OutOfRange | tonic::Code::Internal)
            && refused.message().to_lowercase().contains("message"),
        "{refused:?}"
    );

    // Hello, then garbage results, a sequence number going backwards, an oversized batch.
    let garbage_result = pb::ProbeResult { check_id: "no such check!".into(), success: true, ..Default::default() };
    let hello = pb::ReportRequest {
        msg: Some(pb::report_request::Msg::Hello(pb::ReportHello { identity: Some(identity.clone()), epoch: 7 })),
    };
    let oversized = vec![pb::ProbeResult::default(); 5_001];
    let messages = vec![hello, batch(5, vec![garbage_result]), batch(4, Vec::new()), batch(6, oversized)];
    let mut acks = client.report(tokio_stream::iter(messages)).await?.into_inner();
    let mut answers = Vec::new();
    while let Some(ack) = acks.message().await? {
        answers.push(ack.msg);
    }
    ensure!(
        matches!(answers.first(), Some(Some(pb::report_ack::Msg::AckedSeq(5)))),
        "garbage results are refused one by one, the batch is acknowledged: {answers:?}"
    );
    ensure!(
        matches!(answers.get(1), Some(Some(pb::report_ack::Msg::Rejected(r))) if r.seq == 4 && r.reason.contains("not above")),
        "{answers:?}"
    );
    ensure!(
        matches!(answers.get(2), Some(Some(pb::report_ack::Msg::Rejected(r))) if r.seq == 6 && r.reason.contains("exceed")),
        "{answers:?}"
    );

    // Still serving.
    let registered = client.register(pb::RegisterRequest { identity: Some(identity) }).await?.into_inner();
    ensure!(registered.max_batch_results == 5_000, "{registered:?}");
    ensure!(!aggregator.process.log_tail(200).contains("panicked"));
    Ok(())
}

#[test]
fn a_rules_file_with_every_kind_of_mistake_is_refused_line_by_line_by_validate_and_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rules = write(
        dir.path(),
        "rules.yaml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: latncy_p95[1m] > 100\n        scope: endpoint\n\
         \x20       fro: 1m\n        labels: { severity: critical }\n      - alert: B\n        expr: endpoint_down\n\
         \x20       for: -1m\n        labels: { severity: critical }\n        annotations:\n          summary: \"{{ $value \"\n",
    )?;
    let expected = [
        "rules.yaml:5:15: unknown SLI \"latncy_p95\"",
        "rules.yaml:7:9: unknown key \"fro\"",
        "rules.yaml:11:14: for: \"-1m\" is negative",
        "rules.yaml:14:20: annotation summary: template error",
    ];
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--rules".into(), rules.display().to_string()])?;
    ensure!(code != 0, "exit {code}:\n{log}");
    for needle in expected {
        ensure!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    // The aggregator refuses the same file at start, with the same messages.
    let config = write(
        dir.path(),
        "aggregator.toml",
        &format!("[store]\nkind = \"memory\"\n[alerting]\nrules_file = \"{}\"\n", rules.display()),
    )?;
    let (code, log) = run_to_exit("mixmon-aggregator", &["--config".into(), config.display().to_string()])?;
    ensure!(code != 0, "exit {code}:\n{log}");
    for needle in expected {
        ensure!(log.contains(needle), "{needle:?} missing at start:\n{log}");
    }
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules.yaml");
    let (code, log) = run_to_exit("mixmon", &["validate".into(), "--rules".into(), shipped.display().to_string()])?;
    ensure!(code == 0 && log.contains("ok, 17 rules"), "exit {code}:\n{log}");
    Ok(())
}
