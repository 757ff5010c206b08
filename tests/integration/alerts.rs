//! Alerts (§9) through the real scheduler, the real delivery loop and real servers on local
//! sockets, on SQLite and PostgreSQL: a webhook and a Slack incoming webhook (axum on port 0), an
//! SMTP server written here (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT), dead channels that
//! refuse or never answer, SLA misses, the outbox surviving a SIGKILL of `weir serve`, and the
//! CLI, API and UI views of the deliveries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use weir::domain::alerts::{AlertEvent, DeliveryStatus};
use weir::domain::state::RunState;
use weir::storage::Db;
use weir::storage::alerts::{self, Alert, AlertFilter, NewAlert};

use crate::daemon::Project;
use crate::support;
use crate::support::test_app::TestApp;

const BASE_URL: &str = "http://weir.test:8080";

// ---------------------------------------------------------------------------------------------
// A webhook receiver: records every JSON body it accepts; refuses (503) while told to.

#[derive(Default)]
struct Received {
    accepted: Mutex<Vec<Value>>,
    refused: Mutex<usize>,
    refusing: AtomicBool,
}

struct WebhookServer {
    base: String,
    received: Arc<Received>,
    _task: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    async fn start() -> WebhookServer {
        async fn receive(State(received): State<Arc<Received>>, body: axum::Json<Value>) -> StatusCode {
            if received.refusing.load(Ordering::SeqCst) {
                *received.refused.lock().unwrap() += 1;
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            received.accepted.lock().unwrap().push(body.0);
            StatusCode::OK
        }
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/hook", post(receive))
            .route("/slack", post(receive))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookServer {
            base,
            received,
            _task: task,
        }
    }

    fn accepted(&self) -> Vec<Value> {
        self.received.accepted.lock().unwrap().clone()
    }
}

/// A server that accepts connections and never answers.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (base, task)
}

/// An address where nothing listens: connections are refused.
async fn refusing_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

// ---------------------------------------------------------------------------------------------
// A minimal SMTP server: plain text, AUTH PLAIN and LOGIN against one user, every message kept.

#[derive(Debug, Clone, Default)]
struct Mail {
    authenticated_as: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

impl Mail {
    /// The message with folded header lines joined and quoted-printable soft breaks removed.
    fn text(&self) -> String {
        self.data
            .replace("\r\n ", " ")
            .replace("=\r\n", "")
            .replace("\r\n", "\n")
    }

    fn subject(&self) -> String {
        self.text()
            .lines()
            .find_map(|line| line.strip_prefix("Subject: ").map(str::to_string))
            .unwrap_or_default()
    }
}

struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    async fn start(username: &'static str, password: &'static str) -> SmtpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&mails);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let _ = smtp_session(socket, username, password, kept).await;
                });
            }
        });
        SmtpServer {
            port,
            mails,
            _task: task,
        }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn smtp_session(
    socket: tokio::net::TcpStream,
    username: &str,
    password: &str,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut lines = BufReader::new(reader);
    let mut line = String::new();
    let mut mail = Mail::default();
    let mut authenticated_as = None;
    writer.write_all(b"220 test.local ESMTP weir-test\r\n").await?;
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-test.local\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".to_string()
        } else if upper.starts_with("AUTH PLAIN") {
            let encoded = match command.split_whitespace().nth(2) {
                Some(initial) => initial.to_string(),
                None => {
                    writer.write_all(b"334 \r\n").await?;
                    read_line(&mut lines).await?
                }
            };
            // authzid \0 authcid \0 password
            let decoded = support::decode_base64(&encoded);
            let parts: Vec<&str> = decoded.split('\0').collect();
            check_login(
                parts.get(1).copied(),
                parts.get(2).copied(),
                username,
                password,
                &mut authenticated_as,
            )
        } else if upper.starts_with("AUTH LOGIN") {
            writer.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let user = support::decode_base64(&read_line(&mut lines).await?);
            writer.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let secret = support::decode_base64(&read_line(&mut lines).await?);
            check_login(Some(&user), Some(&secret), username, password, &mut authenticated_as)
        } else if upper.starts_with("MAIL FROM:") {
            mail = Mail {
                authenticated_as: authenticated_as.clone(),
                from: address(&command),
                ..Mail::default()
            };
            "250 OK\r\n".to_string()
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(address(&command));
            "250 OK\r\n".to_string()
        } else if upper == "DATA" {
            writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            mails.lock().unwrap().push(std::mem::take(&mut mail));
            "250 OK queued\r\n".to_string()
        } else if upper == "QUIT" {
            writer.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK\r\n".to_string()
        } else {
            "502 command not implemented\r\n".to_string()
        };
        writer.write_all(reply.as_bytes()).await?;
    }
}

