//! Variables, connections and pools.

use axum::http::{Method, StatusCode};
use serde_json::json;
use weir::domain::state::TaskState;
use weir::runtime::operations;
use weir::storage::task_instances;

use super::apis;

#[tokio::test]
async fn variables_round_trip_and_secret_values_are_masked() {
    for api in apis().await {
        let label = api.label;
        let created = api
            .call(
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "region", "value": "kr", "description": "home"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{label}: {created:?}");
        assert_eq!(
            created.body,
            json!({"key": "region", "value": "kr", "description": "home", "is_encrypted": false, "team_name": null})
        );
        let secret = api
            .call(
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "api_token", "value": "s3cr3t"})),
            )
            .await;
        assert_eq!(secret.body["value"], "***", "{secret:?}");
        let structured = api
            .call(
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "limits", "value": {"max": 3}})),
            )
            .await;
        assert_eq!(
            structured.body["value"], "{\"max\":3}",
            "non-strings are stored as JSON text"
        );

        let listed = api.get("/api/v2/variables?order_by=-key&limit=2").await;
        assert_eq!(listed.body["total_entries"], 3, "{listed:?}");
        let keys: Vec<&str> = listed.body["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["region", "limits"]);
        assert_eq!(api.get("/api/v2/variables/api_token").await.body["value"], "***");

        let patched = api
            .call(
                Method::PATCH,
                "/api/v2/variables/region?update_mask=value",
                Some(json!({"key": "region", "value": "us", "description": "ignored"})),
            )
            .await;
        assert_eq!(patched.body["value"], "us", "{patched:?}");
        assert_eq!(
            patched.body["description"], "home",
            "update_mask leaves other fields alone"
        );

        for (method, uri, body, status) in [
            (
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "region", "value": "x"})),
                StatusCode::CONFLICT,
            ),
            (
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "bad key", "value": "x"})),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/api/v2/variables",
                Some(json!({"value": "x"})),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "empty", "value": null})),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PATCH,
                "/api/v2/variables/region",
                Some(json!({"key": "other", "value": "x"})),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PATCH,
                "/api/v2/variables/missing",
                Some(json!({"key": "missing", "value": "x"})),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                "/api/v2/variables/region?update_mask=key",
                Some(json!({"key": "region", "value": "x"})),
                StatusCode::BAD_REQUEST,
            ),
            (Method::GET, "/api/v2/variables/missing", None, StatusCode::NOT_FOUND),
            (Method::GET, "/api/v2/variables/a%2Fb", None, StatusCode::BAD_REQUEST),
            (Method::GET, "/api/v2/variables?limit=-3", None, StatusCode::BAD_REQUEST),
            (Method::DELETE, "/api/v2/variables/missing", None, StatusCode::NOT_FOUND),
        ] {
            let answer = api.call(method.clone(), uri, body.clone()).await;
            assert_eq!(answer.status, status, "{label} {method} {uri} {body:?}: {answer:?}");
            assert!(!answer.detail().is_empty(), "{answer:?}");
        }
        let deleted = api.call(Method::DELETE, "/api/v2/variables/region", None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get("/api/v2/variables/region").await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn connections_round_trip_and_never_return_the_password() {
    for api in apis().await {
        let label = api.label;
        let body = json!({
            "connection_id": "warehouse", "conn_type": "postgres", "host": "db.internal", "port": 5432,
            "login": "etl", "password": "hunter2", "schema": "analytics", "extra": "{\"sslmode\": \"require\"}",
        });
        let created = api.call(Method::POST, "/api/v2/connections", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{label}: {created:?}");
        assert_eq!(created.body["schema"], "analytics");
        for answer in [
            created,
            api.get("/api/v2/connections/warehouse").await,
            api.get("/api/v2/connections").await,
        ] {
            assert!(
                !answer.body.to_string().contains("hunter2"),
                "{label}: password leaked: {answer:?}"
            );
        }
        let patched = api
            .call(
                Method::PATCH,
                "/api/v2/connections/warehouse?update_mask=port",
                Some(json!({"connection_id": "warehouse", "conn_type": "postgres", "port": 6432})),
            )
            .await;
        assert_eq!(patched.body["port"], 6432, "{patched:?}");
        assert_eq!(patched.body["host"], "db.internal", "update_mask keeps the host");
        let mut connection = api.state.db.acquire().await.unwrap();
        let stored = weir::storage::connections::password(&mut connection, "warehouse", &api.state.secrets)
            .await
            .unwrap();
        assert_eq!(stored.as_deref(), Some("hunter2"), "a patch without password keeps it");
        drop(connection);

        for (method, uri, body, status) in [
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "warehouse", "conn_type": "x"}),
                StatusCode::CONFLICT,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w2", "conn_type": "x", "port": 70000}),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w2", "conn_type": "x", "port": "5432"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w2", "conn_type": "x", "extra": "not json"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w 2", "conn_type": "x"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w2", "conn_type": ""}),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/api/v2/connections",
                json!({"connection_id": "w2"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::PATCH,
                "/api/v2/connections/missing",
                json!({"connection_id": "missing", "conn_type": "x"}),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                "/api/v2/connections/warehouse",
                json!({"connection_id": "other", "conn_type": "x"}),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let answer = api.call(method.clone(), uri, Some(body.clone())).await;
            assert_eq!(answer.status, status, "{label} {method} {uri} {body}: {answer:?}");
        }
        assert_eq!(
            api.get("/api/v2/connections/missing").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.call(Method::DELETE, "/api/v2/connections/warehouse", None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            api.call(Method::DELETE, "/api/v2/connections/warehouse", None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn pools_come_from_the_config_and_cannot_be_changed_over_http() {
    for api in apis().await {
        let answer = api.get("/api/v2/pools").await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["total_entries"], 2);
        let warehouse = api.get("/api/v2/pools/warehouse").await;
        assert_eq!(warehouse.body["slots"], 2);
        assert_eq!(warehouse.body["open_slots"], 2);
        assert_eq!(api.get("/api/v2/pools/nope").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            api.get("/api/v2/pools?order_by=colour").await.status,
            StatusCode::BAD_REQUEST
        );
        for (method, uri) in [
            (Method::POST, "/api/v2/pools"),
            (Method::PATCH, "/api/v2/pools/warehouse"),
            (Method::DELETE, "/api/v2/pools/warehouse"),
        ] {
            let refused = api.call(method, uri, Some(json!({"name": "x", "slots": 1}))).await;
            assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "{refused:?}");
            assert!(refused.detail().contains("config.toml"), "{refused:?}");
        }
    }
}

#[tokio::test]
async fn pools_and_metrics_count_the_slots_of_waiting_tasks_on_both_backends() {
    for api in apis().await {
        let label = api.label;
        let new_run = operations::manual_run(&api.dag, &json!({"region": "us"}), None, Some("pooled"), None).unwrap();
        let run = operations::trigger(&api.state.db, &api.dag, &new_run).await.unwrap();
        let first = &api.dag.tasks[0];
        let mut connection = api.state.db.acquire().await.unwrap();
        task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &[first])
            .await
            .unwrap();
        task_instances::set_state(
            &mut connection,
            run.pk,
            &first.task_id,
            TaskState::Scheduled,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        drop(connection);
        let pool = api.get(&format!("/api/v2/pools/{}", first.pool)).await;
        assert_eq!(pool.status, StatusCode::OK, "{label}: {pool:?}");
        assert_eq!(pool.body["scheduled_slots"], 1, "{label}: {pool:?}");
        let metrics = api.get("/metrics").await;
        assert_eq!(metrics.status, StatusCode::OK, "{label}: {metrics:?}");
        let scheduled = format!("weir_pool_slots{{pool=\"{}\",kind=\"scheduled\"}} 1", first.pool);
        assert!(
            metrics.body.as_str().unwrap().contains(&scheduled),
            "{label}: {metrics:?}"
        );
    }
}
