#![allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
//! The alerts the evaluator keeps in the store, as the query service serves them: mixmon's
//! `/api/v1/alerts` and history, Alertmanager's `/api/v2/alerts` (flags and matchers as amtool
//! sends them), `/api/v2/alerts/groups`, `/api/v2/status`, and Grafana annotations.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{call, iso, post, router};
use mixmon_model::alert::{AlertInstance, AlertState, AlertTransition, LabelSet};
use mixmon_store::{AlertStore, MemoryStore};
use serde_json::{json, Value};

const T0: i64 = 1_800_000_000_000;

fn instance(name: &str, endpoint: &str, state: AlertState, severity: &str) -> AlertInstance {
    AlertInstance {
        labels: LabelSet::new().with("alertname", name).with("endpoint", endpoint).with("severity", severity),
        annotations: BTreeMap::from([("summary".into(), format!("{endpoint} {name}"))]),
        state,
        value: Some(3.0),
        active_at_ms: Some(T0),
        fired_at_ms: (state == AlertState::Firing || state == AlertState::Resolved).then_some(T0 + 60_000),
        resolved_at_ms: (state == AlertState::Resolved).then_some(T0 + 120_000),
        last_bad_ms: Some(T0 + 60_000),
        updated_at_ms: T0 + 60_000,
        event: false,
        inhibited_by: Vec::new(),
        silenced_by: Vec::new(),
    }
}

async fn store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let lease = store.acquire_lease("test", 60_000, T0).await.unwrap().unwrap();
    let edge = instance("ServiceDown", "edge", AlertState::Firing, "critical");
    let regional = instance("RegionalFailure", "eu-west", AlertState::Firing, "critical");
    let mut muted = instance("ServiceDown", "eu-west", AlertState::Firing, "critical");
    muted.inhibited_by = vec![regional.fingerprint()];
    let pending = instance("HighLatency", "api", AlertState::Pending, "critical");
    let mut resolved = instance("AudioPeak", "ap", AlertState::Resolved, "warning");
    resolved.updated_at_ms = T0 + 120_000;
    let fired = |i: &AlertInstance, from: AlertState, at: i64| {
        let mut firing = i.clone();
        firing.state = AlertState::Firing;
        AlertTransition::of(&firing, from, at)
    };
    let transitions = vec![
        fired(&edge, AlertState::Pending, T0 + 60_000),
        fired(&resolved, AlertState::Pending, T0 + 60_000),
        AlertTransition::of(&resolved, AlertState::Firing, T0 + 120_000),
    ];
    let all = [edge, regional, muted, pending, resolved];
    store.commit_alerts(&lease, &all, &[], &transitions, T0 + 120_000).await.unwrap();
    store
}

