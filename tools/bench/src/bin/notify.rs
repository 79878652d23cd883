//! `scripts/bench.sh notify`: notification delivery from real processes (redis-server, the
//! simulator, four probers with 5 s check intervals, two aggregator replicas, the query
//! service), to stand-ins for PagerDuty and Slack that check the documented payloads and
//! answer as those APIs do (Slack: 429 with `Retry-After` past one message a second beyond a
//! burst of three), a webhook sink and a real SMTP server (aiosmtpd).
//!
//! 1. Latency, after five minutes of healthy history, with the shipped rules and the
//!    shipped critical route's timers (`group_wait` 0 s): `page_s` (the `edge` endpoint killed to the PagerDuty stand-in accepting the
//!    ServiceDown trigger) and `resolve_notify_s` (the fault cleared to the resolve accepted),
//!    medians of RUNS, and `endpoint_down_pages` (the most PagerDuty triggers one outage
//!    caused, want 1); before them, one region down for 90 s: `region_down_pages` (PagerDuty
//!    triggers, want 1: RegionalFailure) and `region_down_servicedown_pages` (want 0).
//! 2. Crash safety, rules scaled to `for` 1 s: CYCLES fire/resolve cycles over the six
//!    endpoints at once while an aggregator is SIGKILLed every 15-30 s (and restarted) and
//!    Redis (append-only) is restarted once: `lost_notifications` (a cycle without its page, or
//!    a page the webhook never heard of), `missing_resolves` (a page or webhook firing without
//!    its resolve), `duplicate_pages` (a PagerDuty trigger accepted twice for one alert
//!    episode), `duplicate_messages` (a webhook message accepted twice under one idempotency key).
//! 3. A storm: 42 info rules over the six endpoints, all killed and restored: every rule's
//!    instances fire and resolve within seconds. `storm_transitions`, `storm_seconds`,
//!    `storm_lost` (an alert whose firing or resolve never reached the webhook, whose payloads
//!    list every alert), `slack_messages`, `slack_max_per_s` (sustained: the most messages in
//!    any 10 s beyond the burst of three, per second), `slack_max_burst` (the most in any
//!    second), `retry_after_honoured` (1 when Slack's first storm answer was a 429 with
//!    `Retry-After: 2` and no request came before it had passed).
//!
//! Usage: `notify [RUNS] [CYCLES]` (defaults 3 and 100; CYCLES 0 runs part 1 only).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixmon_integration_tests::alerting::{send, Fleet, FleetOptions};
use mixmon_integration_tests::notifications::{pagerduty_events, routing, scaled_rules};
use mixmon_integration_tests::receivers::{Received, Receivers};
use mixmon_integration_tests::smtp::SmtpSink;
use mixmon_integration_tests::unix_ms;
use rand::Rng;
use serde_json::{json, Value};

const POLL: Duration = Duration::from_millis(100);
const SMTP_PASSWORD: &str = "bench-password";
const ENDPOINTS: [&str; 6] = ["us-west", "us-east", "eu-west", "ap", "edge", "api"];
const WARM_UP: Duration = Duration::from_secs(300);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The labels of a PagerDuty trigger (its custom details carry them).
fn labels(event: &Received) -> &Value {
    &event.body["payload"]["custom_details"]["labels"]
}

