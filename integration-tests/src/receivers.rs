//! Stand-ins for the receivers that cannot run here (PagerDuty's Events API v2, Slack incoming
//! webhooks) and a plain webhook sink, on one local HTTP listener. Each path checks the
//! payload its API documents (`shared/research/anchors-alerting.md` §4) and answers as that API
//! does: PagerDuty 202 with `{"status":"success",...}` or 400 with `errors`; Slack 200 `ok`, or
//! 429 with `Retry-After` when a webhook is sent more than one message a second beyond a burst
//! of three. Answers can be scripted per path (a 500, a 429 with `Retry-After`) to exercise
//! every retry path. Every request is recorded with its arrival time.
//!
//! Paths: `/pagerduty[...]`, `/slack/<channel>`, `/webhook/<name>` (Alertmanager's v4 payload).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_BODY: usize = 4 * 1024 * 1024;

/// One request as it arrived, and what was answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub at_ms: i64,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub status: u16,
    /// Why the payload is not what the API documents (answered 400).
    pub invalid: Option<String>,
}

/// A scripted answer: status, `Retry-After` seconds, body.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after_s: Option<u32>,
    pub body: String,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    scripts: BTreeMap<String, VecDeque<Scripted>>,
    /// Slack's limit per webhook path: arrival times of accepted messages.
    slack_sent: BTreeMap<String, Vec<i64>>,
    /// Until when a path answers 429 (after a Retry-After it gave).
    slack_blocked_until: BTreeMap<String, i64>,
    /// Requests that arrived before a Retry-After had passed.
    retry_after_violations: u32,
    retry_after_given: u32,
}

#[derive(Clone)]
pub struct Receivers {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receivers {
    pub async fn start() -> anyhow::Result<Receivers> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Ok(Receivers { url, state })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next requests to `path` get these answers, in order, before the normal ones.
    pub fn script(&self, path: &str, answers: Vec<Scripted>) {
        self.lock().scripts.entry(path.to_string()).or_default().extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Accepted requests to paths starting with `prefix`.
    pub fn accepted(&self, prefix: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path.starts_with(prefix) && (200..300).contains(&r.status)).collect()
    }