async fn read_line(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    Ok(line.trim_end().to_string())
}

fn check_login(
    user: Option<&str>,
    secret: Option<&str>,
    username: &str,
    password: &str,
    authenticated_as: &mut Option<String>,
) -> String {
    if user == Some(username) && secret == Some(password) {
        *authenticated_as = Some(username.to_string());
        "235 2.7.0 Authentication successful\r\n".to_string()
    } else {
        "535 5.7.8 Authentication credentials invalid\r\n".to_string()
    }
}

/// `MAIL FROM:<a@b> SIZE=1` → `a@b`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The scheduler with alerts, as `weir serve` wires it, over DAGs validated against a real config.

/// A stepped test app whose config.toml has `config` (alert channels) and the base URL
/// [`BASE_URL`]; each YAML names its `dag_id` and is validated against the configured channels.
async fn alert_app(test_db: &support::TestDb, config: &str, yamls: &[&str]) -> TestApp {
    TestApp::builder(test_db)
        .config(&format!("[webserver]\nbase_url = \"{BASE_URL}\"\n\n{config}"))
        .dags(yamls)
        .stepped()
        .await
}

async fn all_alerts(db: &Db) -> Vec<Alert> {
    let mut connection = db.acquire().await.unwrap();
    let mut list = alerts::list(&mut connection, &AlertFilter::default()).await.unwrap();
    list.reverse();
    list
}

/// Waits until every recorded delivery has ended (delivered or failed), then returns them oldest
/// first.
async fn settled_alerts(db: &Db, expected: usize) -> Vec<Alert> {
    support::wait_until_async(
        &format!("{expected} alert deliveries have ended"),
        Duration::from_secs(60),
        || async {
            let list = all_alerts(db).await;
            list.len() == expected
                && list
                    .iter()
                    .all(|alert| matches!(alert.status, DeliveryStatus::Delivered | DeliveryStatus::Failed))
        },
    )
    .await;
    all_alerts(db).await
}

