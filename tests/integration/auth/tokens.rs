//! `POST /auth/token` as Airflow 3 answers it, and the life of a token: it works until it expires,
//! its user is deleted or their password is reset; wrong passwords are throttled; public routes
//! reveal nothing secret; `mode = "none"` makes everyone an Admin.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use weir::domain::auth::{Principal, Role};
use weir::runtime::users::{self, NewUser};

use super::{RawAnswer, send_raw};
use crate::api::{Api, apis};

async fn create_user(api: &Api, username: &str, password: &str, role: Role) {
    let new_user = NewUser {
        username: username.to_string(),
        password: password.to_string(),
        role,
        email: None,
        first_name: None,
        last_name: None,
    };
    users::create_user(&api.state.db, new_user).await.unwrap();
}

fn token_request(username: &str, password: &str, from: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/auth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap();
    if let Some(address) = from {
        let address: SocketAddr = format!("{address}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(address));
    }
    request
}

async fn get_with(api: &Api, uri: &str, token: &str) -> RawAnswer {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send_raw(api, request).await
}

async fn token(api: &Api, username: &str, password: &str) -> String {
    let answer = send_raw(api, token_request(username, password, None)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}: {answer:?}", api.label);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_username_and_password_give_a_token_that_carries_the_role() {
    for api in apis().await {
        let label = api.label;
        create_user(&api, "ana", "ana's password", Role::Viewer).await;
        let answer = send_raw(&api, token_request("ana", "ana's password", None)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{label}: {answer:?}");
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(
            body.as_object().unwrap().len(),
            1,
            "only access_token, as Airflow: {body}"
        );
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        assert_eq!(
            get_with(&api, "/api/v2/dags", token).await.status,
            StatusCode::OK,
            "{label}"
        );
        let answer = get_with(&api, "/api/v2/variables", token).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{label}: a Viewer reads no variables"
        );
        assert_eq!(
            answer.detail(),
            "Forbidden: this needs the Op role or above; `ana` has Viewer",
            "{label}"
        );
    }
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_401() {
    for api in apis().await {
        let label = api.label;
        create_user(&api, "ana", "ana's password", Role::Op).await;
        let wrong = send_raw(&api, token_request("ana", "not it", None)).await;
        let unknown = send_raw(&api, token_request("nobody", "ana's password", None)).await;
        for answer in [&wrong, &unknown] {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {answer:?}");
            assert_eq!(answer.detail(), "Invalid credentials: wrong username or password");
        }
        let malformed = api
            .raw(Method::POST, "/auth/token", "application/json", "{\"username\": 1}")
            .await;
        assert_eq!(
            malformed.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {malformed:?}"
        );
    }
}

#[tokio::test]
async fn five_failures_a_minute_for_a_user_or_from_an_address_answer_429() {
    for api in apis().await {
        let label = api.label;
        create_user(&api, "ana", "ana's password", Role::User).await;
        create_user(&api, "bob", "bob's password", Role::User).await;
        for _ in 0..5 {
            let answer = send_raw(&api, token_request("ana", "guess", None)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}");
        }
        // Now even the right password waits: the guesser cannot tell when they hit it.
        let answer = send_raw(&api, token_request("ana", "ana's password", None)).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{label}: {answer:?}");
        let retry_after: u64 = answer.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{label}: {retry_after}");
        assert!(
            answer.detail().starts_with("Too many failed logins"),
            "{label}: {answer:?}"
        );
        assert!(
            !token(&api, "bob", "bob's password").await.is_empty(),
            "{label}: bob is not blocked"
        );

        // One address trying five usernames is blocked for any other username.
        for name in ["c1", "c2", "c3", "c4", "c5"] {
            send_raw(&api, token_request(name, "guess", Some("203.0.113.7"))).await;
        }
        let answer = send_raw(&api, token_request("bob", "bob's password", Some("203.0.113.7"))).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{label}: {answer:?}");
        let answer = send_raw(&api, token_request("bob", "bob's password", Some("203.0.113.8"))).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{label}: another address is not blocked"
        );
    }
}

#[tokio::test]
async fn expired_revoked_and_tampered_tokens_get_401() {
    for api in apis().await {
        let label = api.label;
        create_user(&api, "ana", "ana's password", Role::Admin).await;
        let principal = Principal {
            username: "ana".to_string(),
            role: Role::Admin,
        };
        let old = api
            .state
            .auth
            .issue(&principal, 0, chrono::Utc::now() - chrono::Duration::days(2))
            .unwrap();
        let answer = get_with(&api, "/api/v2/dags", &old).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {answer:?}");
        assert!(answer.detail().starts_with("Token expired"), "{label}: {answer:?}");

        // A token claiming a higher role than the user has gets the user's real role.
        let viewer_claims_admin = token(&api, "ana", "ana's password").await;
        let mut connection = api.state.db.acquire().await.unwrap();
        weir::storage::users::set_role(&mut connection, "ana", Role::Viewer)
            .await
            .unwrap();
        drop(connection);
        let answer = get_with(&api, "/api/v2/variables", &viewer_claims_admin).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{label}: the role is read at each request"
        );

        // A reset password ends the tokens issued before it.
        let before_reset = token(&api, "ana", "ana's password").await;
        users::reset_password(&api.state.db, "ana", "a new password".to_string())
            .await
            .unwrap();
        let answer = get_with(&api, "/api/v2/dags", &before_reset).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {answer:?}");
        assert!(answer.detail().starts_with("Token revoked"), "{label}: {answer:?}");
        let after_reset = token(&api, "ana", "a new password").await;
        assert_eq!(
            get_with(&api, "/api/v2/dags", &after_reset).await.status,
            StatusCode::OK
        );

        // A deleted user's tokens stop working at their next request.
        users::delete_user(&api.state.db, "ana").await.unwrap();
        let answer = get_with(&api, "/api/v2/dags", &after_reset).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {answer:?}");

        // A token whose payload was edited no longer matches its signature; `alg: none` is refused.
        let admin = crate::support::token_for(&api.state, Role::Viewer).await;
        let mut parts: Vec<String> = admin.split('.').map(str::to_string).collect();
        let mut payload: Vec<char> = parts[1].chars().collect();
        payload[10] = if payload[10] == 'x' { 'y' } else { 'x' };
        parts[1] = payload.into_iter().collect();
        for forged in [
            parts.join("."),
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]),
            String::new(),
        ] {
            let answer = get_with(&api, "/api/v2/dags", &forged).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {forged}: {answer:?}");
        }
        let request = Request::get("/api/v2/dags")
            .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send_raw(&api, request).await.status,
            StatusCode::UNAUTHORIZED,
            "{label}"
        );
    }
}

