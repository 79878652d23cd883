//! Email through lettre: STARTTLS by default (`require_tls`, Alertmanager's default), implicit
//! TLS on port 465, AUTH when `auth_username` is set, the password from its file or
//! `SMTP_PASSWORD`. The server's certificate is checked against the host's store (and
//! `SSL_CERT_FILE`). Messages are threaded (`libs/notify/src/email.rs`).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mixmon_model::alert::dispatch::FlushReason;
use mixmon_notify::retry::Answer;
use mixmon_rules::routes::EmailConfig;
use mixmon_store::Delivery;

const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

fn refused(reason: impl Into<String>) -> Answer {
    Answer::Refused { reason: reason.into() }
}

pub async fn send(config: &EmailConfig, delivery: &Delivery) -> Answer {
    let Some((host, port)) = config.smarthost.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    else {
        return refused(format!("smarthost {:?} is not host:port", config.smarthost));
    };
    let parameters = match TlsParameters::new(host.to_string()) {
        Ok(p) => p,
        Err(e) => return refused(format!("TLS for {host}: {e}")),
    };
    let tls = if port == 465 {
        Tls::Wrapper(parameters)
    } else if config.require_tls {
        Tls::Required(parameters)
    } else {
        Tls::Opportunistic(parameters)
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).tls(tls).timeout(Some(SMTP_TIMEOUT));
    if let Some(user) = &config.auth_username {
        match config.auth_password.resolve() {
            Ok(password) => {
                transport = transport.credentials(Credentials::new(user.clone(), password.expose().to_string()))
            }
            Err(reason) => return refused(format!("no SMTP password: {reason}")),
        }
    }
    let first = delivery.reason == Some(FlushReason::New);
    let content = mixmon_notify::email::content(&delivery.notification, first, &delivery.id);
    let from: Mailbox = match config.from.parse() {
        Ok(m) => m,
        Err(e) => return refused(format!("from {:?}: {e}", config.from)),
    };
    let mut message = Message::builder()
        .from(from)
        .subject(content.subject)
        .message_id(Some(content.message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    if content.message_id != content.thread_root {
        message = message.in_reply_to(content.thread_root.clone()).references(content.thread_root.clone());
    }
    for to in &config.to {
        match to.parse::<Mailbox>() {
            Ok(m) => message = message.to(m),
            Err(e) => return refused(format!("to {to:?}: {e}")),
        }
    }
    let message = match message.body(content.text) {
        Ok(m) => m,
        Err(e) => return refused(format!("building the message: {e}")),
    };
    match transport.build().send(message).await {
        Ok(_) => Answer::Accepted,
        Err(e) if e.is_permanent() => refused(format!("{host}:{port}: {e}")),
        Err(e) => Answer::Retry { after_ms: None, reason: format!("{host}:{port}: {e}") },
    }
}
