//! Alerts (§9): raised by the scheduler into the outbox in the same transaction as their cause
//! ([`record`]), worded per channel kind ([`message`]), and sent off the scheduler's path by the
//! delivery loop ([`delivery`]) through webhook, Slack, email or command channels ([`send`]).
//! Which events reach which channels is decided in `domain::alerts`.

pub mod delivery;
pub mod message;
pub mod record;
pub mod send;

use chrono::{SecondsFormat, Utc};

pub use self::delivery::AlertDelivery;
pub use self::message::Payload;
pub use self::record::{AlertRouting, SlaCheck, check_slas, record_run_alerts, record_task_alerts};
use crate::config::Channel;
use crate::domain::alerts::AlertEvent;

/// The sample `weir alerts test CHANNEL` sends: every field filled, so a receiver can be checked.
pub fn sample_payload(channel: &str, base_url: &str) -> Payload {
    let now = Utc::now();
    let run_id = format!("manual__{}", now.format("%Y-%m-%dT%H:%M:%S+00:00"));
    Payload {
        event: AlertEvent::Test.as_str().to_string(),
        dag_id: "example_dag".to_string(),
        dag_run_id: run_id.clone(),
        task_id: Some("example_task".to_string()),
        state: "failed".to_string(),
        try_number: Some(1),
        logical_date: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        log_url: message::task_log_url(base_url, "example_dag", &run_id, "example_task", 1),
        error: Some(format!(
            "This is a test alert sent by `weir alerts test {channel}`; no task failed."
        )),
    }
}

/// Sends the sample through `channel` once, within its timeout (`weir alerts test`).
pub async fn send_test(channel: &Channel, base_url: &str) -> Result<(), String> {
    send::send(channel, 0, &sample_payload(&channel.name, base_url)).await
}
