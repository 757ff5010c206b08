//! Sending one alert through one channel, once, within the channel's `timeout`: a webhook POST,
//! a Slack message, an email over SMTP (lettre: plain, STARTTLS or TLS, with or without login),
//! or a shell command. Errors come back as text for the outbox row and `weir alerts test`.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{self, Payload};
use crate::config::{Channel, ChannelKind, SmtpSecurity, SmtpSettings};
use crate::domain::duration::format_duration;

/// Most bytes of a refusing server's answer, or a failing command's output, kept in the error.
const MAX_ERROR_DETAIL: usize = 500;

/// Sends `payload` (alert `alert_id`) through `channel`, one attempt. A channel that refuses,
/// fails or does not answer within its timeout is an `Err` saying so.
pub async fn send(channel: &Channel, alert_id: i64, payload: &Payload) -> Result<(), String> {
    let timeout = channel.policy.timeout;
    let within_timeout = match &channel.kind {
        // A command keeps its own timeout, which also kills the processes it started.
        ChannelKind::Command { command, cwd } => return run_command(command, cwd, alert_id, payload, timeout).await,
        ChannelKind::Webhook { url, headers } => {
            let body = message::webhook_body(alert_id, payload);
            tokio::time::timeout(timeout, post_json(url, headers, &body)).await
        }
        ChannelKind::Slack { url } => {
            let body = serde_json::json!({ "text": message::slack_text(payload) });
            tokio::time::timeout(timeout, post_json(url, &BTreeMap::new(), &body)).await
        }
        ChannelKind::Email { smtp, to } => tokio::time::timeout(timeout, send_email(smtp, to, payload, timeout)).await,
    };
    within_timeout.unwrap_or_else(|_| {
        Err(format!(
            "no answer within {} (the channel's timeout)",
            format_duration(timeout)
        ))
    })
}

/// The error and its causes on one line: `error sending request …: connection refused`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_DETAIL) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

async fn post_json(url: &str, headers: &BTreeMap<String, String>, body: &serde_json::Value) -> Result<(), String> {
    let client = crate::runtime::builtin::http_client()?;
    // No reqwest timeout: the caller's bounds the whole attempt, with one message for all kinds.
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|error| chain(&error))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let answer = response.text().await.unwrap_or_default();
    Err(format!("HTTP {status} from {url}: {}", clip(&answer)))
}

async fn send_email(smtp: &SmtpSettings, to: &[String], payload: &Payload, timeout: Duration) -> Result<(), String> {
    let mailbox = |address: &str| -> Result<Mailbox, String> {
        address
            .parse()
            .map_err(|error| format!("`{address}` is not an email address: {error}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&smtp.from)?)
        .subject(message::email_subject(payload))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        builder = builder.to(mailbox(address)?);
    }
    let email = builder
        .body(message::email_body(payload))
        .map_err(|error| format!("cannot build the email: {error}"))?;
    let relay_error = |error: lettre::transport::smtp::Error| format!("SMTP {}: {}", smtp.host, chain(&error));
    let transport = match smtp.security {
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpSecurity::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(relay_error)?
        }
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(relay_error)?,
    };
    let mut transport = transport.port(smtp.port).timeout(Some(timeout));
    if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
        transport = transport.credentials(Credentials::new(username.clone(), password.clone()));
    }
    transport
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|error| format!("SMTP {}:{}: {}", smtp.host, smtp.port, chain(&error)))
}

async fn run_command(
    command: &str,
    cwd: &std::path::Path,
    alert_id: i64,
    payload: &Payload,
    timeout: Duration,
) -> Result<(), String> {
    let mut process = tokio::process::Command::new("sh");
    process
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .envs(message::command_env(alert_id, payload))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so a timeout ends everything it started.
        .process_group(0)
        .kill_on_drop(true);
    let child = process
        .spawn()
        .map_err(|error| format!("cannot start `sh -c {command}`: {error}"))?;
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
            if detail.trim().is_empty() {
                detail = String::from_utf8_lossy(&output.stdout).into_owned();
            }
            let status = match output.status.code() {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".to_string(),
            };
            Err(format!(
                "the command {status}: {}",
                clip(&message::last_lines(&detail, 10))
            ))
        }
        Ok(Err(error)) => Err(format!("waiting for the command: {error}")),
        Err(_) => {
            if let Some(group) = group {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
            }
            Err(format!(
                "the command did not finish within {} (the channel's timeout) and was killed",
                format_duration(timeout)
            ))
        }
    }
}
