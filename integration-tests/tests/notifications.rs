//! Notifications end to end, with real processes: the alerting fleet (redis-server, the
//! simulator, four probers, the aggregator evaluating and notifying, the query service), a
//! real SMTP server (aiosmtpd, STARTTLS and AUTH required), a real Alertmanager that mixmon
//! forwards to, and stand-ins for PagerDuty and Slack that check the documented payloads and
//! answer as those APIs do (scripted: a 500, then a 429 with `Retry-After`).
//!
//! The rules are the shipped ones with `for` divided by six (ServiceDown 10 s, RegionalFailure
//! 5 s), routed as the shipped file routes them.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use mixmon_integration_tests::alerting::{send, wait_for, Fleet, FleetOptions};
use mixmon_integration_tests::notifications::{pagerduty_events, pagerduty_tally, routing, scaled_rules, Alertmanager};
use mixmon_integration_tests::receivers::{Receivers, Scripted};
use mixmon_integration_tests::smtp::{header, SmtpSink};
use mixmon_testkit::{eventually, http};
use serde_json::json;

const SMTP_PASSWORD: &str = "s3cret-smtp-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_resolves_email_slack_and_alertmanager_through_retries() -> anyhow::Result<()> {
    let receivers = Receivers::start().await?;
    let smtp = SmtpSink::start(SMTP_PASSWORD).await?;
    let alertmanager = Alertmanager::start(&format!("{}/webhook/am", receivers.url)).await?;
    // The aggregator reads the SMTP password the operators' way and trusts the test server's
    // certificate through the host's certificate store.
    std::env::set_var("SMTP_PASSWORD", SMTP_PASSWORD);
    std::env::set_var("SSL_CERT_FILE", &smtp.cert);
    // Info alerts also go to a PagerDuty key the API refuses (400) and to a webhook nobody
    // listens on: both shown in /api/v1/receivers, neither holding back the others.
    let unreachable = mixmon_testkit::free_port()?;
    let extra = format!(
        "    pagerduty_configs:\n      - routing_key: not-a-valid-key\n        url: {}/pagerduty-refusing\n",
        receivers.url
    );
    let unreachable = vec![format!("http://127.0.0.1:{unreachable}/hook")];
    let options = FleetOptions {
        rules: Some(scaled_rules(6)?),
        routes: Some(routing(&receivers.url, smtp.port, &unreachable, &extra)),
        aggregators: 1,
        append_only: false,
        alerting: format!(
            "alertmanagers = [\"{}\"]\nexternal_url = \"http://mixmon.test\"\ndashboard_url = \"https://grafana.test/d/mixmon\"",
            alertmanager.url
        ),
    };
    // The first trigger meets a 500, its retry a 429 with Retry-After: 2.
    receivers.script(
        "/pagerduty",
        vec![
            Scripted { status: 500, retry_after_s: None, body: "internal error".into() },
            Scripted { status: 429, retry_after_s: Some(2), body: "{\"status\":\"throttled\"}".into() },
        ],
    );
    let mut fleet = Fleet::start_with(options).await?;
    if let Err(error) = scenario(&fleet, &receivers, &smtp).await {
        let am = alertmanager.process.log_tail(10);
        bail!("{error:#}\n{}\n--- alertmanager:\n{am}\n--- received: {:#?}", fleet.logs(), receivers.received());
    }
    Ok(())
}

