//! `/api/v2/dags`, `/details`, `/tasks` and `/importErrors`.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::apis;

#[tokio::test]
async fn dags_are_listed_with_airflow_fields_filters_and_pages() {
    for api in apis().await {
        let label = api.label;
        let answer = api.get("/api/v2/dags").await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["total_entries"], 1);
        let dag = &answer.body["dags"][0];
        assert_eq!(dag["dag_id"], "test");
        assert_eq!(dag["dag_display_name"], "test");
        assert_eq!(dag["is_paused"], false);
        assert_eq!(dag["is_stale"], false);
        assert_eq!(
            dag["tags"],
            json!([{"name": "api", "dag_id": "test", "dag_display_name": "test"}, {"name": "etl", "dag_id": "test", "dag_display_name": "test"}])
        );
        assert_eq!(dag["owners"], json!(["data-eng"]));
        assert!(
            dag["file_token"].is_string() && dag["max_active_tasks"].is_u64(),
            "{dag}"
        );
        for (query, expected) in [
            ("dag_id_pattern=es", 1),
            ("dag_id_pattern=t%25t", 1),
            ("dag_id_pattern=nope", 0),
            ("tags=api&tags=other", 1),
            ("tags=api&tags=other&tags_match_mode=all", 0),
            ("paused=false", 1),
            ("paused=true", 0),
            ("limit=5000&offset=0&order_by=-dag_id", 1),
        ] {
            let answer = api.get(&format!("/api/v2/dags?{query}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{label} {query}: {answer:?}");
            assert_eq!(
                answer.body["dags"].as_array().unwrap().len(),
                expected,
                "{label} {query}"
            );
        }
        let page = api.get("/api/v2/dags?offset=1").await;
        assert_eq!(page.body["dags"], json!([]));
        assert_eq!(page.body["total_entries"], 1, "total counts every match, not the page");
    }
}

#[tokio::test]
async fn bad_dag_list_queries_are_refused_with_the_reason() {
    let api = apis().await.remove(0);
    for (query, needle) in [
        ("limit=-1", "`limit` must be a non-negative integer"),
        ("offset=x", "`offset` must be a non-negative integer"),
        ("paused=maybe", "`paused` must be true or false"),
        ("order_by=color", "cannot order by `color`"),
        ("tags_match_mode=some", "tags_match_mode"),
    ] {
        let answer = api.get(&format!("/api/v2/dags?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {answer:?}");
        assert!(answer.detail().contains(needle), "{query}: {answer:?}");
    }
}

#[tokio::test]
async fn one_dag_and_its_details_are_served_and_unknown_or_bad_ids_refused() {
    for api in apis().await {
        let answer = api.get("/api/v2/dags/test").await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["description"], "API test DAG");
        let details = api.get("/api/v2/dags/test/details").await;
        assert_eq!(details.status, StatusCode::OK, "{details:?}");
        assert_eq!(details.body["catchup"], false);
        assert_eq!(details.body["params"]["region"]["value"], "kr", "{details:?}");
        assert_eq!(details.body["params"]["region"]["schema"]["enum"], json!(["kr", "us"]));
        assert_eq!(details.body["concurrency"], details.body["max_active_tasks"]);
        let missing = api.get("/api/v2/dags/missing").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.detail(), "no DAG `missing`");
        let details_missing = api.get("/api/v2/dags/missing/details").await;
        assert_eq!(details_missing.status, StatusCode::NOT_FOUND);
        for bad in ["a%2Fb", "..", "a%20b"] {
            let answer = api.get(&format!("/api/v2/dags/{bad}")).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {answer:?}");
            assert!(answer.detail().contains("is not a valid DAG id"), "{answer:?}");
        }
    }
}