fn names(reply: &Value) -> Vec<String> {
    reply
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!("{}{{{}}}", a["labels"]["alertname"].as_str().unwrap(), a["labels"]["endpoint"].as_str().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn alertmanagers_v2_api_lists_the_firing_alerts_with_amtools_flags_and_matchers() {
    let router = router(store().await);
    let all = call(&router, "GET", "/api/v2/alerts", "", None).await;
    assert_eq!(all.status, 200);
    assert_eq!(names(&all.json), ["RegionalFailure{eu-west}", "ServiceDown{edge}", "ServiceDown{eu-west}"]);
    let edge = &all.json[1];
    assert_eq!(edge["status"]["state"], "active");
    assert_eq!(edge["startsAt"], iso(T0 + 60_000));
    assert_eq!(edge["receivers"], json!([{"name": "mixmon"}]));
    assert_eq!(edge["fingerprint"].as_str().unwrap().len(), 16);
    let muted = &all.json[2];
    assert_eq!(muted["status"]["state"], "suppressed");
    assert_eq!(muted["status"]["inhibitedBy"], json!([all.json[0]["fingerprint"]]));

    let unmuted = call(&router, "GET", "/api/v2/alerts?inhibited=false", "", None).await;
    assert_eq!(names(&unmuted.json), ["RegionalFailure{eu-west}", "ServiceDown{edge}"]);
    let filtered = call(
        &router,
        "GET",
        "/api/v2/alerts?filter=alertname%3D%22ServiceDown%22&filter=endpoint%3D~%22e.*%22",
        "",
        None,
    )
    .await;
    assert_eq!(names(&filtered.json), ["ServiceDown{edge}", "ServiceDown{eu-west}"]);
    let bad = call(&router, "GET", "/api/v2/alerts?filter=endpoint%3D~%22(%22", "", None).await;
    assert_eq!(bad.status, 400, "{:?}", bad.json);
    let bad = call(&router, "GET", "/api/v2/alerts?active=maybe", "", None).await;
    assert_eq!(bad.status, 400);

    let groups = call(&router, "GET", "/api/v2/alerts/groups", "", None).await;
    let by_name: Vec<(String, usize)> = groups
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["labels"]["alertname"].as_str().unwrap().to_string(), g["alerts"].as_array().unwrap().len()))
        .collect();
    assert_eq!(by_name, [("RegionalFailure".to_string(), 1), ("ServiceDown".to_string(), 2)]);
    let status = call(&router, "GET", "/api/v2/status", "", None).await;
    assert!(status.json["versionInfo"]["version"].as_str().unwrap().starts_with("mixmon-"));
    assert_eq!(status.json["cluster"]["status"], "disabled");
}

#[tokio::test]
async fn v1_lists_every_kept_instance_and_the_history_newest_first() {
    let router = router(store().await);
    let all = call(&router, "GET", "/api/v1/alerts", "", None).await;
    let states: Vec<(String, String)> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["labels"]["alertname"].as_str().unwrap().to_string(), a["state"].as_str().unwrap().to_string()))
        .collect();
    assert!(states.contains(&("HighLatency".into(), "pending".into())), "{states:?}");
    assert!(states.contains(&("AudioPeak".into(), "resolved".into())), "{states:?}");
    assert_eq!(states.len(), 5);

    let path = format!("/api/v1/alerts/history?from={}&to={}", T0, T0 + 200_000);
    let history = call(&router, "GET", &path, "", None).await;
    let moves: Vec<(String, String, String)> = history
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_string();
            (s("alertname"), s("from"), s("to"))
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("AudioPeak".into(), "firing".into(), "resolved".into()),
            ("AudioPeak".into(), "pending".into(), "firing".into()),
            ("ServiceDown".into(), "pending".into(), "firing".into()),
        ]
    );
    let one = call(&router, "GET", &format!("{path}&limit=1&filter=alertname%3D%22ServiceDown%22"), "", None).await;
    assert_eq!(one.json.as_array().unwrap().len(), 1, "the limit counts what matches");
    assert_eq!(one.json[0]["alertname"], "ServiceDown");
    let service = call(&router, "GET", &format!("{path}&filter=alertname%3D%22ServiceDown%22"), "", None).await;
    assert_eq!(service.json.as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=10001", "from=yesterday", &format!("from={}&to={}", T0 + 5, T0)] {
        let reply = call(&router, "GET", &format!("/api/v1/alerts/history?{bad}"), "", None).await;
        assert_eq!(reply.status, 400, "{bad}: {:?}", reply.json);
    }
}

#[tokio::test]
async fn grafana_annotations_are_firing_episodes() {
    let router = router(store().await);
    let body = json!({
        "range": {"from": iso(T0), "to": iso(T0 + 200_000)},
        "targets": [{"refId": "Anno", "target": "alerts", "payload": {"filter": "severity=\"warning\""}}],
    })
    .to_string();
    let reply = post(&router, "/query", &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    let table = &reply.json[0];
    assert_eq!(table["refId"], "Anno");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], json!(T0 + 60_000));
    assert_eq!(rows[0][1], json!(T0 + 120_000), "the episode ends where it resolved");
    assert_eq!(rows[0][2], "AudioPeak warning");
    let bad = json!({"targets": [{"refId": "Anno", "target": "cpu"}]}).to_string();
    assert_eq!(post(&router, "/query", &bad).await.status, 400);
}

