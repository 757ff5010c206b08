//! `/api/v2/dags/{dag_id}/dagRuns`: trigger, list, get, set state, clear, delete.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::apis;

#[tokio::test]
async fn triggering_validates_conf_against_params_and_refuses_duplicates() {
    for api in apis().await {
        let label = api.label;
        let answer = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                Some(json!({"logical_date": null, "conf": {"region": "us"}})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["state"], "queued");
        assert_eq!(answer.body["run_type"], "manual");
        assert_eq!(answer.body["conf"], json!({"region": "us"}));
        assert_eq!(answer.body["dag_versions"], json!([]));
        assert!(answer.body["run_after"].is_string());

        let defaults = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                Some(json!({"dag_run_id": "mine"})),
            )
            .await;
        assert_eq!(defaults.status, StatusCode::OK, "{defaults:?}");
        assert_eq!(defaults.body["dag_run_id"], "mine");
        assert_eq!(defaults.body["conf"], json!({"region": "kr"}), "defaults filled in");
        let again = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                Some(json!({"dag_run_id": "mine"})),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
        assert!(again.detail().contains("already has a run with id `mine`"), "{again:?}");

        let dated = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                Some(json!({"dag_run_id": "dated", "logical_date": "2026-03-01T09:00:00+09:00"})),
            )
            .await;
        assert_eq!(dated.body["logical_date"], "2026-03-01T00:00:00Z", "{dated:?}");

        for (body, status, needle) in [
            (
                json!({"conf": {"region": "xx"}}),
                StatusCode::BAD_REQUEST,
                "conf does not match the DAG's params: param `region`",
            ),
            (json!({"conf": "region=us"}), StatusCode::UNPROCESSABLE_ENTITY, "conf"),
            (
                json!({"logical_date": "yesterday"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "logical_date",
            ),
            (
                json!({"dag_run_id": "../escape"}),
                StatusCode::BAD_REQUEST,
                "is not a valid run id",
            ),
            (
                json!({"colour": "red"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `colour`",
            ),
            (
                json!({"data_interval_start": "2026-03-01T00:00:00Z"}),
                StatusCode::BAD_REQUEST,
                "give both",
            ),
            (json!({"note": "hi"}), StatusCode::BAD_REQUEST, "notes"),
        ] {
            let answer = api
                .call(Method::POST, "/api/v2/dags/test/dagRuns", Some(body.clone()))
                .await;
            assert_eq!(answer.status, status, "{label} {body}: {answer:?}");
            assert!(answer.detail().contains(needle), "{label} {body}: {answer:?}");
        }
        let unknown = api
            .call(Method::POST, "/api/v2/dags/missing/dagRuns", Some(json!({})))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
        let malformed = api
            .raw(Method::POST, "/api/v2/dags/test/dagRuns", "application/json", "{")
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{malformed:?}");
    }
}

#[tokio::test]
async fn runs_are_listed_per_dag_and_for_all_dags_with_filters_and_pages() {
    for api in apis().await {
        let label = api.label;
        let done = api.finished_run("run_a").await;
        api.finish(&done).await;
        api.finished_run("run_b").await;
        let all = api.get("/api/v2/dags/~/dagRuns").await;
        assert_eq!(all.status, StatusCode::OK, "{label}: {all:?}");
        assert_eq!(all.body["total_entries"], 2);
        let ids: Vec<&str> = all.body["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["dag_run_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["run_a", "run_b"], "ordered by id by default");
        let newest = api.get("/api/v2/dags/test/dagRuns?order_by=-id&limit=1").await;
        assert_eq!(newest.body["dag_runs"][0]["dag_run_id"], "run_b", "{newest:?}");
        assert_eq!(newest.body["total_entries"], 2);
        let succeeded = api.get("/api/v2/dags/test/dagRuns?state=success").await;
        assert_eq!(succeeded.body["total_entries"], 1, "{succeeded:?}");
        assert!(succeeded.body["dag_runs"][0]["duration"].is_number());
        let typed = api.get("/api/v2/dags/test/dagRuns?run_type=manual&offset=1").await;
        assert_eq!(typed.body["total_entries"], 2, "{typed:?}");
        assert_eq!(typed.body["dag_runs"].as_array().unwrap().len(), 1);
        let clamped = api.get("/api/v2/dags/test/dagRuns?limit=100000").await;
        assert_eq!(clamped.status, StatusCode::OK);

        for (query, needle) in [
            ("state=done", "unknown run state `done`"),
            ("limit=-5", "`limit` must be a non-negative integer"),
            ("order_by=colour", "cannot order by"),
            ("run_type=dataset", "unknown run_type"),
        ] {
            let answer = api.get(&format!("/api/v2/dags/test/dagRuns?{query}")).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {answer:?}");
            assert!(answer.detail().contains(needle), "{query}: {answer:?}");
        }
        assert_eq!(
            api.get("/api/v2/dags/missing/dagRuns").await.status,
            StatusCode::NOT_FOUND
        );

        let one = api.get("/api/v2/dags/test/dagRuns/run_a").await;
        assert_eq!(one.body["state"], "success", "{one:?}");
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/nope").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/a%2F..%2Fb").await.status,
            StatusCode::BAD_REQUEST
        );
    }
}