fn summary(alert: &Alert) -> (String, AlertEvent, Option<String>, DeliveryStatus) {
    (alert.channel.clone(), alert.event, alert.task_id.clone(), alert.status)
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

#[tokio::test]
async fn a_failing_task_sends_its_retry_its_failure_and_the_run_failure_to_a_webhook() {
    for test_db in support::databases().await {
        let hook = WebhookServer::start().await;
        let mut harness = alert_app(
            &test_db,
            &format!("[alerts.ops]\nkind = \"webhook\"\nurl = \"{}/hook\"\n", hook.base),
            &[r#"
dag_id: revenue
alerts: {on_failure: [ops], on_retry: [ops]}
tasks:
  extract:
    command: 'echo "connecting to the shop database"; echo "cannot reach the shop" >&2; exit 3'
    retries: 1
    retry_delay: 0s
"#],
        )
        .await;
        let (stop, delivery) = harness.start_delivery();
        let run = harness.trigger_dag("revenue").await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let recorded = settled_alerts(&test_db.db, 3).await;
        assert_eq!(
            recorded.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    "ops".to_string(),
                    AlertEvent::OnRetry,
                    Some("extract".to_string()),
                    DeliveryStatus::Delivered
                ),
                (
                    "ops".to_string(),
                    AlertEvent::OnFailure,
                    Some("extract".to_string()),
                    DeliveryStatus::Delivered
                ),
                (
                    "ops".to_string(),
                    AlertEvent::OnFailure,
                    None,
                    DeliveryStatus::Delivered
                ),
            ],
            "{}",
            test_db.label
        );
        assert!(
            recorded
                .iter()
                .all(|alert| alert.attempts == 1 && alert.error.is_none())
        );

        let mut bodies = hook.accepted();
        bodies.sort_by_key(|body| body["alert_id"].as_i64());
        assert_eq!(bodies.len(), 3, "{}: {bodies:#?}", test_db.label);
        let run_id = run.run_id.to_string();
        let logical_date = run.logical_date.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let retry = &bodies[0];
        assert_eq!(retry["alert_id"], recorded[0].id);
        assert_eq!(retry["event"], "on_retry");
        assert_eq!(retry["dag_id"], "revenue");
        assert_eq!(retry["dag_run_id"], run_id.as_str());
        assert_eq!(retry["task_id"], "extract");
        assert_eq!(retry["state"], "up_for_retry");
        assert_eq!(retry["try_number"], 1);
        assert_eq!(retry["logical_date"], logical_date.as_str());
        let encoded_run = run_id.replace(':', "%3A").replace('+', "%2B");
        assert_eq!(
            retry["log_url"],
            format!("{BASE_URL}/dags/revenue/runs/{encoded_run}/tasks/extract?try=1").as_str()
        );
        let retry_error = retry["error"].as_str().unwrap();
        assert!(
            retry_error.contains("cannot reach the shop") && retry_error.contains("exited with code 3"),
            "{}: the log's last lines: {retry_error}",
            test_db.label
        );
        let failure = &bodies[1];
        assert_eq!(
            (&failure["event"], &failure["state"], &failure["try_number"]),
            (&Value::from("on_failure"), &Value::from("failed"), &Value::from(2))
        );
        let run_failure = &bodies[2];
        assert_eq!(run_failure["event"], "on_failure");
        assert_eq!(run_failure["task_id"], Value::Null);
        assert_eq!(run_failure["try_number"], Value::Null);
        assert_eq!(run_failure["state"], "failed");
        assert_eq!(
            run_failure["log_url"],
            format!("{BASE_URL}/dags/revenue/runs/{encoded_run}").as_str()
        );
        let run_error = run_failure["error"].as_str().unwrap();
        assert!(
            run_error.starts_with("tasks failed: extract (try 2)") && run_error.contains("cannot reach the shop"),
            "{}: {run_error}",
            test_db.label
        );
        stop.cancel();
        delivery.await.unwrap();
    }
}

#[tokio::test]
async fn a_successful_run_reaches_slack_through_the_configured_default_unless_its_dag_opts_out() {
    for test_db in support::databases().await {
        let slack = WebhookServer::start().await;
        let mut harness = alert_app(
            &test_db,
            &format!(
                "[alerts]\ndefault_on_success = [\"chat\"]\n\n[alerts.chat]\nkind = \"slack\"\nurl = \"{}/slack\"\n",
                slack.base
            ),
            &[
                "dag_id: loud\ntasks:\n  load: {command: echo loaded}\n",
                "dag_id: quiet\nalerts: {on_success: []}\ntasks:\n  load: {command: echo loaded}\n",
            ],
        )
        .await;
        let (stop, delivery) = harness.start_delivery();
        let loud = harness.trigger_dag("loud").await;
        let quiet = harness.trigger_dag("quiet").await;
        assert_eq!(harness.run_to_end(&loud).await, RunState::Success);
        assert_eq!(harness.run_to_end(&quiet).await, RunState::Success);
        let recorded = settled_alerts(&test_db.db, 1).await;
        assert_eq!(
            recorded.iter().map(summary).collect::<Vec<_>>(),
            [(
                "chat".to_string(),
                AlertEvent::OnSuccess,
                None,
                DeliveryStatus::Delivered
            )],
            "{}: only the DAG without its own on_success list gets the default",
            test_db.label
        );
        let bodies = slack.accepted();
        assert_eq!(bodies.len(), 1, "{}", test_db.label);
        let text = bodies[0]["text"].as_str().unwrap();
        let encoded_run = loud.run_id.to_string().replace(':', "%3A").replace('+', "%2B");
        assert!(
            text.starts_with(&format!(
                ":large_green_circle: *on_success* Run {} of loud succeeded",
                loud.run_id
            )),
            "{}: {text}",
            test_db.label
        );
        assert!(
            text.contains(&format!("<{BASE_URL}/dags/loud/runs/{encoded_run}|run>")),
            "{}: a link to the run: {text}",
            test_db.label
        );
        stop.cancel();
        delivery.await.unwrap();
    }
}

