//! `/api/v2/backfills`: dry run, create, list, get, pause, unpause and cancel, and the refusals
//! of bad input (unknown DAG, unscheduled DAG, empty range, bad conf, a second active backfill).

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use weir::domain::ids::DagId;
use weir::domain::state::{RunState, RunType};
use weir::storage::runs::{self, NewRun};

use super::{Api, apis_with};

/// A daily DAG with a param, paused so nothing but the backfill makes runs.
const DAILY_YAML: &str = "
dag_id: daily
schedule: '@daily'
start_date: 2026-01-01
is_paused_upon_creation: true
params:
  rows: { type: integer, default: 1 }
tasks:
  work: { command: echo work }
";

fn day(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{text}T00:00:00Z"))
        .unwrap()
        .with_timezone(&Utc)
}

async fn daily_apis() -> Vec<Api> {
    apis_with(&[DAILY_YAML]).await
}

/// A finished scheduled run of `daily` on `date`.
async fn scheduled_run(api: &Api, date: &str, state: RunState) {
    let logical_date = day(date);
    let new_run = NewRun {
        dag_id: DagId::parse("daily").unwrap(),
        run_id: runs::generated_run_id(RunType::Scheduled, logical_date),
        run_type: RunType::Scheduled,
        logical_date,
        data_interval_start: logical_date,
        data_interval_end: logical_date + chrono::Duration::days(1),
        run_after: logical_date + chrono::Duration::days(1),
        conf: Value::Null,
        owner: None,
    };
    let mut connection = api.state.db.begin().await.unwrap();
    let run = runs::insert(&mut connection, &new_run, chrono::Utc::now())
        .await
        .unwrap();
    runs::start(&mut connection, run.pk, chrono::Utc::now()).await.unwrap();
    assert!(
        runs::finish(&mut connection, run.pk, state, chrono::Utc::now())
            .await
            .unwrap()
    );
    connection.commit().await.unwrap();
}

fn body(from: &str, to: &str) -> Value {
    json!({"dag_id": "daily", "from_date": from, "to_date": to})
}

