//! The `http` task (§5.2) and the request behind the http sensor: one request with a bounded
//! wait, the status checked against the expectation, the body (JSON when it parses) as output.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use super::{BuiltinAttempt, LogWriter};
use crate::domain::dag::{HttpBody, HttpTask, StatusExpectation};
use crate::domain::duration::format_duration;
use crate::runtime::attempt::MAX_OUTPUT_BYTES;

/// Most of a response body written to the task log.
const LOGGED_BODY_BYTES: usize = 4096;

/// The one HTTP client of the process (connection pooling, TLS set up once). TLS uses rustls
/// with the ring provider, the only one in the build.
pub fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // Installing fails only when a provider is installed already, which is what we want.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|error| format!("could not set up the HTTP client: {error}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The URL to call: `url` alone, or joined to the connection's base URL when `conn` is given
/// (an absolute `url` wins). Credentials in the URL become basic auth.
pub(super) fn target_url(attempt: &BuiltinAttempt, conn: Option<&str>, url: &str) -> Result<Url, String> {
    let text = match conn {
        None => url.to_string(),
        Some(name) => {
            let base = attempt.connection(name)?;
            if url.contains("://") {
                url.to_string()
            } else if url.is_empty() {
                base.to_string()
            } else {
                format!("{}/{}", base.trim_end_matches('/'), url.trim_start_matches('/'))
            }
        }
    };
    let parsed = Url::parse(&text).map_err(|error| format!("`{}` is not a valid URL: {error}", redacted(&text)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`{}` is not an http(s) URL: http tasks call http:// or https:// addresses",
            redacted_url(&parsed)
        ));
    }
    Ok(parsed)
}

/// The URL without its password, for logs and messages.
pub(super) fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

fn redacted(text: &str) -> String {
    Url::parse(text).map_or_else(|_| text.to_string(), |url| redacted_url(&url))
}

/// What one request got back.
pub(super) struct Response {
    pub status: u16,
    pub reason: String,
    pub body: String,
}

/// Sends one request and reads at most [`MAX_OUTPUT_BYTES`] of the body.
pub(super) async fn send(
    method: &str,
    url: Url,
    headers: &[(String, String)],
    body: &HttpBody,
    timeout: Duration,
    log: &mut LogWriter,
) -> Result<Response, String> {
    let client = http_client()?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let shown = redacted_url(&url);
    let mut bare = url.clone();
    let credentials =
        (!url.username().is_empty()).then(|| (url.username().to_string(), url.password().map(str::to_string)));
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let mut request = client.request(method.clone(), bare).timeout(timeout);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, password);
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request = match body {
        HttpBody::None => request,
        HttpBody::Json(value) => request.json(value),
        HttpBody::Text(text) => request.body(text.clone()),
    };
    log.note(&format!("{method} {shown}"));
    let started = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|error| describe(&error, &shown, timeout))?;
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| describe(&error, &shown, timeout))?
    {
        let room = MAX_OUTPUT_BYTES.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            log.note(&format!(
                "the response is longer than {MAX_OUTPUT_BYTES} bytes: the rest is not read"
            ));
            break;
        }
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    log.note(&format!(
        "answered {} in {} ms ({} bytes)",
        status,
        started.elapsed().as_millis(),
        bytes.len()
    ));
    Ok(Response {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        body,
    })
}

fn describe(error: &reqwest::Error, shown: &str, timeout: Duration) -> String {
    if error.is_timeout() {
        format!(
            "no answer from {shown} within {} (request_timeout)",
            format_duration(timeout)
        )
    } else if error.is_connect() {
        format!("could not connect to {shown}: {}", root_cause(error))
    } else {
        format!("request to {shown} failed: {}", root_cause(error))
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The output of a response: its JSON, or its text.
fn body_value(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.to_string()))
}

fn head(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Checks a status against the expectation, with a message that shows what came back.
pub(super) fn check_status(response: &Response, expected: &StatusExpectation) -> Result<(), String> {
    if expected.accepts(response.status) {
        return Ok(());
    }
    Err(format!(
        "answered {} {}, expected {expected}: {}",
        response.status,
        response.reason,
        head(response.body.trim(), 500)
    ))
}

pub(super) async fn call(
    attempt: &BuiltinAttempt,
    http: &HttpTask,
    log: &mut LogWriter,
) -> Result<serde_json::Value, String> {
    let url = target_url(attempt, http.conn.as_deref(), &http.url)?;
    let response = send(&http.method, url, &http.headers, &http.body, http.request_timeout, log).await?;
    if !response.body.is_empty() {
        log.output(head(&response.body, LOGGED_BODY_BYTES));
    }
    check_status(&response, &http.expect_status)?;
    Ok(body_value(&response.body))
}