#[tokio::test]
async fn patching_is_paused_pauses_and_bad_bodies_are_refused() {
    for api in apis().await {
        let answer = api
            .call(Method::PATCH, "/api/v2/dags/test", Some(json!({"is_paused": true})))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["is_paused"], true);
        assert_eq!(api.get("/api/v2/dags?paused=true").await.body["total_entries"], 1);
        let answer = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test?update_mask=is_paused",
                Some(json!({"is_paused": false})),
            )
            .await;
        assert_eq!(answer.body["is_paused"], false, "{answer:?}");

        let wrong_type = api
            .call(Method::PATCH, "/api/v2/dags/test", Some(json!({"is_paused": "yes"})))
            .await;
        assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong_type:?}");
        assert!(wrong_type.detail().contains("is_paused"), "{wrong_type:?}");
        let unknown_field = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test",
                Some(json!({"is_paused": true, "owner": "x"})),
            )
            .await;
        assert_eq!(
            unknown_field.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{unknown_field:?}"
        );
        let malformed = api
            .raw(
                Method::PATCH,
                "/api/v2/dags/test",
                "application/json",
                "{\"is_paused\": tru",
            )
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{malformed:?}");
        assert!(malformed.detail().starts_with("malformed JSON body"), "{malformed:?}");
        let not_json = api
            .raw(Method::PATCH, "/api/v2/dags/test", "text/plain", "is_paused=true")
            .await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST, "{not_json:?}");
        let mask = api
            .call(
                Method::PATCH,
                "/api/v2/dags/test?update_mask=owners",
                Some(json!({"is_paused": true})),
            )
            .await;
        assert_eq!(mask.status, StatusCode::BAD_REQUEST, "{mask:?}");
        let missing = api
            .call(Method::PATCH, "/api/v2/dags/missing", Some(json!({"is_paused": true})))
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    }
}

#[tokio::test]
async fn tasks_are_listed_from_the_dag_file() {
    for api in apis().await {
        let answer = api.get("/api/v2/dags/test/tasks").await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["total_entries"], 2);
        let task = api.get("/api/v2/dags/test/tasks/second").await;
        assert_eq!(task.body["downstream_task_ids"], json!([]));
        assert_eq!(task.body["upstream_task_ids"], json!(["first"]));
        assert_eq!(task.body["retries"], 1);
        assert_eq!(
            task.body["retry_delay"],
            json!({"__type": "TimeDelta", "days": 0, "seconds": 30, "microseconds": 0})
        );
        assert_eq!(
            api.get("/api/v2/dags/test/tasks/nope").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get("/api/v2/dags/missing/tasks").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get("/api/v2/dags/test/tasks/a%2Fb").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get("/api/v2/dags/test/tasks?order_by=pool").await.status,
            StatusCode::BAD_REQUEST
        );
    }
}

#[tokio::test]
async fn import_errors_are_listed_and_fetched_by_id() {
    for api in apis().await {
        let answer = api.get("/api/v2/importErrors").await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["total_entries"], 1);
        let error = &answer.body["import_errors"][0];
        assert_eq!(error["filename"], "dags/broken.yaml");
        assert_eq!(error["stack_trace"], "dags/broken.yaml:3:5: unknown key `comand`");
        let id = error["import_error_id"].as_i64().unwrap();
        let one = api.get(&format!("/api/v2/importErrors/{id}")).await;
        assert_eq!(one.body["line"], 3, "{one:?}");
        assert_eq!(
            api.get("/api/v2/importErrors/999999").await.status,
            StatusCode::NOT_FOUND
        );
        let bad = api.get("/api/v2/importErrors/one").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.detail(), "import_error_id must be an integer, got `one`");
    }
}

#[tokio::test]
async fn an_unknown_dag_id_is_answered_with_the_nearest_one() {
    let hello = "dag_id: hello_world\nschedule: '@daily'\nstart_date: 2026-01-01\ntasks:\n  a: { command: 'true' }\n";
    for api in super::apis_with(&[hello]).await {
        let label = api.label;
        let missing = api.get("/api/v2/dags/hello_wrld").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{label}: {missing:?}");
        assert_eq!(
            missing.detail(),
            "no DAG `hello_wrld` (did you mean `hello_world`?)",
            "{label}"
        );
        let body = json!({"dag_id": "helo_world", "from_date": "2026-03-01", "to_date": "2026-03-02"});
        let backfill = api.call(Method::POST, "/api/v2/backfills/dry_run", Some(body)).await;
        assert_eq!(backfill.status, StatusCode::NOT_FOUND, "{label}: {backfill:?}");
        assert!(
            backfill.detail().ends_with("(did you mean `hello_world`?)"),
            "{label}: {backfill:?}"
        );
        let far = api.get("/api/v2/dags/something_else").await;
        assert_eq!(far.detail(), "no DAG `something_else`", "{label}");
    }
}
