//! What an alert says (§9), without IO: the payload's fields, and how each channel kind words
//! them (webhook JSON, Slack text with a link to the log, email subject and body, command
//! environment).

use serde::{Deserialize, Serialize};

use crate::domain::alerts::AlertEvent;
use crate::domain::ui_paths;

/// Most characters of `error` (the log's last lines) a Slack message or email quotes.
const MAX_QUOTED_CHARS: usize = 3000;

/// The §9 fields, frozen when the alert is raised and stored in its outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub event: String,
    pub dag_id: String,
    pub dag_run_id: String,
    /// `None` for run events (`on_success`, a run's `on_failure`, `sla_miss`).
    pub task_id: Option<String>,
    /// The task's or run's state that raised the alert (`failed`, `up_for_retry`, `success`, or
    /// the run's current state for `sla_miss`).
    pub state: String,
    pub try_number: Option<u32>,
    /// RFC 3339, UTC.
    pub logical_date: String,
    /// The task instance's page (log of that try) or the run's page in the UI.
    pub log_url: String,
    /// The last lines of the failed attempt's log; for a failed run, which tasks failed and the
    /// first one's last lines; for an SLA miss, by how much.
    pub error: Option<String>,
}

/// The JSON a webhook receives: the payload plus `alert_id`, which stays the same when a delivery
/// is sent again, so a receiver can drop duplicates.
pub fn webhook_body(alert_id: i64, payload: &Payload) -> serde_json::Value {
    let mut body = serde_json::json!({ "alert_id": alert_id });
    if let (Some(body), Ok(serde_json::Value::Object(fields))) = (body.as_object_mut(), serde_json::to_value(payload)) {
        body.extend(fields);
    }
    body
}

/// One line saying what happened.
pub fn summary(payload: &Payload) -> String {
    let run = &payload.dag_run_id;
    let dag = &payload.dag_id;
    let try_text = payload.try_number.map(|n| format!(" (try {n})")).unwrap_or_default();
    match (payload.event.parse::<AlertEvent>(), &payload.task_id) {
        (Ok(AlertEvent::OnFailure), Some(task)) => format!("Task {dag}.{task} failed{try_text} in run {run}"),
        (Ok(AlertEvent::OnFailure), None) => format!("Run {run} of {dag} failed"),
        (Ok(AlertEvent::OnRetry), Some(task)) => {
            format!("Task {dag}.{task} failed{try_text} and will be retried, in run {run}")
        }
        (Ok(AlertEvent::OnSuccess), _) => format!("Run {run} of {dag} succeeded"),
        (Ok(AlertEvent::SlaMiss), _) => format!("Run {run} of {dag} missed its SLA"),
        (Ok(AlertEvent::Test), _) => "Test alert from weir: this channel works".to_string(),
        (_, Some(task)) => format!("{} for task {dag}.{task}{try_text} in run {run}", payload.event),
        (_, None) => format!("{} for run {run} of {dag}", payload.event),
    }
}

fn quoted(error: &str) -> &str {
    // The end of a log matters most: keep the last characters.
    let start = error
        .char_indices()
        .rev()
        .nth(MAX_QUOTED_CHARS - 1)
        .map_or(0, |(position, _)| position);
    &error[start..]
}

/// Slack's text escaping: `&`, `<` and `>` are control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The `text` of a Slack incoming-webhook message: what happened, a link to the log, and the
/// log's last lines.
pub fn slack_text(payload: &Payload) -> String {
    let icon = match payload.event.parse::<AlertEvent>() {
        Ok(AlertEvent::OnFailure) => ":red_circle:",
        Ok(AlertEvent::OnRetry) => ":large_orange_circle:",
        Ok(AlertEvent::OnSuccess) => ":large_green_circle:",
        Ok(AlertEvent::SlaMiss) => ":hourglass:",
        _ => ":bell:",
    };
    let link_text = if payload.task_id.is_some() { "task log" } else { "run" };
    let mut text = format!(
        "{icon} *{}* {} (logical date {}) <{}|{link_text}>",
        payload.event,
        slack_escape(&summary(payload)),
        payload.logical_date,
        payload.log_url
    );
    if let Some(error) = payload.error.as_deref().filter(|error| !error.trim().is_empty()) {
        text.push_str(&format!("\n```{}```", slack_escape(quoted(error))));
    }
    text
}

/// An email's subject line.
pub fn email_subject(payload: &Payload) -> String {
    format!("[weir] {}: {}", payload.event, summary(payload))
}

/// An email's plain-text body: the summary, every field, and the log's last lines.
pub fn email_body(payload: &Payload) -> String {
    let mut body = format!("{}\n\n", summary(payload));
    for (name, value) in fields(payload) {
        if name != "error" {
            body.push_str(&format!("{name}: {value}\n"));
        }
    }
    if let Some(error) = payload.error.as_deref().filter(|error| !error.trim().is_empty()) {
        body.push_str(&format!("\nerror (last lines of the log):\n{}\n", quoted(error)));
    }
    body
}