#[tokio::test]
async fn public_routes_reveal_no_secret() {
    for api in apis().await {
        let label = api.label;
        create_user(&api, "secret-keeper", "hunter2hunter2", Role::Admin).await;
        let answer = api
            .call(
                Method::POST,
                "/api/v2/variables",
                Some(json!({"key": "api_token", "value": "VARIABLE-SECRET-VALUE"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{label}: {answer:?}");
        let answer = api
            .call(
                Method::POST,
                "/api/v2/connections",
                Some(json!({"connection_id": "warehouse", "conn_type": "postgres", "host": "db", "login": "loader", "password": "CONNECTION-SECRET-PASSWORD"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{label}: {answer:?}");
        for uri in [
            "/api/v2/monitor/health",
            "/api/v2/version",
            "/metrics",
            "/api/v2/openapi.json",
            "/schemas/dag.schema.json",
        ] {
            let request = Request::get(uri).body(Body::empty()).unwrap();
            let answer = send_raw(&api, request).await;
            assert_eq!(answer.status, StatusCode::OK, "{label}: {uri}");
            for secret in [
                "VARIABLE-SECRET-VALUE",
                "CONNECTION-SECRET-PASSWORD",
                "secret-keeper",
                "hunter2",
                crate::support::TEST_JWT_SECRET,
                crate::support::TEST_SECRETS_KEY,
                "api_token",
                "loader",
            ] {
                assert!(!answer.body.contains(secret), "{label}: {uri} shows {secret}");
            }
        }
    }
}

#[tokio::test]
async fn with_mode_none_on_loopback_everyone_is_an_admin_named_anonymous() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("config.toml");
    std::fs::write(&path, "[webserver]\nbind = \"127.0.0.1:8080\"\n").unwrap();
    let environment = [("WEIR__API_AUTH__MODE".to_string(), "none".to_string())];
    let config = weir::config::Config::load(&path, true, environment).unwrap();
    for mut api in apis().await {
        let label = api.label;
        let state = weir::api::ApiState {
            auth: crate::support::authenticator(&config),
            health: Default::default(),
            ..api.state.clone()
        };
        api.router = weir::api::router(state);
        let answer = api
            .send_anonymous(
                Request::post("/api/v2/variables")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(json!({"key": "k", "value": "v"}).to_string()))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{label}: {answer:?}");
        let answer = send_raw(&api, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{label}");
        assert!(answer.body.contains("anonymous"), "{label}: the UI names the caller");
        let answer = send_raw(&api, token_request("whoever", "whatever", None)).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{label}: clients that log in still work"
        );
    }
}