#[tokio::test]
async fn silences_in_alertmanagers_api() {
    let router = router(Arc::new(MemoryStore::new()));
    let now = chrono::Utc::now().timestamp_millis();
    let silence = |matchers: Value, starts: i64, ends: i64| {
        json!({
            "matchers": matchers,
            "startsAt": iso(starts),
            "endsAt": iso(ends),
            "createdBy": "sre@aimixer.com",
            "comment": "disk swap on node-ap-0",
        })
        .to_string()
    };
    let disk = json!([{"name": "alertname", "value": "HighDiskUsage", "isRegex": false, "isEqual": true}]);
    let created = post(&router, "/api/v2/silences", &silence(disk.clone(), now - 60_000, now + 3_600_000)).await;
    assert_eq!(created.status, 200, "{:?}", created.json);
    let id = created.json["silenceID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID-shaped id: {id}");
    let one = call(&router, "GET", &format!("/api/v2/silence/{id}"), "", None).await;
    assert_eq!(one.json["status"]["state"], "active");
    assert_eq!(one.json["comment"], "disk swap on node-ap-0");
    let later = post(&router, "/api/v2/silences", &silence(disk.clone(), now + 3_600_000, now + 7_200_000)).await;
    let pending = later.json["silenceID"].as_str().unwrap().to_string();
    let listed = call(&router, "GET", "/api/v2/silences", "", None).await;
    let states: Vec<(String, String)> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"]["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(states, [(id.clone(), "active".to_string()), (pending.clone(), "pending".to_string())]);
    let filtered = call(&router, "GET", "/api/v2/silences?filter=alertname%3D%22ServiceDown%22", "", None).await;
    assert!(filtered.json.as_array().unwrap().is_empty());

    for (body, why) in [
        (silence(json!([]), now, now + 60_000), "no matchers"),
        (silence(json!([{"name": "a", "value": ".*", "isRegex": true}]), now, now + 60_000), "mutes everything"),
        (silence(json!([{"name": "a", "value": "(", "isRegex": true}]), now, now + 60_000), "bad regex"),
        (silence(disk.clone(), now + 60_000, now), "ends before it starts"),
        (silence(disk.clone(), now - 120_000, now - 60_000), "ended already"),
        (json!({"matchers": disk, "startsAt": iso(now), "endsAt": iso(now + 60_000), "createdBy": "", "comment": ""}).to_string(), "no author"),
        ("{\"matchers\": 3}".to_string(), "garbage"),
    ] {
        let reply = post(&router, "/api/v2/silences", &body).await;
        assert_eq!(reply.status, 400, "{why}: {:?}", reply.json);
    }

    let expired = call(&router, "DELETE", &format!("/api/v2/silence/{id}"), "", None).await;
    assert_eq!(expired.status, 200);
    let one = call(&router, "GET", &format!("/api/v2/silence/{id}"), "", None).await;
    assert_eq!(one.json["status"]["state"], "expired");
    assert_eq!(call(&router, "DELETE", "/api/v2/silence/nope", "", None).await.status, 404);
    assert_eq!(call(&router, "GET", "/api/v2/silence/nope", "", None).await.status, 404);
}

#[tokio::test]
async fn setting_a_silence_needs_the_token() {
    let options =
        mixmon_query::QueryOptions { auth_token: Some(mixmon_config::Secret::new("s3cret")), ..Default::default() };
    let router = mixmon_query::app(Arc::new(MemoryStore::new()), options);
    let now = chrono::Utc::now().timestamp_millis();
    let body = json!({
        "matchers": [{"name": "alertname", "value": "X", "isRegex": false}],
        "startsAt": iso(now), "endsAt": iso(now + 60_000), "createdBy": "a", "comment": "b",
    })
    .to_string();
    assert_eq!(call(&router, "POST", "/api/v2/silences", &body, None).await.status, 403);
    assert_eq!(call(&router, "POST", "/api/v2/silences", &body, Some("s3cret")).await.status, 200);
}
