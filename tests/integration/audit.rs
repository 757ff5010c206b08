//! The audit log on SQLite and PostgreSQL: what the REST API, the UI's forms and the CLI record
//! (event, ids, owner, surface, address), what they do not (refused requests, dry runs, values),
//! sign-ins, `GET /api/v2/eventLogs` with its filters and pages, the Audit page, and `db clean`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Output};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weir::api::audit::{LoginOutcome, record_login};
use weir::domain::audit::{Entry, NewEntry, Surface};
use weir::domain::auth::{Principal, Role};
use weir::runtime::operations;
use weir::runtime::users::{self, NewUser};
use weir::storage::Db;
use weir::storage::event_log::{self, EntryFilter};

use crate::api::{Api, apis, apis_with};
use crate::support::{self, TestDb};

/// The name `token_for` gives the test user of `role`, written out: the owner must be exactly it.
const OP: &str = "test-op";

/// A request with `token` as its bearer, or with no `Authorization` at all.
async fn send(api: &Api, token: Option<&str>, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let (status, text) = answer(&api.router, request.body(body).unwrap()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A form post as weir's pages send it, in the session `cookie` when given.
async fn post_form(api: &Api, cookie: Option<&str>, uri: &str, form: &str) -> (StatusCode, String) {
    let mut request = support::ui_form_post(uri, form);
    if let Some(cookie) = cookie {
        support::add_session(&mut request, cookie);
    }
    answer(&api.router, request).await
}

async fn answer(router: &Router, request: Request) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Every entry, oldest first.
async fn entries(db: &Db) -> Vec<Entry> {
    let mut connection = db.acquire().await.unwrap();
    event_log::list(&mut connection, &EntryFilter::default()).await.unwrap()
}

/// Every byte of the table as text, to look for values that must not be there.
async fn raw_table(db: &Db) -> String {
    let mut connection = db.acquire().await.unwrap();
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as("SELECT event, owner, extra FROM event_log")
        .fetch_all(&mut *connection)
        .await
        .unwrap();
    format!("{rows:?}")
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn api_trigger_pause_and_clear_are_recorded_with_event_ids_and_owner() {
    for api in apis().await {
        let label = api.label;
        let token = support::token_for(&api.state, Role::Op).await;
        let op = Some(token.as_str());
        let (status, run) = send(
            &api,
            op,
            Method::POST,
            "/api/v2/dags/test/dagRuns",
            Some(json!({"dag_run_id": "audited", "conf": {"region": "us"}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}: {run}");
        let (status, _) = send(
            &api,
            op,
            Method::PATCH,
            "/api/v2/dags/test",
            Some(json!({"is_paused": true})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        api.finished_run("cleared_run").await;
        let clear = json!({"dry_run": false, "only_failed": false, "dag_run_id": "cleared_run", "task_ids": ["first"]});
        let (status, body) = send(
            &api,
            op,
            Method::POST,
            "/api/v2/dags/test/clearTaskInstances",
            Some(clear),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        let (status, _) = send(
            &api,
            op,
            Method::POST,
            "/api/v2/variables",
            Some(json!({"key": "warehouse_token", "value": "s3cr3t-audit-value-7f1"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{label}");

        let recorded = entries(&api.state.db).await;
        let events: Vec<&str> = recorded.iter().map(|entry| entry.event.as_str()).collect();
        assert_eq!(
            events,
            [
                "trigger_dag_run",
                "patch_dag",
                "post_clear_task_instances",
                "post_variable"
            ],
            "{label}"
        );
        for entry in &recorded {
            assert_eq!(entry.owner, OP, "{label}: the token's user: {entry:?}");
            assert_eq!(entry.surface, Surface::Api, "{label}: {entry:?}");
        }
        let trigger = &recorded[0];
        assert_eq!(trigger.dag_id.as_deref(), Some("test"), "{label}");
        assert_eq!(trigger.run_id.as_deref(), Some("audited"), "{label}");
        assert_eq!(
            trigger
                .logical_date
                .map(|date| date.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            run["logical_date"]
                .as_str()
                .map(|text| at(text).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            "{label}"
        );
        assert_eq!(recorded[1].extra["is_paused"], json!(true), "{label}");
        assert_eq!(recorded[2].dag_id.as_deref(), Some("test"), "{label}");
        assert_eq!(recorded[2].run_id.as_deref(), Some("cleared_run"), "{label}");
        assert_eq!(recorded[3].extra["variable_key"], "warehouse_token", "{label}");
        assert!(
            !raw_table(&api.state.db).await.contains("s3cr3t-audit-value-7f1"),
            "{label}: a variable's value reached the audit log"
        );

        // Path parameters land in their columns: a task instance marked by hand.
        let (status, body) = send(
            &api,
            op,
            Method::PATCH,
            "/api/v2/dags/test/dagRuns/cleared_run/taskInstances/second",
            Some(json!({"new_state": "failed"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        let marked = entries(&api.state.db).await.pop().unwrap();
        assert_eq!(marked.event, "patch_task_instance", "{label}");
        assert_eq!(
            (
                marked.dag_id.as_deref(),
                marked.run_id.as_deref(),
                marked.task_id.as_deref()
            ),
            (Some("test"), Some("cleared_run"), Some("second")),
            "{label}"
        );
        assert_eq!(marked.extra["new_state"], "failed", "{label}");
    }
}

#[tokio::test]
async fn refused_requests_dry_runs_and_reads_record_nothing_and_nobody_signed_in_changes_nothing() {
    let daily = "dag_id: daily\nschedule: '@daily'\nstart_date: 2026-01-01\ntasks:\n  a: { command: 'true' }\n";
    for api in apis_with(&[daily]).await {
        let label = api.label;
        let token = support::token_for(&api.state, Role::Op).await;
        let op = Some(token.as_str());
        let refused = [
            (
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                json!({"conf": {"region": "mars"}}),
            ),
            (Method::PATCH, "/api/v2/dags/nope", json!({"is_paused": true})),
            (
                Method::POST,
                "/api/v2/variables",
                json!({"key": "bad key!", "value": "x"}),
            ),
            (Method::DELETE, "/api/v2/variables/missing", json!(null)),
            (Method::POST, "/api/v2/pools", json!({"name": "p", "slots": 1})),
        ];
        for (method, uri, body) in refused {
            let body = (!body.is_null()).then_some(body);
            let (status, answer) = send(&api, op, method.clone(), uri, body).await;
            assert!(
                status.is_client_error(),
                "{label}: {method} {uri} answered {status}: {answer}"
            );
        }
        api.finished_run("kept").await;
        let dry_runs = [
            (
                Method::POST,
                "/api/v2/dags/test/clearTaskInstances",
                json!({"dag_run_id": "kept", "only_failed": false}),
            ),
            (Method::POST, "/api/v2/dags/test/dagRuns/kept/clear", json!({})),
            (
                Method::POST,
                "/api/v2/backfills/dry_run",
                json!({"dag_id": "daily", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-02T00:00:00Z"}),
            ),
        ];
        for (method, uri, body) in dry_runs {
            let (status, answer) = send(&api, op, method.clone(), uri, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{label}: {method} {uri}: {answer}");
        }
        let (status, _) = send(&api, op, Method::GET, "/api/v2/dags", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            entries(&api.state.db).await,
            [],
            "{label}: nothing changed, nothing recorded"
        );

        // Nobody signed in, a forged token, or a role too low: refused before the handler, and
        // not recorded.
        let paused_before = api.get("/api/v2/dags/test").await.body["is_paused"].clone();
        assert_eq!(
            paused_before,
            json!(false),
            "{label}: the refused posts below would pause it"
        );
        let viewer = support::token_for(&api.state, Role::Viewer).await;
        for (token, expected) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some("not.a.token"), StatusCode::UNAUTHORIZED),
            (Some(viewer.as_str()), StatusCode::FORBIDDEN),
        ] {
            let (status, answer) = send(
                &api,
                token,
                Method::PATCH,
                "/api/v2/dags/test",
                Some(json!({"is_paused": true})),
            )
            .await;
            assert_eq!(status, expected, "{label}: {answer}");
        }
        // The UI sends a form without a session to the login page: a redirect, not a change.
        let (status, _) = post_form(&api, None, "/dags/test/pause", "paused=true&next=/").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let (status, _) = post_form(&api, None, "/variables", "key=sneaky&value=x&description=").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            entries(&api.state.db).await,
            [],
            "{label}: refused callers are not recorded, as `anonymous` or otherwise"
        );
        assert_eq!(
            api.get("/api/v2/dags/test").await.body["is_paused"],
            paused_before,
            "{label}: the refused pauses changed nothing"
        );

        // The same change with the Op's token goes through, recorded as theirs.
        let (status, _) = send(
            &api,
            op,
            Method::PATCH,
            "/api/v2/dags/test",
            Some(json!({"is_paused": false})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let recorded = entries(&api.state.db).await;
        assert_eq!(recorded.len(), 1, "{label}");
        assert_eq!(recorded[0].owner, OP, "{label}");
        assert_eq!(
            recorded[0].address, None,
            "{label}: no connection info without a socket"
        );
    }
}

#[tokio::test]
async fn ui_forms_are_recorded_when_they_redirect_and_not_when_refused() {
    for api in apis().await {
        let label = api.label;
        let cookie = support::session_cookie(&support::token_for(&api.state, Role::Op).await);
        let session = Some(cookie.as_str());
        let (status, page) = post_form(&api, session, "/dags/test/pause", "paused=true&next=/").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {page}");
        let (status, page) = post_form(
            &api,
            session,
            "/variables",
            "key=ui_password&value=s3cr3t-ui-value-4c2&description=",
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {page}");
        let (status, page) = post_form(
            &api,
            session,
            "/dags/test/trigger",
            "param%3Aregion=%22kr%22&run_id=from_ui",
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {page}");

        // Refused forms answer with a page (4xx) and change nothing.
        let (status, _) = post_form(&api, session, "/dags/test/trigger", "param%3Aregion=%22mars%22").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        let (status, _) = post_form(&api, session, "/variables/delete", "key=never_set").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let (status, _) = post_form(&api, session, "/dags/test/pause", "paused=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        // A forged post (no CSRF token, from another origin, in the victim's session) is refused
        // before it is recorded.
        let forged = Request::builder()
            .method(Method::POST)
            .uri("/dags/test/pause")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "https://evil.example")
            .header(header::COOKIE, &cookie)
            .body(Body::from("paused=false"))
            .unwrap();
        let (status, _) = answer(&api.router, forged).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");

        let recorded = entries(&api.state.db).await;
        let events: Vec<&str> = recorded.iter().map(|entry| entry.event.as_str()).collect();
        assert_eq!(events, ["patch_dag", "post_variable", "trigger_dag_run"], "{label}");
        for entry in &recorded {
            assert_eq!((entry.surface, entry.owner.as_str()), (Surface::Ui, OP), "{label}");
        }
        assert_eq!(recorded[0].dag_id.as_deref(), Some("test"), "{label}");
        assert_eq!(recorded[0].extra["is_paused"], json!(true), "{label}");
        assert_eq!(recorded[1].extra["variable_key"], "ui_password", "{label}");
        assert_eq!(
            (recorded[2].dag_id.as_deref(), recorded[2].run_id.as_deref()),
            (Some("test"), Some("from_ui")),
            "{label}"
        );
        assert!(recorded[2].logical_date.is_some(), "{label}");
        assert!(
            !raw_table(&api.state.db).await.contains("s3cr3t-ui-value-4c2"),
            "{label}: a variable's value reached the audit log"
        );
    }
}

/// A layer outside weir's own that claims, in the request, that `mallory` (an Admin) asks: as
/// `Principal` and wrapped as `Extension<Principal>`.
async fn claims_mallory(mut request: Request, next: Next) -> Response {
    let mallory = Principal {
        username: "mallory".to_string(),
        role: Role::Admin,
    };
    request.extensions_mut().insert(mallory.clone());
    request.extensions_mut().insert(axum::Extension(mallory));
    next.run(request).await
}

#[tokio::test]
async fn the_owner_is_the_user_the_guard_authenticated() {
    for api in apis().await {
        let label = api.label;
        let user = support::token_for(&api.state, Role::User).await;
        let (status, body) = send(
            &api,
            Some(&user),
            Method::PATCH,
            "/api/v2/dags/test",
            Some(json!({"is_paused": true})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        // The guard's caller wins over whatever a layer outside it put in the request.
        let claimed = api.router.clone().layer(middleware::from_fn(claims_mallory));
        let request = Request::patch("/api/v2/dags/test")
            .header(header::AUTHORIZATION, format!("Bearer {user}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"is_paused": false}"#))
            .unwrap();
        let (status, body) = answer(&claimed, request).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        let owners: Vec<String> = entries(&api.state.db)
            .await
            .into_iter()
            .map(|entry| entry.owner)
            .collect();
        assert_eq!(owners, ["test-user", "test-user"], "{label}");
    }
}

#[tokio::test]
async fn the_client_address_is_recorded_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = apis().await.remove(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = api
        .router
        .clone()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"is_paused": true}"#;
    let request = format!(
        "PATCH /api/v2/dags/test HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n{body}",
        api.admin_token,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    server.abort();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let recorded = entries(&api.state.db).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].owner, "test-admin");
    assert_eq!(
        recorded[0].address.as_deref(),
        Some("127.0.0.1"),
        "the peer's address, not a header anyone can send"
    );
}

#[tokio::test]
async fn sign_ins_are_recorded_with_the_username_tried_and_the_address() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        record_login(&test_db.db, LoginOutcome::Succeeded, "ana", Surface::Ui, address).await;
        let forged = format!("mallory\r\n2026-01-01 admin login{}", "x".repeat(5000));
        record_login(&test_db.db, LoginOutcome::Failed, &forged, Surface::Api, address).await;
        let recorded = entries(&test_db.db).await;
        assert_eq!(recorded.len(), 2, "{label}");
        assert_eq!(
            (
                recorded[0].event.as_str(),
                recorded[0].owner.as_str(),
                recorded[0].surface
            ),
            ("login", "ana", Surface::Ui),
            "{label}"
        );
        assert_eq!(recorded[0].address.as_deref(), Some("10.0.0.7"), "{label}");
        assert_eq!(recorded[1].event, "login_failed", "{label}");
        assert!(
            recorded[1].owner.starts_with("mallory2026-01-01 admin login"),
            "{label}"
        );
        assert!(!recorded[1].owner.contains('\n'), "{label}: no forged lines");
        assert_eq!(recorded[1].owner.chars().count(), 256, "{label}: bounded");
    }
}

fn token_request(username: &str, password: &str) -> Request {
    Request::post("/auth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap()
}

#[tokio::test]
async fn each_login_through_the_token_endpoint_or_the_login_form_is_recorded_once() {
    for api in apis().await {
        let label = api.label;
        let ana = NewUser {
            username: "ana".to_string(),
            password: "ana's password".to_string(),
            role: Role::User,
            email: None,
            first_name: None,
            last_name: None,
        };
        users::create_user(&api.state.db, ana).await.unwrap();

        let (status, body) = answer(&api.router, token_request("ana", "ana's password")).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let (status, body) = answer(&api.router, token_request("ana", "wrong password")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
        let (status, page) = post_form(&api, None, "/login", "username=ana&password=ana%27s+password&next=%2F").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {page}");
        let (status, _) = post_form(&api, None, "/login", "username=ana&password=wrong&next=%2F").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");

        let recorded: Vec<(String, String, Surface)> = entries(&api.state.db)
            .await
            .into_iter()
            .map(|entry| (entry.event, entry.owner, entry.surface))
            .collect();
        let expected = [
            ("login", Surface::Api),
            ("login_failed", Surface::Api),
            ("login", Surface::Ui),
            ("login_failed", Surface::Ui),
        ]
        .map(|(event, surface)| (event.to_string(), "ana".to_string(), surface));
        assert_eq!(recorded, expected, "{label}: one entry per attempt, never the password");
        assert!(
            !raw_table(&api.state.db).await.contains("password"),
            "{label}: a password reached the audit log"
        );
    }
}

#[tokio::test]
async fn a_logout_is_recorded_as_the_session_user_and_without_a_session_not_at_all() {
    for api in apis().await {
        let label = api.label;
        let (status, _) = post_form(&api, None, "/logout", "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(entries(&api.state.db).await, [], "{label}: nobody logged out");
        let cookie = support::session_cookie(&support::token_for(&api.state, Role::Op).await);
        let (status, _) = post_form(&api, Some(&cookie), "/logout", "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let recorded: Vec<(String, String, Surface)> = entries(&api.state.db)
            .await
            .into_iter()
            .map(|entry| (entry.event, entry.owner, entry.surface))
            .collect();
        assert_eq!(
            recorded,
            [("logout".to_string(), OP.to_string(), Surface::Ui)],
            "{label}"
        );
    }
}

/// Entries at known times: three by `ana` on DAG `test` an hour apart from 10:00, a sign-in by
/// `bo`, and one by the CLI on `other`.
async fn seed(db: &Db) {
    let mut connection = db.acquire().await.unwrap();
    let rows = [
        (
            NewEntry::new("trigger_dag_run", "ana", Surface::Api)
                .dag("test")
                .run("r1"),
            "2026-03-01T10:00:00Z",
        ),
        (
            NewEntry::new("patch_dag", "ana", Surface::Ui).dag("test"),
            "2026-03-01T11:00:00Z",
        ),
        (
            NewEntry::new("patch_task_instance", "ana", Surface::Api)
                .dag("test")
                .run("r1")
                .task("first")
                .detail("new_state", "failed"),
            "2026-03-01T12:00:00Z",
        ),
        (NewEntry::new("login", "bo", Surface::Api), "2026-03-01T13:00:00Z"),
        (
            NewEntry::new("trigger_dag_run", "root", Surface::Cli).dag("other"),
            "2026-03-01T14:00:00Z",
        ),
    ];
    for (entry, time) in rows {
        event_log::insert(&mut connection, &entry, at(time)).await.unwrap();
    }
}

fn ids(body: &Value) -> Vec<i64> {
    body["event_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event_log_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn event_logs_are_served_in_airflows_shape_with_filters_and_pages() {
    for api in apis().await {
        let label = api.label;
        seed(&api.state.db).await;
        let all = api.get("/api/v2/eventLogs").await;
        assert_eq!(all.status, StatusCode::OK, "{label}: {:?}", all.body);
        assert_eq!(all.body["total_entries"], 5, "{label}");
        let every = ids(&all.body);
        assert!(
            every.windows(2).all(|pair| pair[0] < pair[1]),
            "{label}: oldest first by default"
        );

        let entry = &all.body["event_logs"][2];
        for field in [
            "event_log_id",
            "when",
            "dag_id",
            "task_id",
            "run_id",
            "map_index",
            "try_number",
            "event",
            "logical_date",
            "owner",
            "owner_display_name",
            "extra",
        ] {
            assert!(entry.get(field).is_some(), "{label}: missing {field} in {entry}");
        }
        assert_eq!(entry["when"], "2026-03-01T12:00:00Z", "{label}");
        assert_eq!(entry["task_id"], "first", "{label}");
        assert_eq!(entry["map_index"], Value::Null, "{label}");
        assert_eq!(entry["surface"], "api", "{label}");
        let extra: Value = serde_json::from_str(entry["extra"].as_str().unwrap()).unwrap();
        assert_eq!(
            extra,
            json!({"new_state": "failed"}),
            "{label}: extra is JSON text, as in Airflow"
        );

        let cases: [(&str, &[usize]); 11] = [
            ("dag_id=test", &[0, 1, 2]),
            ("dag_id=test&task_id=first", &[2]),
            ("run_id=r1", &[0, 2]),
            ("owner=bo", &[3]),
            ("event=trigger_dag_run", &[0, 4]),
            ("included_events=login,patch_dag", &[1, 3]),
            ("excluded_events=trigger_dag_run&excluded_events=login", &[1, 2]),
            ("after=2026-03-01T11:00:00Z&before=2026-03-01T14:00:00Z", &[2, 3]),
            ("surface=cli", &[4]),
            ("order_by=-when&limit=2", &[4, 3]),
            ("order_by=-when&limit=2&offset=2", &[2, 1]),
        ];
        for (query, expected) in cases {
            let answer = api.get(&format!("/api/v2/eventLogs?{query}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{label}: {query}: {:?}", answer.body);
            let expected: Vec<i64> = expected.iter().map(|index| every[*index]).collect();
            assert_eq!(ids(&answer.body), expected, "{label}: {query}");
        }
        let paged = api.get("/api/v2/eventLogs?limit=2&offset=4").await;
        assert_eq!(paged.body["total_entries"], 5, "{label}: the total ignores the page");
        assert_eq!(ids(&paged.body), [every[4]], "{label}");
        let clamped = api.get("/api/v2/eventLogs?limit=100000").await;
        assert_eq!(clamped.status, StatusCode::OK, "{label}: larger limits are clamped");

        let one = api.get(&format!("/api/v2/eventLogs/{}", every[3])).await;
        assert_eq!(one.status, StatusCode::OK, "{label}");
        assert_eq!(one.body["event"], "login", "{label}");
        assert_eq!(one.body["owner"], "bo", "{label}");
        assert_eq!(one.body["extra"], Value::Null, "{label}");

        for (uri, status, words) in [
            (
                "/api/v2/eventLogs/999999",
                StatusCode::NOT_FOUND,
                "no event log entry 999999",
            ),
            (
                "/api/v2/eventLogs/abc",
                StatusCode::BAD_REQUEST,
                "event_log_id must be an integer",
            ),
            (
                "/api/v2/eventLogs?before=yesterday",
                StatusCode::BAD_REQUEST,
                "`before`: `yesterday` is not a date",
            ),
            (
                "/api/v2/eventLogs?order_by=extra",
                StatusCode::BAD_REQUEST,
                "cannot order by `extra`",
            ),
            (
                "/api/v2/eventLogs?surface=web",
                StatusCode::BAD_REQUEST,
                "`web` is not a surface",
            ),
            ("/api/v2/eventLogs?try_number=-1", StatusCode::BAD_REQUEST, "try_number"),
            ("/api/v2/eventLogs?limit=-1", StatusCode::BAD_REQUEST, "limit"),
        ] {
            let answer = api.get(uri).await;
            assert_eq!(answer.status, status, "{label}: {uri}: {:?}", answer.body);
            assert!(answer.detail().contains(words), "{label}: {uri}: {}", answer.detail());
        }
        // Reading the audit log is not itself recorded.
        assert_eq!(entries(&api.state.db).await.len(), 5, "{label}");
    }
}

#[tokio::test]
async fn the_audit_page_lists_entries_newest_first_with_filters_and_pages() {
    for api in apis().await {
        let label = api.label;
        seed(&api.state.db).await;
        let mut connection = api.state.db.acquire().await.unwrap();
        let hostile = NewEntry::new("login_failed", "<script>alert(1)</script>", Surface::Ui);
        event_log::insert(&mut connection, &hostile, at("2026-03-02T00:00:00Z"))
            .await
            .unwrap();
        drop(connection);

        let page = api.get("/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{label}");
        let html = page.body.as_str().unwrap();
        assert!(
            html.contains(r#"<a href="/audit">Audit</a>"#),
            "{label}: linked in the nav"
        );
        assert!(!html.contains("<script>alert(1)"), "{label}: owners are escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{label}");
        let newest = html.find("login_failed").unwrap();
        let oldest = html.find("2026-03-01 10:00:00").unwrap();
        assert!(newest < oldest, "{label}: newest first");

        let filtered = api.get("/audit?dag_id=test&event=patch_dag&owner=&surface=").await;
        let html = filtered.body.as_str().unwrap();
        assert!(html.contains("2026-03-01 11:00:00"), "{label}");
        assert!(!html.contains("2026-03-01 10:00:00"), "{label}: {html}");
        let by_surface = api.get("/audit?surface=cli").await;
        assert!(
            by_surface
                .body
                .as_str()
                .unwrap()
                .contains(r#"<a href="/dags/other">other</a>"#),
            "{label}"
        );
        assert_eq!(
            api.get("/audit?surface=web").await.status,
            StatusCode::BAD_REQUEST,
            "{label}"
        );

        // Sixty more: a page holds fifty, the next one the rest.
        let mut connection = api.state.db.acquire().await.unwrap();
        for minute in 0..60 {
            let entry =
                NewEntry::new("delete_variable", "ana", Surface::Cli).detail("variable_key", format!("k{minute}"));
            let time = at("2026-03-03T00:00:00Z") + chrono::Duration::minutes(minute);
            event_log::insert(&mut connection, &entry, time).await.unwrap();
        }
        drop(connection);
        let first = api.get("/audit?event=delete_variable").await;
        let html = first.body.as_str().unwrap();
        assert!(html.contains("entries 1–50 of 60"), "{label}: {html}");
        assert!(html.contains("k59") && !html.contains(">k9<"), "{label}");
        assert!(html.contains("offset=50"), "{label}");
        let second = api
            .get("/audit?dag_id=&event=delete_variable&owner=&surface=&offset=50")
            .await;
        let html = second.body.as_str().unwrap();
        assert!(html.contains("entries 51–60 of 60"), "{label}: {html}");
        assert!(html.contains(">k9<") && !html.contains(">k59<"), "{label}");
    }
}

#[test]
fn the_audit_template_has_no_inline_script_style_or_handlers_and_only_get_forms() {
    let template = include_str!("../../web/templates/audit.html");
    assert!(!template.contains("<script"), "no inline script");
    assert!(!template.contains("<style"), "no inline style");
    assert!(!template.contains("style="), "no style attributes");
    let handler = regex::Regex::new(r"(?i)\son[a-z]+\s*=").unwrap();
    assert!(!handler.is_match(template), "no inline event handlers");
    let forms = regex::Regex::new(r"<form[^>]*>").unwrap();
    for form in forms.find_iter(template) {
        assert!(form.as_str().contains(r#"method="get""#), "{}", form.as_str());
    }
}

#[tokio::test]
async fn db_clean_ages_out_audit_entries_older_than_the_cutoff() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let db = &test_db.db;
        let mut connection = db.acquire().await.unwrap();
        let rows = [
            (
                NewEntry::new("patch_dag", "ana", Surface::Api).dag("test"),
                "2026-01-01T00:00:00Z",
            ),
            (NewEntry::new("login", "ana", Surface::Ui), "2026-01-02T00:00:00Z"),
            (
                NewEntry::new("patch_dag", "ana", Surface::Api).dag("other"),
                "2026-01-03T00:00:00Z",
            ),
            (
                NewEntry::new("patch_dag", "ana", Surface::Api).dag("test"),
                "2026-06-01T00:00:00Z",
            ),
        ];
        for (entry, time) in rows {
            event_log::insert(&mut connection, &entry, at(time)).await.unwrap();
        }
        drop(connection);
        let logs = tempfile::tempdir().unwrap();
        let cutoff = at("2026-03-01T00:00:00Z");
        let test_dag = weir::domain::ids::DagId::parse("test").unwrap();

        let dry = operations::clean_history(db, logs.path(), cutoff, None, true)
            .await
            .unwrap();
        assert_eq!(dry.event_logs, 3, "{label}");
        assert_eq!(entries(db).await.len(), 4, "{label}: a dry run removes nothing");

        let one_dag = operations::clean_history(db, logs.path(), cutoff, Some(&test_dag), false)
            .await
            .unwrap();
        assert_eq!(one_dag.event_logs, 1, "{label}: only that DAG's old entries");
        let everything = operations::clean_history(db, logs.path(), cutoff, None, false)
            .await
            .unwrap();
        assert_eq!(everything.event_logs, 2, "{label}: the sign-in and the other DAG's");
        let left = entries(db).await;
        assert_eq!(left.len(), 1, "{label}");
        assert_eq!(left[0].when, at("2026-06-01T00:00:00Z"), "{label}: newer entries stay");
    }
}

fn weir(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn os_user() -> String {
    let output = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn project(test_db: &TestDb) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("dags")).unwrap();
    std::fs::write(
        folder.path().join("dags/daily.yaml"),
        "dag_id: daily\nschedule: '0 3 * * *'\nstart_date: 2026-01-01\ntasks:\n  a: { command: 'true' }\n",
    )
    .unwrap();
    std::fs::write(
        folder.path().join("config.toml"),
        format!(
            "[core]\ndags_folder = \"dags\"\n\n[database]\nurl = \"{}\"\n",
            test_db.url
        ),
    )
    .unwrap();
    folder
}

#[tokio::test]
async fn cli_changes_are_recorded_with_the_os_user() {
    let user = os_user();
    for test_db in support::databases().await {
        let label = test_db.label;
        let project = project(&test_db);
        let commands: [&[&str]; 6] = [
            &["dags", "trigger", "daily", "--run-id", "from_cli"],
            &["dags", "pause", "daily"],
            &["variables", "set", "cli_secret", "s3cr3t-cli-value-91d"],
            &["variables", "delete", "cli_secret"],
            &["dags", "list"],
            &["db", "clean", "--before", "2000-01-01"],
        ];
        for args in commands {
            let output = weir(project.path(), args);
            assert!(
                output.status.success(),
                "{label}: weir {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // A refused command records nothing.
        let refused = weir(project.path(), &["dags", "trigger", "nope"]);
        assert_eq!(refused.status.code(), Some(1), "{label}");

        let recorded = entries(&test_db.db).await;
        let events: Vec<&str> = recorded.iter().map(|entry| entry.event.as_str()).collect();
        assert_eq!(
            events,
            [
                "trigger_dag_run",
                "patch_dag",
                "post_variable",
                "delete_variable",
                "db_clean"
            ],
            "{label}"
        );
        for entry in &recorded {
            assert_eq!(entry.owner, user, "{label}: {entry:?}");
            assert_eq!(entry.surface, Surface::Cli, "{label}: {entry:?}");
            assert!(entry.address.is_some(), "{label}: the host name");
        }
        assert_eq!(
            (recorded[0].dag_id.as_deref(), recorded[0].run_id.as_deref()),
            (Some("daily"), Some("from_cli")),
            "{label}"
        );
        assert_eq!(recorded[1].extra["is_paused"], json!(true), "{label}");
        assert_eq!(recorded[2].extra["variable_key"], "cli_secret", "{label}");
        assert!(
            !raw_table(&test_db.db).await.contains("s3cr3t-cli-value-91d"),
            "{label}: a variable's value reached the audit log"
        );
    }
}