/// The payload's fields by name, as text (an absent value is empty).
fn fields(payload: &Payload) -> Vec<(&'static str, String)> {
    vec![
        ("event", payload.event.clone()),
        ("dag_id", payload.dag_id.clone()),
        ("dag_run_id", payload.dag_run_id.clone()),
        ("task_id", payload.task_id.clone().unwrap_or_default()),
        ("state", payload.state.clone()),
        (
            "try_number",
            payload.try_number.map(|n| n.to_string()).unwrap_or_default(),
        ),
        ("logical_date", payload.logical_date.clone()),
        ("log_url", payload.log_url.clone()),
        ("error", payload.error.clone().unwrap_or_default()),
    ]
}

/// The environment of a command channel: `WEIR_ALERT_<FIELD>` for every field, `WEIR_ALERT_ID`,
/// and the whole webhook body as `WEIR_ALERT_JSON`.
pub fn command_env(alert_id: i64, payload: &Payload) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = fields(payload)
        .into_iter()
        .map(|(name, value)| (format!("WEIR_ALERT_{}", name.to_uppercase()), value))
        .collect();
    env.push(("WEIR_ALERT_ID".to_string(), alert_id.to_string()));
    env.push((
        "WEIR_ALERT_JSON".to_string(),
        webhook_body(alert_id, payload).to_string(),
    ));
    env
}

/// The run's page in the UI.
pub fn run_url(base_url: &str, dag_id: &str, run_id: &str) -> String {
    format!("{base_url}{}", ui_paths::run(dag_id, run_id))
}

/// The task instance's page showing the log of one try.
pub fn task_log_url(base_url: &str, dag_id: &str, run_id: &str, task_id: &str, try_number: u32) -> String {
    format!("{base_url}{}", ui_paths::task_try(dag_id, run_id, task_id, try_number))
}

/// The last `max_lines` lines of a log's tail (the caller reads only its last few KiB).
pub fn last_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Payload {
        Payload {
            event: "on_failure".to_string(),
            dag_id: "daily_revenue".to_string(),
            dag_run_id: "scheduled__2026-03-01T00:00:00+00:00".to_string(),
            task_id: Some("extract".to_string()),
            state: "failed".to_string(),
            try_number: Some(2),
            logical_date: "2026-03-01T00:00:00Z".to_string(),
            log_url: task_log_url(
                "http://weir.example.com",
                "daily_revenue",
                "scheduled__2026-03-01T00:00:00+00:00",
                "extract",
                2,
            ),
            error: Some("connecting to <shop> & co\n[weir] exited with code 1 after 0.2s".to_string()),
        }
    }

    #[test]
    fn the_log_url_points_at_the_try_on_the_task_page() {
        assert_eq!(
            failure().log_url,
            "http://weir.example.com/dags/daily_revenue/runs/scheduled__2026-03-01T00%3A00%3A00%2B00%3A00/tasks/extract?try=2"
        );
    }

    #[test]
    fn a_webhook_gets_every_field_and_the_alert_id() {
        let body = webhook_body(7, &failure());
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "alert_id",
                "event",
                "dag_id",
                "dag_run_id",
                "task_id",
                "state",
                "try_number",
                "logical_date",
                "log_url",
                "error"
            ]
        );
        assert_eq!(body["try_number"], 2);
    }

    #[test]
    fn slack_text_links_the_log_and_quotes_its_last_lines_escaped() {
        let text = slack_text(&failure());
        assert!(
            text.starts_with(":red_circle: *on_failure* Task daily_revenue.extract failed (try 2) in run scheduled__"),
            "{text}"
        );
        assert!(text.contains("|task log>"), "{text}");
        assert!(
            text.contains("```connecting to &lt;shop&gt; &amp; co\n[weir] exited"),
            "{text}"
        );
    }

    #[test]
    fn an_email_carries_the_fields_in_subject_and_body() {
        let payload = failure();
        assert_eq!(
            email_subject(&payload),
            "[weir] on_failure: Task daily_revenue.extract failed (try 2) in run scheduled__2026-03-01T00:00:00+00:00"
        );
        let body = email_body(&payload);
        assert!(body.contains("\ntask_id: extract\n"), "{body}");
        assert!(body.contains("\ntry_number: 2\n"), "{body}");
        assert!(
            body.contains("\nerror (last lines of the log):\nconnecting to <shop>"),
            "{body}"
        );
    }

    #[test]
    fn run_events_have_no_task() {
        let payload = Payload {
            event: "on_success".to_string(),
            task_id: None,
            try_number: None,
            state: "success".to_string(),
            error: None,
            ..failure()
        };
        assert_eq!(
            summary(&payload),
            "Run scheduled__2026-03-01T00:00:00+00:00 of daily_revenue succeeded"
        );
        let env = command_env(3, &payload);
        assert!(env.contains(&("WEIR_ALERT_TASK_ID".to_string(), String::new())));
        assert!(env.contains(&("WEIR_ALERT_EVENT".to_string(), "on_success".to_string())));
        assert!(env.contains(&("WEIR_ALERT_ID".to_string(), "3".to_string())));
    }

    #[test]
    fn long_errors_keep_their_end() {
        let long = format!("{}THE END", "x".repeat(10_000));
        assert!(quoted(&long).ends_with("THE END"));
        assert_eq!(quoted(&long).chars().count(), MAX_QUOTED_CHARS);
        assert_eq!(last_lines("a\nb\nc\nd", 2), "c\nd");
    }
}