/// Whether a trigger pages for `target`: its ServiceDown, or its region's RegionalFailure.
fn pages_for(event: &Received, target: &str) -> bool {
    let l = labels(event);
    event.body["event_action"] == "trigger"
        && ((l["alertname"] == "ServiceDown" && l["endpoint"] == target)
            || (l["alertname"] == "RegionalFailure" && l["region"] == target))
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > within {
            bail!("not within {within:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn fleet(receivers: &Receivers, smtp: &SmtpSink, rules: Option<String>) -> anyhow::Result<Fleet> {
    Fleet::start_with(FleetOptions {
        rules,
        routes: Some(routing(&receivers.url, smtp.port, &[], "")),
        aggregators: 2,
        alerting: "external_url = \"http://mixmon.bench\"".into(),
        append_only: true,
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3).max(1);
    let cycles: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(100);
    let smtp = SmtpSink::start(SMTP_PASSWORD).await?;
    std::env::set_var("SMTP_PASSWORD", SMTP_PASSWORD);
    std::env::set_var("SSL_CERT_FILE", &smtp.cert);

    let receivers = Receivers::start().await?;
    let mut latency_fleet = fleet(&receivers, &smtp, None).await?;
    if let Err(error) = latency(&latency_fleet, &receivers, runs).await {
        bail!("{error:#}\n{}", latency_fleet.logs());
    }
    drop(latency_fleet);

    if cycles == 0 {
        return Ok(()); // latency only
    }
    let receivers = Receivers::start().await?;
    let mut crash_fleet = fleet(&receivers, &smtp, Some(scaled_rules(60)?)).await?;
    if let Err(error) = crash_safety(&mut crash_fleet, &receivers, cycles).await {
        bail!("{error:#}\n{}", crash_fleet.logs());
    }
    drop(crash_fleet);

    let receivers = Receivers::start().await?;
    let mut storm_fleet = fleet(&receivers, &smtp, Some(storm_rules())).await?;
    if let Err(error) = storm(&storm_fleet, &receivers).await {
        bail!("{error:#}\n{}", storm_fleet.logs());
    }
    Ok(())
}

async fn latency(fleet: &Fleet, receivers: &Receivers, runs: usize) -> anyhow::Result<()> {
    let admin = fleet.admin.clone();
    // Every prober reporting, and five minutes of healthy history: a fleet younger than that
    // has so few probes in its burn windows that a global front's partial failure (edge and
    // api are served by every region) burns 14.4x within seconds, before RegionalFailure is
    // pending; with an hour of history it takes minutes, long after RegionalFailure fired.
    tokio::time::sleep(WARM_UP).await;
    // One region down: one page.
    let seen = receivers.accepted("/pagerduty").len();
    send("PUT", &format!("{admin}/faults/regions/eu-west"), &json!({"down": true})).await?;
    tokio::time::sleep(Duration::from_secs(90)).await;
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let triggers: Vec<Received> = receivers.accepted("/pagerduty")[seen..]
        .iter()
        .filter(|e| e.body["event_action"] == "trigger")
        .cloned()
        .collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (mut page, mut resolve, mut pages_per_outage) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let seen = receivers.accepted("/pagerduty").len();
        send("PUT", &format!("{admin}/faults/endpoints/edge"), &json!({"down": true})).await?;
        let new_page = || receivers.accepted("/pagerduty")[seen..].iter().find(|e| pages_for(e, "edge")).cloned();
        page.push(wait_until(Duration::from_secs(150), || new_page().is_some()).await.context("no page")?);
        let key = new_page().map(|e| e.body["dedup_key"].clone()).unwrap_or_default();
        send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
        let resolved = || {
            receivers
                .accepted("/pagerduty")
                .iter()
                .any(|e| e.body["event_action"] == "resolve" && e.body["dedup_key"] == key)
        };
        resolve.push(wait_until(Duration::from_secs(60), resolved).await.context("no resolve")?);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let outage = &receivers.accepted("/pagerduty")[seen..];
        pages_per_outage.push(outage.iter().filter(|e| e.body["event_action"] == "trigger").count());
    }
    let service_down =
        triggers.iter().filter(|e| labels(e)["alertname"] == "ServiceDown" && labels(e)["region"] == "eu-west").count();
    let classes: Vec<String> = triggers.iter().map(|e| e.body["payload"]["summary"].to_string()).collect();
    println!("runs: {runs}");
    println!("page_s: {:.1}", median(&mut page));
    println!("page_s_all: {}", page.iter().map(|d| format!("{d:.1}")).collect::<Vec<_>>().join(" "));
    println!("resolve_notify_s: {:.1}", median(&mut resolve));
    println!("resolve_notify_s_all: {}", resolve.iter().map(|d| format!("{d:.1}")).collect::<Vec<_>>().join(" "));
    println!("endpoint_down_pages: {}", pages_per_outage.iter().max().copied().unwrap_or(0));
    println!("region_down_pages: {}", triggers.len());
    println!("region_down_servicedown_pages: {service_down}");
    if triggers.len() != 1 {
        eprintln!("region down paged: {classes:?}");
    }
    Ok(())
}

/// What the webhook heard of each alert episode (fingerprint, start): (firing, resolved).
fn webhook_episodes(receivers: &Receivers, path: &str) -> BTreeMap<(String, String), (bool, bool)> {
    let mut episodes: BTreeMap<(String, String), (bool, bool)> = BTreeMap::new();
    for message in receivers.accepted(path) {
        for alert in message.body["alerts"].as_array().into_iter().flatten() {
            let key = (
                alert["fingerprint"].as_str().unwrap_or_default().into(),
                alert["startsAt"].as_str().unwrap_or_default().into(),
            );
            let entry = episodes.entry(key).or_default();
            match alert["status"].as_str() {
                Some("firing") => entry.0 = true,
                _ => entry.1 = true,
            }
        }
    }
    episodes
}

async fn crash_safety(fleet: &mut Fleet, receivers: &Receivers, cycles: usize) -> anyhow::Result<()> {
    let admin = fleet.admin.clone();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let started = unix_ms();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for target in ENDPOINTS {
        let (admin, receivers, done, failed) = (admin.clone(), receivers.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::SeqCst) < cycles {
                let seen = receivers.accepted("/pagerduty").len();
                let fault = format!("{admin}/faults/endpoints/{target}");
                send("PUT", &fault, &json!({"down": true})).await?;
                let page = || receivers.accepted("/pagerduty")[seen..].iter().find(|e| pages_for(e, target)).cloned();
                let paged = wait_until(Duration::from_secs(90), || page().is_some()).await.is_ok();
                send("PUT", &fault, &json!({})).await?;
                if !paged {
                    failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    continue;
                }
                let key = page().map(|e| e.body["dedup_key"].clone()).unwrap_or_default();
                let resolved = || {
                    receivers
                        .accepted("/pagerduty")
                        .iter()
                        .any(|e| e.body["event_action"] == "resolve" && e.body["dedup_key"] == key)
                };
                let _ = wait_until(Duration::from_secs(90), resolved).await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let pause = rand::rng().random_range(500..3_000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            anyhow::Ok(())
        }));
    }
    // The chaos: an aggregator SIGKILLed every 15-30 s and started again; Redis restarted once.
    let mut kills = 0;
    let mut redis_restarted = false;
    while done.load(std::sync::atomic::Ordering::SeqCst) < cycles {
        let wait = rand::rng().random_range(15_000..30_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if done.load(std::sync::atomic::Ordering::SeqCst) >= cycles {
            break;
        }
        if !redis_restarted && done.load(std::sync::atomic::Ordering::SeqCst) >= cycles / 2 {
            fleet.redis.restart()?;
            redis_restarted = true;
            continue;
        }
        let victim = rand::rng().random_range(0..fleet.aggregators.len());
        kills += 1;
        fleet.kill_and_restart(victim, kills).await?;
    }
    for worker in workers {
        worker.await??;
    }
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    // Whatever is still in an outbox goes out.
    tokio::time::sleep(Duration::from_secs(30)).await;

    // PagerDuty: each ServiceDown / RegionalFailure episode triggered once and resolved.
    let mut triggers: BTreeMap<String, u32> = BTreeMap::new();
    let mut resolves: BTreeSet<String> = BTreeSet::new();
    for (key, action, class, at) in pagerduty_events(receivers) {
        if at < started
            || !(class == "ServiceDown"
                || class == "RegionalFailure"
                || key.contains("/ServiceDown/")
                || key.contains("/RegionalFailure/"))
        {
            continue;
        }
        match action.as_str() {
            "trigger" => *triggers.entry(key).or_default() += 1,
            _ => {
                resolves.insert(key);
            }
        }
    }
    let pages: BTreeSet<String> = triggers.keys().cloned().collect();
    let duplicate_pages: u32 = triggers.values().map(|n| n - 1).sum();
    let unresolved_pages = pages.iter().filter(|k| !resolves.contains(*k)).count();
    // The webhook of the same receiver: every episode PagerDuty got, fired and resolved.
    let episodes = webhook_episodes(receivers, "/webhook/critical");
    let mut webhook_missing = 0;
    let mut webhook_unresolved = 0;
    for key in &pages {
        // mixmon/<alertname>/<fingerprint>/<starts_at_ms>
        let parts: Vec<&str> = key.split('/').collect();
        let (Some(fp), Some(start)) = (parts.get(2), parts.get(3).and_then(|s| s.parse::<i64>().ok())) else {
            continue;
        };
        let start = mixmon_notify::rfc3339(start);
        match episodes.get(&(fp.to_string(), start)) {
            None | Some((false, _)) => webhook_missing += 1,
            Some((true, false)) => webhook_unresolved += 1,
            Some((true, true)) => {}
        }
    }
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    for message in receivers.accepted("/webhook/") {
        if let Some((_, id)) = message.headers.iter().find(|(k, _)| k == "idempotency-key") {
            *ids.entry(id.clone()).or_default() += 1;
        }
    }
    let duplicate_messages: u32 = ids.values().map(|n| n - 1).sum();
    let lost = failed.load(std::sync::atomic::Ordering::SeqCst) + webhook_missing;
    println!("cycles: {}", done.load(std::sync::atomic::Ordering::SeqCst));
    println!("aggregator_kills: {kills}");
    println!("redis_restarts: {}", u8::from(redis_restarted));
    println!("pages: {}", pages.len());
    println!("lost_notifications: {lost}");
    println!("missing_resolves: {}", unresolved_pages + webhook_unresolved);
    println!("duplicate_pages: {duplicate_pages}");
    println!("duplicate_messages: {duplicate_messages}");
    Ok(())
}

/// 42 info rules, each firing for any endpoint that a prober sees down, at once.
fn storm_rules() -> String {
    let mut text = String::from("groups:\n  - name: storm\n    rules:\n");
    for i in 1..=42 {
        text.push_str(&format!(
            "      - alert: Storm{i:02}\n        expr: endpoint_down\n        quorum: {{ regions: 1, failure_threshold: 1, success_threshold: 1 }}\n        labels: {{ severity: info }}\n        annotations:\n          summary: \"storm {i} on {{{{ $labels.endpoint }}}}\"\n          runbook_url: docs/runbooks/service-down.md\n"
        ));
    }
    text
}

async fn storm(fleet: &Fleet, receivers: &Receivers) -> anyhow::Result<()> {
    let admin = fleet.admin.clone();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let started = unix_ms();
    // Slack answers the storm's first message with a 429 and Retry-After: 2.
    receivers.script(
        "/slack/info",
        vec![mixmon_integration_tests::receivers::Scripted {
            status: 429,
            retry_after_s: Some(2),
            body: r#"{"ok":false,"error":"rate_limited","retry_after":2}"#.into(),
        }],
    );
    for endpoint in ENDPOINTS {
        send("PUT", &format!("{admin}/faults/endpoints/{endpoint}"), &json!({"down": true})).await?;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    // Until every storm alert has resolved on the webhook (or two minutes).
    let _ = wait_until(Duration::from_secs(120), || {
        let e = webhook_episodes(receivers, "/webhook/info");
        e.len() >= 42 * ENDPOINTS.len() && e.values().all(|(f, r)| *f && *r)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let history = mixmon_testkit::http::get(&format!(
        "{}/api/v1/alerts/history?from={started}&to={}&limit=10000",
        fleet.query_url,
        unix_ms() + 1
    ))
    .await?
    .json()?;
    let storm: Vec<&Value> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["labels"]["alertname"].as_str().is_some_and(|n| n.starts_with("Storm")))
        .filter(|t| matches!(t["to"].as_str(), Some("firing" | "resolved")))
        .collect();
    let times: Vec<i64> = storm.iter().filter_map(|t| t["at_ms"].as_i64()).collect();
    let span = times.iter().max().zip(times.iter().min()).map_or(0, |(a, b)| a - b);
    // Each storm instance that fired: its firing and its resolve on the webhook.
    let fired: BTreeSet<String> = storm
        .iter()
        .filter(|t| t["to"] == "firing")
        .filter_map(|t| t["fingerprint"].as_str().map(str::to_string))
        .collect();
    let episodes = webhook_episodes(receivers, "/webhook/info");
    let lost = fired
        .iter()
        .filter(|fp| !episodes.iter().any(|((f, _), (firing, resolved))| f == *fp && *firing && *resolved))
        .count();
    let slack: Vec<i64> = receivers.accepted("/slack/info").iter().map(|r| r.at_ms).filter(|&t| t >= started).collect();
    let in_window = |width: i64| {
        slack.iter().map(|&t| slack.iter().filter(|&&u| u >= t && u < t + width).count()).max().unwrap_or(0)
    };
    let (given, violations) = receivers.retry_after();
    println!("storm_transitions: {}", storm.len());
    println!("storm_seconds: {:.1}", span as f64 / 1_000.0);
    println!("storm_lost: {lost}");
    println!("slack_messages: {}", slack.len());
    // Sustained: the most in any 10 s beyond the burst of three Slack allows, per second.
    println!("slack_max_per_s: {:.1}", in_window(10_000).saturating_sub(3) as f64 / 10.0);
    println!("slack_max_burst: {}", in_window(1_000));
    println!("retry_after_given: {given}");
    println!("retry_after_honoured: {}", u8::from(given > 0 && violations == 0));
    Ok(())
}