    /// (Retry-Afters given, requests that came before one had passed).
    pub fn retry_after(&self) -> (u32, u32) {
        let state = self.lock();
        (state.retry_after_given, state.retry_after_violations)
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, head) = loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the headers");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break (i + 4, String::from_utf8_lossy(&buffer[..i]).into_owned());
        }
        anyhow::ensure!(buffer.len() < 64 * 1024, "headers too long");
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    anyhow::ensure!(length <= MAX_BODY, "body too large");
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed in the body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    let raw = &buffer[head_end..head_end + length];
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let now = crate::unix_ms();
    let (status, retry_after, answer, invalid) = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        answer(&mut state, &path, &body, now)
    };
    state.lock().unwrap_or_else(|p| p.into_inner()).received.push(Received {
        path,
        at_ms: now,
        headers,
        body,
        status,
        invalid,
    });
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
    let content_type = if answer.starts_with('{') { "application/json" } else { "text/plain" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{answer}",
        answer.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

type Answer = (u16, Option<u32>, String, Option<String>);

fn answer(state: &mut State, path: &str, body: &Value, now: i64) -> Answer {
    // A request before a Retry-After this path gave has passed breaks the receiver's rule.
    if let Some(&until) = state.slack_blocked_until.get(path) {
        if now < until {
            state.retry_after_violations += 1;
        }
    }
    let scripted = state.scripts.get_mut(path).and_then(VecDeque::pop_front);
    if let Some(s) = scripted {
        if let Some(seconds) = s.retry_after_s {
            state.retry_after_given += 1;
            state.slack_blocked_until.insert(path.to_string(), now + i64::from(seconds) * 1_000);
        }
        return (s.status, s.retry_after_s, s.body, None);
    }
    if path.starts_with("/pagerduty") {
        return match pagerduty_problem(body) {
            None => {
                let key = body["dedup_key"].as_str().unwrap_or_default();
                (
                    202,
                    None,
                    json!({"status": "success", "message": "Event processed", "dedup_key": key}).to_string(),
                    None,
                )
            }
            Some(problem) => {
                let answer =
                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": [problem]});
                (400, None, answer.to_string(), Some(problem))
            }
        };
    }
    if path.starts_with("/slack/") {
        if let Some(problem) = slack_problem(body) {
            return (400, None, "invalid_payload".into(), Some(problem));
        }
        // One message a second per webhook, bursts of three (Slack's documented limit).
        let sent = state.slack_sent.entry(path.to_string()).or_default();
        let in_last_second = sent.iter().filter(|&&t| t > now - 1_000).count();
        let in_last_three = sent.iter().filter(|&&t| t > now - 3_000).count();
        if in_last_second >= 3 || in_last_three >= 5 {
            state.retry_after_given += 1;
            state.slack_blocked_until.insert(path.to_string(), now + 1_000);
            return (429, Some(1), json!({"ok": false, "error": "rate_limited", "retry_after": 1}).to_string(), None);
        }
        sent.push(now);
        return (200, None, "ok".into(), None);
    }
    if path.starts_with("/webhook/") {
        if body["version"] != "4" || !body["alerts"].is_array() {
            return (400, None, "not an Alertmanager v4 payload".into(), Some("not version 4".into()));
        }
        return (200, None, String::new(), None);
    }
    (404, None, "no such receiver".into(), None)
}

/// What the Events API v2 refuses (its required fields, enums and limits).
pub fn pagerduty_problem(event: &Value) -> Option<String> {
    let key = event["routing_key"].as_str().unwrap_or_default();
    if key.len() != 32 {
        return Some(format!("routing_key must be a 32 character integration key, got {} characters", key.len()));
    }
    let dedup = event["dedup_key"].as_str();
    if dedup.is_some_and(|d| d.len() > 255) {
        return Some("dedup_key longer than 255".into());
    }
    match event["event_action"].as_str() {
        Some("trigger") => {
            let payload = &event["payload"];
            let summary = payload["summary"].as_str().unwrap_or_default();
            if summary.is_empty() || summary.chars().count() > 1024 {
                return Some("payload.summary is required, at most 1024 characters".into());
            }
            if payload["source"].as_str().unwrap_or_default().is_empty() {
                return Some("payload.source is required".into());
            }
            if !matches!(payload["severity"].as_str(), Some("critical" | "error" | "warning" | "info")) {
                return Some("payload.severity must be critical, error, warning or info".into());
            }
            if let Some(ts) = payload["timestamp"].as_str() {
                if chrono_like_iso8601(ts).is_none() {
                    return Some(format!("payload.timestamp {ts:?} is not ISO 8601"));
                }
            }
            if event.to_string().len() > 512 * 1024 {
                return Some("event larger than 512 KB".into());
            }
            None
        }
        Some("resolve" | "acknowledge") if dedup.is_some() => None,
        Some("resolve" | "acknowledge") => Some("dedup_key is required to resolve".into()),
        other => Some(format!("event_action {other:?} is not trigger, acknowledge or resolve")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS(.fff)Z`, which is what mixmon sends.
fn chrono_like_iso8601(text: &str) -> Option<()> {
    let bytes = text.as_bytes();
    let ok = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && text.ends_with('Z');
    ok.then_some(())
}

/// What Slack refuses, or what it would show without: a message needs `text` (the
/// notification fallback) and blocks of known types within Slack's limits.
pub fn slack_problem(body: &Value) -> Option<String> {
    let text = body["text"].as_str().unwrap_or_default();
    if text.is_empty() {
        return Some("no top-level text (the notification fallback)".into());
    }
    let blocks = body["blocks"].as_array()?;
    if blocks.len() > 50 {
        return Some("more than 50 blocks".into());
    }
    for block in blocks {
        match block["type"].as_str() {
            Some("header") if block["text"]["text"].as_str().is_some_and(|t| t.chars().count() <= 150) => {}
            Some("section") if block["text"]["text"].as_str().is_some_and(|t| t.chars().count() <= 3000) => {}
            Some("context") if block["elements"].as_array().is_some_and(|e| e.len() <= 10) => {}
            other => return Some(format!("block {other:?} is not valid")),
        }
    }
    None
}
