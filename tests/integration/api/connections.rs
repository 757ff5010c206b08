//! Connection passwords through the REST API: stored encrypted, answered as `"***"` (as Airflow 3
//! does) in every response, kept when a form sends `"***"` back, and testable with
//! `POST /api/v2/connections/test`.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use super::{Answer, Api, apis};

const PASSWORD: &str = "s3cr3t-pw-api-91c2";
const TOKEN: &str = "t0k3n-api-5d1e";

fn assert_no_secret(api: &Api, what: &str, answer: &Answer) {
    let text = answer.body.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains(TOKEN),
        "{}: {what} leaked a secret: {text}",
        api.label
    );
}

async fn raw_password(api: &Api, conn_id: &str) -> Option<String> {
    let mut connection = api.state.db.acquire().await.unwrap();
    sqlx::query("SELECT password FROM connection WHERE conn_id = $1")
        .bind(conn_id)
        .fetch_one(&mut *connection)
        .await
        .unwrap()
        .try_get("password")
        .unwrap()
}

#[tokio::test]
async fn a_connection_password_never_appears_in_any_connections_response() {
    for api in apis().await {
        let label = api.label;
        let body = json!({
            "connection_id": "warehouse", "conn_type": "postgres", "host": "db.internal", "port": 5432,
            "login": "etl", "password": PASSWORD, "schema": "dw",
            "extra": format!("{{\"sslmode\": \"require\", \"api_token\": \"{TOKEN}\"}}"),
        });
        let created = api.call(Method::POST, "/api/v2/connections", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{label}: {created:?}");
        assert_eq!(
            created.body["password"], "***",
            "{label}: Airflow shows a set password as ***"
        );
        let extra: serde_json::Value = serde_json::from_str(created.body["extra"].as_str().unwrap()).unwrap();
        assert_eq!(extra, json!({"sslmode": "require", "api_token": "***"}), "{label}");
        assert_no_secret(&api, "create", &created);

        let raw = raw_password(&api, "warehouse").await.unwrap();
        assert!(
            raw.starts_with("enc:v1:") && !raw.contains(PASSWORD),
            "{label}: stored {raw}"
        );

        let got = api.get("/api/v2/connections/warehouse").await;
        assert_eq!(got.body["password"], "***", "{label}");
        assert_no_secret(&api, "get", &got);
        let listed = api.get("/api/v2/connections").await;
        assert_eq!(listed.body["connections"][0]["password"], "***", "{label}");
        assert_no_secret(&api, "list", &listed);

        // A form sends back what it was shown: "***" keeps the password and the token.
        let round_trip = json!({
            "connection_id": "warehouse", "conn_type": "postgres", "host": "db.internal", "port": 6432,
            "login": "etl", "password": "***", "schema": "dw", "extra": created.body["extra"],
        });
        let patched = api
            .call(Method::PATCH, "/api/v2/connections/warehouse", Some(round_trip))
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{label}: {patched:?}");
        assert_eq!(patched.body["port"], 6432);
        assert_no_secret(&api, "patch", &patched);
        let mut connection = api.state.db.acquire().await.unwrap();
        let stored = weir::storage::connections::get_with_password(&mut connection, "warehouse", &api.state.secrets)
            .await
            .unwrap()
            .unwrap();
        drop(connection);
        assert_eq!(
            stored.password.as_deref(),
            Some(PASSWORD),
            "{label}: *** kept the password"
        );
        assert_eq!(stored.extra["api_token"], TOKEN, "{label}: *** kept the token");

        // A new password is answered as *** too; null clears it.
        let new_password = format!("{PASSWORD}-2");
        let patched = api
            .call(
                Method::PATCH,
                "/api/v2/connections/warehouse?update_mask=password",
                Some(json!({"connection_id": "warehouse", "conn_type": "postgres", "password": new_password})),
            )
            .await;
        assert_eq!(patched.body["password"], "***", "{label}: {patched:?}");
        assert_no_secret(&api, "patch with a new password", &patched);
        let cleared = api
            .call(
                Method::PATCH,
                "/api/v2/connections/warehouse?update_mask=password",
                Some(json!({"connection_id": "warehouse", "conn_type": "postgres", "password": null})),
            )
            .await;
        assert_eq!(
            cleared.body["password"],
            serde_json::Value::Null,
            "{label}: {cleared:?}"
        );
        assert_eq!(raw_password(&api, "warehouse").await, None, "{label}");
    }
}

#[tokio::test]
async fn testing_connections_through_the_api_is_off_unless_the_config_enables_it() {
    for mut api in apis().await {
        let label = api.label;
        let mut config = (*api.state.config).clone();
        config.test_connection = false;
        api.router = weir::api::router(weir::api::ApiState {
            config: std::sync::Arc::new(config),
            ..api.state.clone()
        });
        let answer = api
            .call(
                Method::POST,
                "/api/v2/connections/test",
                Some(json!({"connection_id": "local", "conn_type": "http", "host": "example.com"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{label}: {answer:?}");
        assert!(
            answer.detail().contains("[core] test_connection"),
            "{label}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn testing_a_connection_answers_status_and_message_without_the_password() {
    for api in apis().await {
        let label = api.label;
        // A SQLite file that exists: reachable. Relative paths resolve against the config folder.
        let folder = api.state.config.folder.clone();
        std::fs::write(folder.join("reachable.db"), b"").unwrap();
        let answer = api
            .call(
                Method::POST,
                "/api/v2/connections/test",
                Some(json!({"connection_id": "local", "conn_type": "sqlite", "host": "reachable.db"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["status"], true, "{label}: {answer:?}");

        // Nothing listens on port 1: not reachable, and the message does not hold the password.
        let answer = api
            .call(
                Method::POST,
                "/api/v2/connections/test",
                Some(json!({
                    "connection_id": "nowhere", "conn_type": "postgres", "host": "127.0.0.1", "port": 1,
                    "login": "etl", "password": PASSWORD, "schema": "dw",
                })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["status"], false, "{label}: {answer:?}");
        let message = answer.body["message"].as_str().unwrap();
        assert!(
            message.contains("postgres://etl:***@127.0.0.1:1/dw"),
            "{label}: {message}"
        );
        assert_no_secret(&api, "test", &answer);

        let answer = api
            .call(
                Method::POST,
                "/api/v2/connections/test",
                Some(json!({"connection_id": "ftp", "conn_type": "ftp", "host": "h"})),
            )
            .await;
        assert_eq!(answer.body["status"], false, "{label}: {answer:?}");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("cannot test `ftp` connections"),
            "{label}: {answer:?}"
        );
    }
}
