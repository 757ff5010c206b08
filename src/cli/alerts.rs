//! `weir alerts list|test` (§7, §9): the recorded alert deliveries, newest first, and a sample
//! sent through one channel to check it works.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult};
use crate::domain::alerts::DeliveryStatus;
use crate::domain::ids::DagId;
use crate::storage::alerts::{self, Alert, AlertFilter};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alert deliveries (one per alert and channel), newest first.
    List {
        /// Only this DAG's alerts.
        #[arg(long)]
        dag: Option<String>,
        /// Only deliveries in this status: pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many deliveries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Sends a sample alert through a channel now and says whether it arrived (exit 1 if not).
    Test {
        /// A channel name from [alerts.<name>] in config.toml.
        channel: String,
    },
}

/// A delivery in the REST API's field names (§7).
pub fn alert_view(alert: &Alert) -> Value {
    json!({
        "id": alert.id,
        "channel": alert.channel,
        "event": alert.event.as_str(),
        "dag_id": alert.dag_id,
        "dag_run_id": alert.run_id,
        "task_id": alert.task_id,
        "status": alert.status.shown().as_str(),
        "attempts": alert.attempts,
        "error": alert.error,
        "created_at": output::time(alert.created_at),
        "delivered_at": output::opt_time(alert.delivered_at),
        "next_attempt_at": (alert.status.shown() == DeliveryStatus::Pending).then(|| output::time(alert.next_attempt_at)),
    })
}

pub async fn run(app: &App, command: AlertsCommand) -> CliResult {
    match command {
        AlertsCommand::List {
            dag,
            status,
            limit,
            output,
        } => {
            let dag_id = dag
                .map(DagId::parse)
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            let status = status
                .map(|status| status.parse::<DeliveryStatus>())
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let filter = AlertFilter {
                dag_id: dag_id.map(|dag_id| dag_id.to_string()),
                status,
                limit: Some(limit),
                offset: 0,
            };
            let mut rows: Vec<Value> = alerts::list(&mut connection, &filter)
                .await?
                .iter()
                .map(alert_view)
                .collect();
            if output == OutputFormat::Table {
                // One line per delivery: the first line of the error, shortened.
                for row in &mut rows {
                    if let Some(error) = row.get("error").and_then(Value::as_str) {
                        let first = error.lines().next().unwrap_or_default();
                        let short: String = first.chars().take(80).collect();
                        let short = if short.len() < error.len() {
                            format!("{short}…")
                        } else {
                            short
                        };
                        row["error"] = Value::String(short);
                    }
                }
            }
            output::print_rows(
                output,
                &rows,
                &[
                    "id",
                    "created_at",
                    "channel",
                    "event",
                    "dag_id",
                    "dag_run_id",
                    "task_id",
                    "status",
                    "attempts",
                    "error",
                ],
            );
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Test { channel } => {
            let config = &app.config;
            let Some(found) = config.alerts.channels.get(&channel) else {
                let known: Vec<&str> = config.alerts.channels.keys().map(String::as_str).collect();
                return Err(CliError::Usage(format!(
                    "no alert channel `{channel}` in {}: known channels are {}",
                    config.path.display(),
                    if known.is_empty() {
                        "none (add an [alerts.<name>] table)".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
                .into());
            };
            match crate::runtime::alerts::send_test(found, &config.base_url).await {
                Ok(()) => {
                    println!(
                        "sent a test alert through `{channel}` ({}): delivered",
                        found.kind.name()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => Err(CliError::Failed(format!(
                    "the test alert through `{channel}` ({}) was not delivered: {error}",
                    found.kind.name()
                ))
                .into()),
            }
        }
    }
}