#[tokio::test]
async fn failures_arrive_by_email_through_a_real_smtp_server_with_a_login() {
    for test_db in support::databases().await {
        let smtp = SmtpServer::start("weir", "s3cret").await;
        let mut harness = alert_app(
            &test_db,
            &format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"weir@example.com\"\nsecurity = \"none\"\nusername = \"weir\"\npassword = \"s3cret\"\n\n[alerts.mail]\nkind = \"email\"\nto = [\"oncall@example.com\", \"data@example.com\"]\n",
                smtp.port
            ),
            &[r#"
dag_id: nightly
alerts: {on_failure: [mail]}
tasks:
  load:
    command: 'echo "loading 3 rows"; echo "duplicate key in orders" >&2; exit 1'
"#],
        )
        .await;
        let (stop, delivery) = harness.start_delivery();
        let run = harness.trigger_dag("nightly").await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed);
        let recorded = settled_alerts(&test_db.db, 2).await;
        assert!(
            recorded.iter().all(|alert| alert.status == DeliveryStatus::Delivered),
            "{}: {recorded:#?}",
            test_db.label
        );
        let mut mails = smtp.mails();
        mails.sort_by_key(|mail| mail.subject().contains("Run "));
        assert_eq!(mails.len(), 2, "{}", test_db.label);
        for mail in &mails {
            assert_eq!(mail.authenticated_as.as_deref(), Some("weir"));
            assert_eq!(mail.from, "weir@example.com");
            assert_eq!(mail.to, ["oncall@example.com", "data@example.com"]);
        }
        let task_mail = &mails[0];
        assert_eq!(
            task_mail.subject(),
            format!(
                "[weir] on_failure: Task nightly.load failed (try 1) in run {}",
                run.run_id
            ),
            "{}",
            test_db.label
        );
        let body = task_mail.text();
        for expected in [
            "dag_id: nightly\n",
            &format!("dag_run_id: {}\n", run.run_id),
            "task_id: load\n",
            "state: failed\n",
            "try_number: 1\n",
            "log_url: http://weir.test:8080/dags/nightly/runs/",
            "duplicate key in orders",
        ] {
            assert!(body.contains(expected), "{}: `{expected}` in\n{body}", test_db.label);
        }
        assert_eq!(
            mails[1].subject(),
            format!("[weir] on_failure: Run {} of nightly failed", run.run_id)
        );
        stop.cancel();
        delivery.await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_smtp_login_ends_the_delivery_failed_with_the_servers_answer() {
    for test_db in support::databases().await {
        let smtp = SmtpServer::start("weir", "s3cret").await;
        let mut harness = alert_app(
            &test_db,
            &format!(
                "[alerts.mail]\nkind = \"email\"\nto = [\"oncall@example.com\"]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"weir@example.com\"\nsecurity = \"none\"\nusername = \"weir\"\npassword = \"wrong\"\nretries = 1\nretry_delay = \"10ms\"\n",
                smtp.port
            ),
            &["dag_id: nightly\nalerts: {on_failure: [mail]}\ntasks:\n  load: {command: exit 1}\n"],
        )
        .await;
        let (stop, delivery) = harness.start_delivery();
        let run = harness.trigger_dag("nightly").await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed);
        let recorded = settled_alerts(&test_db.db, 2).await;
        for alert in &recorded {
            assert_eq!(alert.status, DeliveryStatus::Failed, "{}", test_db.label);
            assert_eq!(alert.attempts, 2, "{}: the first attempt and one retry", test_db.label);
            let error = alert.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("535") && error.contains("credentials invalid"),
                "{}: {error}",
                test_db.label
            );
        }
        assert!(smtp.mails().is_empty());
        stop.cancel();
        delivery.await.unwrap();
    }
}