async fn scenario(fleet: &Fleet, receivers: &Receivers, smtp: &SmtpSink) -> anyhow::Result<()> {
    let (admin, query_url) = (fleet.admin.clone(), fleet.query_url.clone());
    let probers: Vec<(&str, &str)> = [
        ("ProberJoined", "prober-us-west"),
        ("ProberJoined", "prober-us-east"),
        ("ProberJoined", "prober-eu-west"),
        ("ProberJoined", "prober-ap"),
    ]
    .to_vec();
    wait_for(&query_url, &probers, "firing", Duration::from_secs(60)).await?;
    // The info events reach Slack #alerts-info (one group: they share alertname, region and
    // endpoint, none of which a prober's event has).
    eventually(Duration::from_secs(30), Duration::from_millis(200), || async {
        receivers
            .accepted("/slack/info")
            .iter()
            .any(|r| r.body["text"].as_str().is_some_and(|t| t.contains("and 3 more")))
    })
    .await
    .context("ProberJoined never reached Slack #alerts-info")?;

    // 1. An endpoint down from everywhere: one page, after a 500 and a 429.
    send("PUT", &format!("{admin}/faults/endpoints/edge"), &json!({"down": true})).await?;
    let paged = |class: &'static str| {
        move || async move { pagerduty_events(receivers).iter().any(|(_, action, c, _)| action == "trigger" && c == class) }
    };
    eventually(Duration::from_secs(90), Duration::from_millis(200), paged("ServiceDown")).await.context("no page")?;
    let attempts: Vec<_> = receivers.received().into_iter().filter(|r| r.path == "/pagerduty").collect();
    ensure!(attempts.len() >= 3, "PagerDuty saw {attempts:?}");
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    ensure!(statuses.starts_with(&[500, 429, 202]), "PagerDuty saw {statuses:?}");
    ensure!(attempts[2].at_ms - attempts[1].at_ms >= 2_000, "the retry came before Retry-After: 2");
    ensure!(attempts.iter().all(|r| r.invalid.is_none()), "an invalid PagerDuty event was sent");
    let trigger = receivers
        .accepted("/pagerduty")
        .into_iter()
        .map(|r| r.body)
        .find(|b| b["payload"]["class"] == "ServiceDown")
        .context("no ServiceDown trigger")?;
    ensure!(trigger["routing_key"] == mixmon_integration_tests::notifications::ROUTING_KEY);
    ensure!(trigger["payload"]["severity"] == "critical" && trigger["payload"]["source"] == "edge", "{trigger}");
    ensure!(trigger["payload"]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{trigger}");
    let links = trigger["links"].to_string();
    ensure!(links.contains("runbooks/service-down.md") && links.contains("grafana.test/d/mixmon"), "{links}");
    let (given, violations) = receivers.retry_after();
    ensure!(given >= 1 && violations == 0, "Retry-After given {given}, broken {violations} times");

    // Slack, the webhook, email and the Alertmanager all hear of it too.
    eventually(Duration::from_secs(30), Duration::from_millis(200), || async {
        let slack = receivers.accepted("/slack/critical");
        let webhook = receivers.accepted("/webhook/critical");
        let am = receivers.accepted("/webhook/am");
        let mailed = smtp.messages().map(|m| !m.is_empty()).unwrap_or(false);
        !slack.is_empty()
            && !webhook.is_empty()
            && mailed
            && am.iter().any(|r| r.body.to_string().contains("ServiceDown"))
    })
    .await
    .context("the page did not reach Slack, the webhook, email and the Alertmanager")?;
    eventually(Duration::from_secs(30), Duration::from_millis(200), || async {
        let slack = receivers.accepted("/slack/critical");
        let mails = smtp.messages().unwrap_or_default();
        slack
            .iter()
            .any(|r| r.body["text"].as_str().is_some_and(|t| t.starts_with("[FIRING:1] ServiceDown edge (critical)")))
            && mails.iter().any(|m| m.contains("ServiceDown edge"))
    })
    .await
    .context("ServiceDown did not reach Slack and email")?;
    let webhook = &receivers.accepted("/webhook/critical")[0].body;
    ensure!(webhook["version"] == "4" && webhook["status"] == "firing", "{webhook}");
    let page_mail = smtp.messages()?.into_iter().find(|m| m.contains("ServiceDown edge")).context("no page mail")?;
    ensure!(header(&page_mail, "Subject").as_deref() == Some("[FIRING:1] ServiceDown edge"), "{page_mail}");
    let to = header(&page_mail, "To").unwrap_or_default();
    ensure!(to.contains("devops@aimixer.com") && to.contains("monitoring@aimixer.com"), "To: {to}");
    let root = header(&page_mail, "Message-ID").context("no Message-ID")?;

    // 2. A whole region down: one page (RegionalFailure), none for its endpoint.
    send("PUT", &format!("{admin}/faults/regions/eu-west"), &json!({"down": true})).await?;
    eventually(Duration::from_secs(60), Duration::from_millis(200), paged("RegionalFailure"))
        .await
        .context("no page")?;
    // Longer than ServiceDown's `for` (10 s) and a few evaluations.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let classes: Vec<String> = pagerduty_events(receivers).into_iter().map(|(k, a, _, _)| format!("{a} {k}")).collect();
    ensure!(!classes.iter().any(|c| c.contains("ServiceDown") && c.contains("eu-west")), "{classes:?}");

    // 3. Everything cleared: each page resolves where it was sent.
    send("DELETE", &format!("{admin}/faults"), &json!({})).await?;
    eventually(Duration::from_secs(60), Duration::from_millis(200), || async {
        // The burn-rate pages resolve only as their windows (hours) move on.
        let tally = pagerduty_tally(receivers);
        let pages: Vec<_> = tally.iter().filter(|(k, _)| !k.starts_with("mixmon/ErrorBudget")).collect();
        pages.len() == 2 && pages.iter().all(|(_, (t, r))| *t == 1 && *r == 1) && tally.values().all(|(t, _)| *t == 1)
    })
    .await
    .with_context(|| format!("every trigger once, every resolve once: {:?}", pagerduty_tally(receivers)))?;
    eventually(Duration::from_secs(30), Duration::from_millis(200), || async {
        let resolved_mail = smtp.messages().unwrap_or_default().iter().any(|m| {
            header(m, "Subject").is_some_and(|s| s.starts_with("[RESOLVED]"))
                && m.contains("ServiceDown edge")
                && header(m, "In-Reply-To").as_deref() == Some(root.as_str())
        });
        let slack = receivers
            .accepted("/slack/critical")
            .iter()
            .any(|r| r.body["text"].as_str().is_some_and(|t| t.starts_with("[RESOLVED] ServiceDown edge")));
        let am = receivers
            .accepted("/webhook/am")
            .iter()
            .any(|r| r.body["status"] == "resolved" && r.body.to_string().contains("ServiceDown"));
        resolved_mail && slack && am
    })
    .await
    .context("the resolve did not reach email (threaded), Slack and the Alertmanager")?;

    // 4. What each receiver went through, with no secret in sight (an answer is recorded in
    // the integration's record at the notifier's next tick).
    let receivers_url = format!("{query_url}/api/v1/receivers");
    let pages = pagerduty_events(receivers).len() as u64;
    eventually(Duration::from_secs(10), Duration::from_millis(200), || async {
        let Ok(body) = http::get(&receivers_url).await.and_then(|r| r.json()) else { return false };
        body.as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["integrations"].as_array().cloned().unwrap_or_default())
            .any(|i| i["integration"] == "critical/pagerduty/0" && i["sent"].as_u64() == Some(pages))
    })
    .await
    .with_context(|| format!("critical/pagerduty/0 never counted the {pages} events PagerDuty accepted"))?;
    let response = http::get(&receivers_url).await?;
    let text = response.text();
    ensure!(response.status == 200, "{text}");
    ensure!(
        !text.contains(mixmon_integration_tests::notifications::ROUTING_KEY) && !text.contains(&receivers.url),
        "{text}"
    );
    let body: serde_json::Value = response.json()?;
    let integration = |name: &str| {
        body.as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["integrations"].as_array().cloned().unwrap_or_default())
            .find(|i| i["integration"] == name)
            .with_context(|| format!("{name} not in {text}"))
    };
    let pagerduty = integration("critical/pagerduty/0")?;
    ensure!(
        pagerduty["sent"].as_u64() == Some(pages) && pagerduty["queue_depth"] == 0,
        "{pagerduty}: {pages} accepted"
    );
    let refused = integration("info/pagerduty/0")?;
    ensure!(refused["failed"].as_u64() >= Some(1), "{refused}");
    ensure!(refused["last_error"].as_str().is_some_and(|e| e.starts_with("HTTP 400")), "{refused}");
    let email = integration("critical/email/0")?;
    ensure!(email["sent"].as_u64() >= Some(2) && email["failed"] == 0, "{email}");
    let down = integration("info/webhook/1")?;
    ensure!(down["last_error"].as_str().is_some_and(|e| e.contains("connect")), "{down}");
    ensure!(down["queue_depth"].as_u64() >= Some(1) && down["retrying"].as_u64() >= Some(1), "{down}");
    ensure!(
        !fleet.aggregators[0].process.log_tail(400).contains(SMTP_PASSWORD),
        "a secret reached the aggregator's log"
    );
    Ok(())
}