#[tokio::test]
async fn a_run_state_can_be_set_to_success_failed_or_queued_only() {
    for api in apis().await {
        api.finished_run("running").await;
        let answer = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test/dagRuns/running",
                Some(json!({"state": "failed"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["state"], "failed");
        let instances = api.get("/api/v2/dags/test/dagRuns/running/taskInstances").await;
        let states: Vec<&str> = instances.body["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ti| ti["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["success", "skipped"],
            "unfinished tasks are skipped when a run is failed by hand"
        );
        let success = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test/dagRuns/running?update_mask=state",
                Some(json!({"state": "success"})),
            )
            .await;
        assert_eq!(success.body["state"], "success", "{success:?}");

        for (body, status) in [
            (json!({"state": "running"}), StatusCode::BAD_REQUEST),
            (json!({"state": 3}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"colour": "red"}), StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let answer = api
                .call(Method::PATCH, "/api/v2/dags/test/dagRuns/running", Some(body.clone()))
                .await;
            assert_eq!(answer.status, status, "{body}: {answer:?}");
        }
        let missing = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test/dagRuns/nope",
                Some(json!({"state": "success"})),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    }
}

#[tokio::test]
async fn clearing_a_run_lists_on_dry_run_and_requeues_otherwise() {
    for api in apis().await {
        let run = api.finished_run("to_clear").await;
        api.finish(&run).await;
        let dry = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns/to_clear/clear",
                Some(json!({"dry_run": true})),
            )
            .await;
        assert_eq!(dry.status, StatusCode::OK, "{}: {dry:?}", api.label);
        assert_eq!(dry.body["total_entries"], 2, "{dry:?}");
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/to_clear").await.body["state"],
            "success"
        );
        let only_failed = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns/to_clear/clear",
                Some(json!({"only_failed": true})),
            )
            .await;
        assert_eq!(only_failed.body["total_entries"], 0, "nothing failed: {only_failed:?}");
        let real = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns/to_clear/clear",
                Some(json!({"dry_run": false})),
            )
            .await;
        assert_eq!(real.status, StatusCode::OK, "{real:?}");
        assert_eq!(real.body["state"], "queued", "{real:?}");
        let bad = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns/to_clear/clear",
                Some(json!({"dry_run": "no"})),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let missing = api
            .call(Method::POST, "/api/v2/dags/test/dagRuns/nope/clear", Some(json!({})))
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    }
}

#[tokio::test]
async fn deleting_a_run_removes_it_and_its_task_instances() {
    for api in apis().await {
        api.finished_run("doomed").await;
        let answer = api.call(Method::DELETE, "/api/v2/dags/test/dagRuns/doomed", None).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}: {answer:?}", api.label);
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/doomed").await.status,
            StatusCode::NOT_FOUND
        );
        let again = api.call(Method::DELETE, "/api/v2/dags/test/dagRuns/doomed", None).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        let bad = api.call(Method::DELETE, "/api/v2/dags/test/dagRuns/..", None).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
}

#[tokio::test]
async fn dates_outside_years_1000_to_9999_are_refused_wherever_a_body_carries_one() {
    for api in apis().await {
        let label = api.label;
        let cases = [
            (
                "/api/v2/dags/test/dagRuns",
                json!({"logical_date": "0000-01-01T00:00:00Z"}),
            ),
            (
                "/api/v2/dags/test/dagRuns",
                json!({"logical_date": "0999-12-31T23:59:59Z"}),
            ),
            (
                "/api/v2/dags/test/dagRuns",
                json!({"run_after": "0001-01-01T00:00:00Z"}),
            ),
            (
                "/api/v2/dags/test/dagRuns",
                json!({"data_interval_start": "0500-01-01T00:00:00Z", "data_interval_end": "2026-01-01T00:00:00Z"}),
            ),
            (
                "/api/v2/dags/test/clearTaskInstances",
                json!({"start_date": "0001-01-01T00:00:00Z"}),
            ),
        ];
        for (path, body) in cases {
            let answer = api.call(Method::POST, path, Some(body.clone())).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{label} {path} {body}: {answer:?}"
            );
            assert!(
                answer.detail().contains("use a date from 1000-01-01 to 9999-12-31"),
                "{label} {path} {body}: {answer:?}"
            );
        }
        let listed = api.get("/api/v2/dags/test/dagRuns").await;
        assert_eq!(listed.body["total_entries"], 0, "{label}: no run was created");
        let edge = api
            .call(
                Method::POST,
                "/api/v2/dags/test/dagRuns",
                Some(json!({"logical_date": "1000-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(
            edge.status,
            StatusCode::OK,
            "{label}: the first accepted date: {edge:?}"
        );
    }
}