#[tokio::test]
async fn dead_channels_never_hold_up_the_run_or_the_other_channels_and_end_failed_after_their_retries() {
    for test_db in support::databases().await {
        let hook = WebhookServer::start().await;
        let (silent, _silent_task) = silent_server().await;
        let refused = refusing_address().await;
        let fast = "retries = 2\nretry_delay = \"100ms\"\ntimeout = \"300ms\"\n";
        let mut harness = alert_app(
            &test_db,
            &format!(
                "[alerts.stuck]\nkind = \"webhook\"\nurl = \"{silent}/hook\"\ntimeout = \"1h\"\n\n\
                 [alerts.silent]\nkind = \"webhook\"\nurl = \"{silent}/hook\"\n{fast}\n\
                 [alerts.refused]\nkind = \"webhook\"\nurl = \"{refused}/hook\"\n{fast}\n\
                 [alerts.ops]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
                hook.base
            ),
            &["dag_id: revenue\nalerts: {on_failure: [stuck, silent, refused, ops]}\ntasks:\n  load: {command: exit 1}\n"],
        )
        .await;
        let (stop, delivery) = harness.start_delivery();
        let run = harness.trigger_dag("revenue").await;
        // The `stuck` channel holds its deliveries for an hour: the run still fails at once.
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        support::wait_until_async(
            "the live and the failing channels have ended their deliveries",
            Duration::from_secs(60),
            || async {
                all_alerts(&test_db.db)
                    .await
                    .iter()
                    .filter(|alert| alert.channel != "stuck")
                    .all(|alert| matches!(alert.status, DeliveryStatus::Delivered | DeliveryStatus::Failed))
            },
        )
        .await;
        let recorded = all_alerts(&test_db.db).await;
        assert_eq!(
            recorded.len(),
            8,
            "{}: 2 alerts (task, run) × 4 channels",
            test_db.label
        );
        let by_channel =
            |name: &str| -> Vec<&Alert> { recorded.iter().filter(|alert| alert.channel == name).collect() };
        for alert in by_channel("ops") {
            assert_eq!((alert.status, alert.attempts), (DeliveryStatus::Delivered, 1));
        }
        assert_eq!(hook.accepted().len(), 2);
        for alert in by_channel("silent") {
            assert_eq!(
                (alert.status, alert.attempts),
                (DeliveryStatus::Failed, 3),
                "{}",
                test_db.label
            );
            assert_eq!(
                alert.error.as_deref(),
                Some("no answer within 300ms (the channel's timeout)"),
                "{}",
                test_db.label
            );
        }
        for alert in by_channel("refused") {
            assert_eq!(
                (alert.status, alert.attempts),
                (DeliveryStatus::Failed, 3),
                "{}",
                test_db.label
            );
            let error = alert.error.as_deref().unwrap_or_default();
            assert!(
                error.to_lowercase().contains("connection refused"),
                "{}: {error}",
                test_db.label
            );
        }
        for alert in by_channel("stuck") {
            assert_eq!(
                alert.status,
                DeliveryStatus::Sending,
                "{}: still waiting for an answer",
                test_db.label
            );
        }
        // Shutting down gives the unanswered deliveries back to the outbox, uncounted.
        stop.cancel();
        delivery.await.unwrap();
        for alert in all_alerts(&test_db.db)
            .await
            .iter()
            .filter(|alert| alert.channel == "stuck")
        {
            assert_eq!(
                (alert.status, alert.attempts),
                (DeliveryStatus::Pending, 0),
                "{}",
                test_db.label
            );
        }
    }
}