async fn create(api: &Api, body: Value) -> i64 {
    let answer = api.call(Method::POST, "/api/v2/backfills", Some(body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
    answer.body["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_dry_run_lists_the_dates_to_run_and_creates_nothing() {
    for api in daily_apis().await {
        let label = api.label;
        scheduled_run(&api, "2026-03-02", RunState::Success).await;
        scheduled_run(&api, "2026-03-03", RunState::Failed).await;
        let mut request = body("2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z");
        request["reprocess_behavior"] = json!("failed");
        let answer = api
            .call(Method::POST, "/api/v2/backfills/dry_run", Some(request.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["total_entries"], 4, "{label}: {answer:?}");
        assert_eq!(answer.body["skipped"], 1, "{label}: the successful run is left alone");
        let dates: Vec<&str> = answer.body["backfills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|date| date["logical_date"].as_str().unwrap())
            .collect();
        assert_eq!(
            dates,
            [
                "2026-03-01T00:00:00Z",
                "2026-03-03T00:00:00Z",
                "2026-03-04T00:00:00Z",
                "2026-03-05T00:00:00Z"
            ],
            "{label}"
        );
        let rerun = &answer.body["backfills"][1];
        assert_eq!(rerun["action"], "rerun", "{label}: {rerun}");
        assert_eq!(rerun["dag_run_id"], "scheduled__2026-03-03T00:00:00+00:00", "{label}");
        assert_eq!(answer.body["backfills"][0]["action"], "create");

        request["run_backwards"] = json!(true);
        request["reprocess_behavior"] = json!("none");
        let backwards = api.call(Method::POST, "/api/v2/backfills/dry_run", Some(request)).await;
        assert_eq!(backwards.body["total_entries"], 3, "{label}: {backwards:?}");
        assert_eq!(backwards.body["backfills"][0]["logical_date"], "2026-03-05T00:00:00Z");

        let listed = api.get("/api/v2/backfills").await;
        assert_eq!(listed.body["total_entries"], 0, "{label}: a dry run creates nothing");
    }
}

#[tokio::test]
async fn backfills_are_created_listed_and_read() {
    for api in daily_apis().await {
        let label = api.label;
        scheduled_run(&api, "2026-03-03", RunState::Failed).await;
        let mut request = body("2026-03-01", "2026-03-04");
        request["reprocess_behavior"] = json!("failed");
        request["max_active_runs"] = json!(2);
        request["run_backwards"] = json!(true);
        request["dag_run_conf"] = json!({"rows": 5});
        request["run_on_latest_version"] = json!(true);
        let answer = api.call(Method::POST, "/api/v2/backfills", Some(request)).await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        let created = answer.body;
        let id = created["id"].as_i64().unwrap();
        for (field, expected) in [
            ("dag_id", json!("daily")),
            ("dag_display_name", json!("daily")),
            ("from_date", json!("2026-03-01T00:00:00Z")),
            // A date alone as the last date runs through the end of that day.
            ("to_date", json!("2026-03-04T23:59:59.999999Z")),
            ("dag_run_conf", json!({"rows": 5})),
            ("is_paused", json!(false)),
            ("reprocess_behavior", json!("failed")),
            ("max_active_runs", json!(2)),
            ("run_backwards", json!(true)),
            ("completed_at", Value::Null),
            ("state", json!("running")),
            ("runs_total", json!(4)),
            ("runs_done", json!(0)),
        ] {
            assert_eq!(created[field], expected, "{label}: {field} in {created}");
        }
        assert!(created["created_at"].is_string() && created["updated_at"].is_string());

        let one = api.get(&format!("/api/v2/backfills/{id}")).await;
        assert_eq!(one.status, StatusCode::OK, "{label}: {one:?}");
        assert_eq!(one.body, created, "{label}");

        let second = api
            .call(
                Method::POST,
                "/api/v2/backfills",
                Some(body("2026-04-01", "2026-04-02")),
            )
            .await;
        assert_eq!(second.status, StatusCode::CONFLICT, "{label}: {second:?}");
        assert!(
            second
                .detail()
                .contains(&format!("DAG `daily` already has an active backfill (id {id}")),
            "{label}: {second:?}"
        );
        api.call(Method::PUT, &format!("/api/v2/backfills/{id}/cancel"), None)
            .await;
        let later = create(&api, body("2026-04-01", "2026-04-02")).await;

        let listed = api.get("/api/v2/backfills?dag_id=daily").await;
        assert_eq!(listed.status, StatusCode::OK, "{label}: {listed:?}");
        assert_eq!(listed.body["total_entries"], 2, "{label}: {listed:?}");
        assert_eq!(listed.body["backfills"][0]["id"], id, "{label}: ordered by id");
        let newest = api.get("/api/v2/backfills?order_by=-id&limit=1").await;
        assert_eq!(newest.body["backfills"][0]["id"], later, "{label}: {newest:?}");
        assert_eq!(newest.body["backfills"].as_array().unwrap().len(), 1);
        assert_eq!(newest.body["total_entries"], 2);
        let paged = api.get("/api/v2/backfills?offset=1").await;
        assert_eq!(paged.body["backfills"][0]["id"], later, "{label}: {paged:?}");
        let other = api.get("/api/v2/backfills?dag_id=test").await;
        assert_eq!(other.body["total_entries"], 0, "{label}: {other:?}");

        for (query, status, needle) in [
            ("dag_id=missing", StatusCode::NOT_FOUND, "no DAG `missing`"),
            ("dag_id=bad%20id", StatusCode::BAD_REQUEST, "is not a valid DAG id"),
            ("order_by=colour", StatusCode::BAD_REQUEST, "cannot order by"),
            (
                "limit=-1",
                StatusCode::BAD_REQUEST,
                "`limit` must be a non-negative integer",
            ),
        ] {
            let answer = api.get(&format!("/api/v2/backfills?{query}")).await;
            assert_eq!(answer.status, status, "{label} {query}: {answer:?}");
            assert!(answer.detail().contains(needle), "{label} {query}: {answer:?}");
        }
    }
}

#[tokio::test]
async fn backfills_are_paused_resumed_and_cancelled() {
    for api in daily_apis().await {
        let label = api.label;
        let id = create(&api, body("2026-03-01", "2026-03-03")).await;
        let put = |action: &str| format!("/api/v2/backfills/{id}/{action}");

        let paused = api.call(Method::PUT, &put("pause"), None).await;
        assert_eq!(paused.status, StatusCode::OK, "{label}: {paused:?}");
        assert_eq!(paused.body["is_paused"], true);
        assert_eq!(paused.body["state"], "paused");
        let again = api.call(Method::PUT, &put("pause"), None).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{label}: {again:?}");
        assert!(
            again.detail().contains(&format!("backfill {id} is paused")),
            "{again:?}"
        );

        let resumed = api.call(Method::PUT, &put("unpause"), None).await;
        assert_eq!(resumed.status, StatusCode::OK, "{label}: {resumed:?}");
        assert_eq!(resumed.body["is_paused"], false);
        assert_eq!(resumed.body["state"], "running");

        let cancelled = api.call(Method::PUT, &put("cancel"), None).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{label}: {cancelled:?}");
        assert_eq!(cancelled.body["state"], "cancelled");
        assert!(cancelled.body["completed_at"].is_string(), "{cancelled:?}");
        for action in ["pause", "unpause", "cancel"] {
            let answer = api.call(Method::PUT, &put(action), None).await;
            assert_eq!(answer.status, StatusCode::CONFLICT, "{label} {action}: {answer:?}");
            assert!(answer.detail().contains("is cancelled: it cannot become"), "{answer:?}");
        }

        for action in ["pause", "unpause", "cancel"] {
            let answer = api
                .call(Method::PUT, &format!("/api/v2/backfills/999/{action}"), None)
                .await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{label} {action}: {answer:?}");
            assert!(answer.detail().contains("no backfill with id 999"), "{answer:?}");
        }
        let missing = api.get("/api/v2/backfills/999").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{label}: {missing:?}");
        for bad in ["abc", "-1"] {
            let answer = api.get(&format!("/api/v2/backfills/{bad}")).await;
            assert_eq!(
                answer.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{label} {bad}: {answer:?}"
            );
            assert!(answer.detail().contains("backfill_id must be"), "{answer:?}");
        }
        let wrong_method = api.call(Method::POST, &put("pause"), Some(json!({}))).await;
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED, "{wrong_method:?}");
    }
}

#[tokio::test]
async fn bad_backfill_requests_are_refused_with_a_reason() {
    for api in daily_apis().await {
        let label = api.label;
        let with = |changes: Value| {
            let mut request = body("2026-03-01", "2026-03-03");
            for (key, value) in changes.as_object().unwrap() {
                if value.is_null() {
                    request.as_object_mut().unwrap().remove(key);
                } else {
                    request[key] = value.clone();
                }
            }
            request
        };
        let cases = [
            (
                with(json!({"dag_id": "missing"})),
                StatusCode::NOT_FOUND,
                "DAG `missing` is not loaded",
            ),
            (
                with(json!({"dag_id": "test"})),
                StatusCode::BAD_REQUEST,
                "only scheduled DAGs have logical dates to backfill",
            ),
            (
                with(json!({"from_date": "2026-03-05"})),
                StatusCode::BAD_REQUEST,
                "the range is empty: from 2026-03-05",
            ),
            (
                with(json!({"from_date": "2025-01-01", "to_date": "2025-01-05"})),
                StatusCode::BAD_REQUEST,
                "has no logical dates between",
            ),
            (
                with(json!({"reprocess_behavior": "sometimes"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown reprocess behavior `sometimes`",
            ),
            (
                with(json!({"dag_run_conf": {"rows": "many"}})),
                StatusCode::BAD_REQUEST,
                "param `rows`",
            ),
            (
                with(json!({"dag_run_conf": "rows=5"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "dag_run_conf",
            ),
            (
                with(json!({"from_date": "yesterday"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "from_date `yesterday` is not a date",
            ),
            (
                with(json!({"max_active_runs": 0})),
                StatusCode::BAD_REQUEST,
                "max_active_runs must be at least 1",
            ),
            (
                with(json!({"max_active_runs": -1})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "max_active_runs",
            ),
            (
                with(json!({"to_date": null})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "to_date",
            ),
            (
                with(json!({"from_date": "0001-01-01", "to_date": "9999-12-31"})),
                StatusCode::BAD_REQUEST,
                "0001-01-01T00:00:00Z is outside the dates weir accepts: use a date from 1000-01-01 to 9999-12-31",
            ),
            (
                with(json!({"from_date": "1000-01-01", "to_date": "9999-12-30"})),
                StatusCode::BAD_REQUEST,
                "holds more than 10000 logical dates of schedule `@daily`",
            ),
            (
                with(json!({"colour": "red"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `colour`",
            ),
            (
                with(json!({"dag_id": "../x"})),
                StatusCode::BAD_REQUEST,
                "is not a valid DAG id",
            ),
        ];
        for path in ["/api/v2/backfills", "/api/v2/backfills/dry_run"] {
            for (request, status, needle) in &cases {
                let answer = api.call(Method::POST, path, Some(request.clone())).await;
                assert_eq!(answer.status, *status, "{label} {path} {request}: {answer:?}");
                assert!(answer.detail().contains(needle), "{label} {path} {request}: {answer:?}");
            }
            let malformed = api.raw(Method::POST, path, "application/json", "{").await;
            assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{label}: {malformed:?}");
        }
        let listed = api.get("/api/v2/backfills").await;
        assert_eq!(listed.body["total_entries"], 0, "{label}: nothing was created");
    }
}

/// Every minute from 1000 to 9999 is billions of dates: the refusal counts one past the limit,
/// without listing them, and says so.
const EVERY_MINUTE_YAML: &str = "
dag_id: every_minute
schedule: '* * * * *'
start_date: 1000-01-01
is_paused_upon_creation: true
tasks:
  work: { command: echo work }
";

#[tokio::test]
async fn a_backfill_of_billions_of_minutes_is_refused_after_counting_one_past_the_limit() {
    for api in apis_with(&[EVERY_MINUTE_YAML]).await {
        let label = api.label;
        for path in ["/api/v2/backfills/dry_run", "/api/v2/backfills"] {
            let request = json!({"dag_id": "every_minute", "from_date": "1000-01-01", "to_date": "9999-12-31"});
            let answer = api.call(Method::POST, path, Some(request)).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{label} {path}: {answer:?}");
            let detail = answer.detail();
            assert!(
                detail.contains("holds more than 10000 logical dates"),
                "{label}: {detail}"
            );
            assert!(detail.contains("[core] max_backfill_dates"), "{label}: {detail}");
        }
        // Exactly the limit is fine: 10,000 minutes.
        let request =
            json!({"dag_id": "every_minute", "from_date": "2026-03-01T00:00:00Z", "to_date": "2026-03-07T22:39:00Z"});
        let answer = api.call(Method::POST, "/api/v2/backfills/dry_run", Some(request)).await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["total_entries"], 10_000, "{label}");
        let listed = api.get("/api/v2/backfills").await;
        assert_eq!(listed.body["total_entries"], 0, "{label}: nothing was created");
    }
}

#[tokio::test]
async fn a_backfill_with_nothing_to_run_is_refused_with_409_naming_the_reprocess_that_would_rerun_it() {
    for api in daily_apis().await {
        let label = api.label;
        scheduled_run(&api, "2026-03-01", RunState::Success).await;
        scheduled_run(&api, "2026-03-02", RunState::Failed).await;
        let refused = api
            .call(
                Method::POST,
                "/api/v2/backfills",
                Some(body("2026-03-01", "2026-03-02")),
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{label}: {refused:?}");
        let detail = refused.detail();
        for needle in [
            "nothing to backfill: all 2 logical dates",
            "(1 success, 1 failed)",
            "reprocess `none` re-runs none of them, so no backfill was created",
            "reprocess `failed` re-runs the 1 failed run(s)",
            "`reprocess_behavior` in the REST API",
        ] {
            assert!(detail.contains(needle), "{label}: {needle:?} not in {detail}");
        }
        let listed = api.get("/api/v2/backfills").await;
        assert_eq!(listed.body["total_entries"], 0, "{label}: nothing was recorded");

        let mut rerun_failed = body("2026-03-01", "2026-03-02");
        rerun_failed["reprocess_behavior"] = json!("failed");
        create(&api, rerun_failed).await;
    }
}