#[tokio::test]
async fn a_run_past_its_sla_alerts_once_and_a_run_finished_in_time_never() {
    for test_db in support::databases().await {
        let hook = WebhookServer::start().await;
        let mut harness = alert_app(
            &test_db,
            &format!(
                "[alerts]\ndefault_sla_miss = [\"ops\"]\n\n[alerts.ops]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
                hook.base
            ),
            &[
                // Waits (in the DAG folder) for a file the test writes once it has seen the miss.
                "dag_id: slow\nsla: 1s\ntasks:\n  wait: {command: 'while [ ! -e ../done ]; do sleep 0.05; done'}\n",
                "dag_id: quick\nsla: 1h\ntasks:\n  load: {command: echo done}\n",
            ],
        )
        .await;
        let done_file = harness.folder().join("done");
        let (stop, delivery) = harness.start_delivery();

        let quick = harness.trigger_dag("quick").await;
        assert_eq!(harness.run_to_end(&quick).await, RunState::Success);
        let slow = harness.trigger_dag("slow").await;
        // Before the deadline, the step plans to wake at it.
        let outcome = harness.scheduler.tick(Utc::now()).await.unwrap();
        let deadline = slow.queued_at.unwrap() + chrono::Duration::seconds(1);
        assert!(outcome.next_wake.is_some_and(|wake| wake <= deadline), "{outcome:?}");

        let db = test_db.db.clone();
        harness
            .drive_until("the slow run's SLA miss is recorded", || {
                let db = db.clone();
                async move { !all_alerts(&db).await.is_empty() }
            })
            .await;
        assert!(Utc::now() > deadline);
        // More steps while the slow run is still running: no second alert.
        for _ in 0..3 {
            harness.scheduler.tick(Utc::now()).await.unwrap();
        }
        std::fs::write(&done_file, "").unwrap();
        assert_eq!(harness.run_to_end(&slow).await, RunState::Success);
        harness.scheduler.tick(Utc::now()).await.unwrap();

        let recorded = settled_alerts(&test_db.db, 1).await;
        assert_eq!(
            recorded.iter().map(summary).collect::<Vec<_>>(),
            [("ops".to_string(), AlertEvent::SlaMiss, None, DeliveryStatus::Delivered)],
            "{}: once, for the slow run only",
            test_db.label
        );
        assert_eq!(recorded[0].run_id, slow.run_id.as_str());
        let bodies = hook.accepted();
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["event"], "sla_miss");
        assert_eq!(bodies[0]["dag_id"], "slow");
        assert_eq!(bodies[0]["state"], "running");
        let error = bodies[0]["error"].as_str().unwrap();
        assert!(error.starts_with("not finished 1s after it became due at "), "{error}");
        stop.cancel();
        delivery.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_while_alerts_are_pending_delivers_each_exactly_once_after_restart() {
    for test_db in support::databases().await {
        let hook = WebhookServer::start().await;
        // Refused until the first daemon is dead: its deliveries can only stay pending.
        hook.received.refusing.store(true, Ordering::SeqCst);
        let project = Project::new(&test_db.url);
        project.append_config(&format!(
            "\n[alerts.ops]\nkind = \"webhook\"\nurl = \"{}/hook\"\nretries = 1000\nretry_delay = \"200ms\"\nmax_retry_delay = \"200ms\"\ntimeout = \"2s\"\n",
            hook.base
        ));
        project.write_dag(
            "revenue.yaml",
            "dag_id: revenue\nalerts: {on_failure: [ops]}\ntasks:\n  load: {command: exit 1}\n",
        );
        assert!(project.weir(&["db", "migrate"]).status.success());
        let mut first = project.serve();
        let trigger = project.weir(&["dags", "trigger", "revenue"]);
        assert!(trigger.status.success(), "{}", String::from_utf8_lossy(&trigger.stderr));
        let db = &test_db.db;
        support::wait_until_async(
            "both alerts (task and run) were tried and refused",
            Duration::from_secs(60),
            || async { all_alerts(db).await.len() == 2 && *hook.received.refused.lock().unwrap() >= 2 },
        )
        .await;
        first.sigkill();
        assert!(hook.accepted().is_empty());
        assert!(
            all_alerts(db)
                .await
                .iter()
                .all(|alert| alert.status != DeliveryStatus::Delivered),
            "{}",
            test_db.label
        );

        hook.received.refusing.store(false, Ordering::SeqCst);
        let _second = project.serve();
        let delivered = settled_alerts(db, 2).await;
        assert!(
            delivered.iter().all(|alert| alert.status == DeliveryStatus::Delivered),
            "{}: {delivered:#?}",
            test_db.label
        );
        let mut received: Vec<i64> = hook
            .accepted()
            .iter()
            .map(|body| body["alert_id"].as_i64().unwrap())
            .collect();
        received.sort_unstable();
        let ids: Vec<i64> = delivered.iter().map(|alert| alert.id).collect();
        assert_eq!(received, ids, "{}: each alert delivered exactly once", test_db.label);

        let listed = project.weir(&["alerts", "list", "--output", "json"]);
        assert!(listed.status.success());
        let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(rows.len(), 2);
        let newest = &rows[0];
        assert_eq!(newest["id"], ids[1], "newest first");
        for field in [
            "id",
            "channel",
            "event",
            "dag_id",
            "dag_run_id",
            "task_id",
            "status",
            "attempts",
            "error",
            "created_at",
        ] {
            assert!(newest.get(field).is_some(), "`{field}` in {newest}");
        }
        assert_eq!(newest["status"], "delivered");
        assert_eq!(newest["event"], "on_failure");
        assert_eq!(newest["task_id"], Value::Null);
        assert_eq!(rows[1]["task_id"], "load");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_sends_a_sample_through_a_channel_and_fails_loudly_on_a_dead_one() {
    let hook = WebhookServer::start().await;
    let refused = refusing_address().await;
    let test_db = support::databases().await.remove(0);
    let project = Project::new(&test_db.url);
    project.append_config(&format!(
        "\n[alerts.ops]\nkind = \"webhook\"\nurl = \"{}/hook\"\n\n[alerts.dead]\nkind = \"webhook\"\nurl = \"{refused}/hook\"\ntimeout = \"500ms\"\n",
        hook.base
    ));
    let sent = project.weir(&["alerts", "test", "ops"]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout),
        "sent a test alert through `ops` (webhook): delivered\n"
    );
    let bodies = hook.accepted();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["event"], "test");
    assert_eq!(bodies[0]["task_id"], "example_task");

    let dead = project.weir(&["alerts", "test", "dead"]);
    assert_eq!(dead.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&dead.stderr);
    assert!(
        stderr.contains("the test alert through `dead` (webhook) was not delivered")
            && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );

    let unknown = project.weir(&["alerts", "test", "pager"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no alert channel `pager`"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

async fn record_alert(db: &Db, channel: &str, dag_id: &str, task_id: Option<&str>) -> i64 {
    let payload = serde_json::json!({"event": "on_failure", "dag_id": dag_id});
    let mut connection = db.acquire().await.unwrap();
    alerts::insert(
        &mut connection,
        &NewAlert {
            channel,
            event: AlertEvent::OnFailure,
            dag_id,
            run_id: "manual__2026-03-01T00:00:00+00:00",
            task_id,
            payload: &payload,
        },
        Utc::now(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_delivery_is_claimed_once_and_a_lapsed_claim_goes_back_to_pending() {
    for test_db in support::databases().await {
        let id = record_alert(&test_db.db, "ops", "revenue", Some("load")).await;
        let now = Utc::now();
        let mut connection = test_db.db.acquire().await.unwrap();
        let lease = now + chrono::Duration::seconds(30);
        assert_eq!(alerts::claim(&mut connection, id, lease).await.unwrap(), Some(1));
        assert_eq!(
            alerts::claim(&mut connection, id, lease).await.unwrap(),
            None,
            "{}: a second claim loses",
            test_db.label
        );
        assert!(alerts::due(&mut connection, now, 10).await.unwrap().is_empty());
        assert_eq!(
            alerts::next_wake(&mut connection).await.unwrap(),
            Some(storage_time(lease))
        );
        assert_eq!(alerts::release_lapsed(&mut connection, now).await.unwrap(), 0);
        // The sender died: once the lease lapses the delivery is due again, its attempt counted.
        let later = now + chrono::Duration::seconds(31);
        assert_eq!(alerts::release_lapsed(&mut connection, later).await.unwrap(), 1);
        let stale = alerts::finish_attempt(&mut connection, id, 1, &alerts::AttemptOutcome::Delivered, later)
            .await
            .unwrap();
        assert!(!stale, "{}: the dead sender's outcome no longer counts", test_db.label);
        assert_eq!(
            alerts::claim(&mut connection, id, later + chrono::Duration::seconds(30))
                .await
                .unwrap(),
            Some(2)
        );
        assert!(
            alerts::finish_attempt(&mut connection, id, 2, &alerts::AttemptOutcome::Delivered, later)
                .await
                .unwrap()
        );
        let alert = alerts::get(&mut connection, id).await.unwrap().unwrap();
        assert_eq!((alert.status, alert.attempts), (DeliveryStatus::Delivered, 2));
        assert_eq!(
            alerts::claim(&mut connection, id, later).await.unwrap(),
            None,
            "delivered is final"
        );
    }
}

fn storage_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap()
}

#[tokio::test]
async fn the_api_and_the_ui_list_deliveries_newest_first() {
    for api in crate::api::apis().await {
        let db = &api.state.db;
        let first = record_alert(db, "ops", "revenue", Some("load")).await;
        let second = record_alert(db, "mail", "revenue", None).await;
        let other = record_alert(db, "ops", "inventory", None).await;
        {
            let mut connection = db.acquire().await.unwrap();
            let attempt = alerts::claim(&mut connection, first, Utc::now() + chrono::Duration::seconds(30))
                .await
                .unwrap()
                .unwrap();
            let failed = alerts::AttemptOutcome::Failed {
                error: "HTTP 500 from the hook".to_string(),
            };
            alerts::finish_attempt(&mut connection, first, attempt, &failed, Utc::now())
                .await
                .unwrap();
        }

        let all = api.get("/api/v2/alerts").await;
        assert_eq!(all.status, StatusCode::OK, "{}: {:?}", api.label, all.body);
        assert_eq!(all.body["total_entries"], 3);
        let ids: Vec<i64> = all.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| alert["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [other, second, first], "{}", api.label);

        let page = api.get("/api/v2/alerts?dag_id=revenue&limit=1&offset=1").await;
        assert_eq!(page.body["total_entries"], 2);
        let only = &page.body["alerts"][0];
        assert_eq!(only["id"], first);
        assert_eq!(only["status"], "failed");
        assert_eq!(only["attempts"], 1);
        assert_eq!(only["error"], "HTTP 500 from the hook");
        assert_eq!(only["dag_run_id"], "manual__2026-03-01T00:00:00+00:00");
        assert_eq!(only["task_id"], "load");

        let pending = api.get("/api/v2/alerts?status=pending").await;
        assert_eq!(pending.body["total_entries"], 2);
        assert!(pending.body["alerts"][0]["next_attempt_at"].is_string());

        let bad = api.get("/api/v2/alerts?status=sending").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.detail(),
            "query parameter `status` must be pending, delivered or failed, got `sending`"
        );
        let one = api.get(&format!("/api/v2/alerts/{second}")).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.body["payload"]["dag_id"], "revenue");
        assert_eq!(api.get("/api/v2/alerts/999999").await.status, StatusCode::NOT_FOUND);
        assert_eq!(api.get("/api/v2/alerts/abc").await.status, StatusCode::BAD_REQUEST);

        let page = api.get("/alerts?dag_id=revenue").await;
        assert_eq!(page.status, StatusCode::OK);
        let html = page.body.as_str().unwrap();
        assert!(
            html.contains("<a href=\"/alerts\">Alerts</a>"),
            "the nav links the page"
        );
        assert!(html.contains("badge state-failed\">failed"), "{html}");
        assert!(html.contains("HTTP 500 from the hook"));
        assert!(!html.contains("inventory"), "filtered by DAG");
        let refused = api.get("/alerts?status=bogus").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    }
}
