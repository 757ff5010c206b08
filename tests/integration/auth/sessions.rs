//! The UI's login page, session cookie and logout, pages that show each role only what it may
//! do, and the Users page.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use weir::domain::auth::Role;
use weir::runtime::users::{self, NewUser};

use super::{RawAnswer, send_raw};
use crate::api::{Api, apis};
use crate::support;

/// A form post as weir's own pages send it (origin, CSRF cookie and field), with `cookie` (a
/// session) added when given.
fn form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = support::ui_form_post(uri, body);
    if let Some(cookie) = cookie {
        support::add_session(&mut request, cookie);
    }
    request
}

fn page(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

async fn session_as(api: &Api, role: Role) -> String {
    support::session_cookie(&support::token_for(&api.state, role).await)
}

/// The `name=value` part of the answer's session `Set-Cookie`, and the whole header.
fn set_cookie(answer: &RawAnswer) -> (String, String) {
    let header = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .find(|value| value.starts_with("weir_session="))
        .unwrap_or_else(|| panic!("no session cookie set: {answer:?}"));
    let pair = header.split(';').next().unwrap().to_string();
    (pair, header)
}

#[tokio::test]
async fn logging_in_sets_an_http_only_lax_cookie_and_returns_to_the_page_asked_for() {
    for api in apis().await {
        let label = api.label;
        let new_user = NewUser {
            username: "ana".to_string(),
            password: "ana's password".to_string(),
            role: Role::User,
            email: None,
            first_name: None,
            last_name: None,
        };
        users::create_user(&api.state.db, new_user).await.unwrap();

        let answer = send_raw(&api, page("/dags/test?tab=runs", None)).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(answer.location(), "/login?next=%2Fdags%2Ftest%3Ftab%3Druns");
        let login_page = send_raw(&api, page(answer.location(), None)).await;
        assert_eq!(login_page.status, StatusCode::OK, "{label}");
        assert!(
            login_page.body.contains("name=\"next\" value=\"/dags/test?tab=runs\""),
            "{label}: {}",
            login_page.body
        );
        assert!(
            !login_page.body.contains("<nav aria-label=\"Main\">"),
            "{label}: no navigation before login"
        );

        let refused = send_raw(&api, form("/login", "username=ana&password=wrong&next=%2F", None)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{label}");
        assert!(refused.body.contains("Wrong username or password."), "{label}");
        assert!(!refused.headers.contains_key(header::SET_COOKIE), "{label}");

        let answer = send_raw(
            &api,
            form(
                "/login",
                "username=ana&password=ana%27s+password&next=%2Fdags%2Ftest%3Ftab%3Druns",
                None,
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{label}: {answer:?}");
        assert_eq!(answer.location(), "/dags/test?tab=runs", "{label}");
        let (cookie, header) = set_cookie(&answer);
        assert!(cookie.starts_with("weir_session="), "{label}: {header}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
            assert!(header.contains(attribute), "{label}: {header} lacks {attribute}");
        }
        assert!(
            !header.contains("Secure"),
            "{label}: not configured for https: {header}"
        );

        let dag_page = send_raw(&api, page("/dags/test", Some(&cookie))).await;
        assert_eq!(dag_page.status, StatusCode::OK, "{label}");
        assert!(
            dag_page.body.contains("ana"),
            "{label}: the page names who is logged in"
        );
        // The session reads the API too, but changes nothing there: that takes a bearer token.
        assert_eq!(
            send_raw(&api, page("/api/v2/dags", Some(&cookie))).await.status,
            StatusCode::OK
        );
        let change = Request::patch("/api/v2/dags/test")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"is_paused\": true}"))
            .unwrap();
        let answer = send_raw(&api, change).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label}: {answer:?}");
        assert!(
            answer.detail().contains("session cookie is accepted only for reading"),
            "{label}"
        );

        let answer = send_raw(&api, form("/logout", "", Some(&cookie))).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(answer.location(), "/login");
        let (cleared, header) = set_cookie(&answer);
        assert_eq!(cleared, "weir_session=", "{label}");
        assert!(header.contains("Max-Age=0"), "{label}: {header}");
    }
}

#[tokio::test]
async fn login_never_redirects_off_site() {
    let api = apis().await.remove(0);
    let cookie = session_as(&api, Role::Viewer).await;
    for next in [
        "https%3A%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "%2F%09%2Fevil.example",
        "%2F%5Cevil.example",
        "%2Fx%0D%0ASet-Cookie%3A+a%3Db",
    ] {
        let answer = send_raw(&api, page(&format!("/login?next={next}"), Some(&cookie))).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(answer.location(), "/", "{next}");
    }
}

#[tokio::test]
async fn pages_show_each_role_only_the_actions_it_may_take() {
    for api in apis().await {
        let label = api.label;
        let run = api.finished_run("manual__roles").await;
        let run_url = format!(
            "/dags/test/runs/{}",
            run.run_id.as_str().replace(':', "%3A").replace('+', "%2B")
        );
        for role in Role::ALL {
            let cookie = session_as(&api, role).await;
            let dags = send_raw(&api, page("/", Some(&cookie))).await.body;
            let dag = send_raw(&api, page("/dags/test?tab=trigger", Some(&cookie))).await.body;
            let run_page = send_raw(&api, page(&run_url, Some(&cookie))).await.body;
            let task_page = send_raw(&api, page(&format!("{run_url}/tasks/first"), Some(&cookie)))
                .await
                .body;
            let operate = role >= Role::User;
            assert_eq!(
                dags.contains("/dags/test/pause"),
                operate,
                "{label} {role}: pause toggle"
            );
            assert_eq!(
                dag.contains("id=\"trigger-form\""),
                operate,
                "{label} {role}: trigger form"
            );
            assert_eq!(dag.contains("id=\"trigger-not-allowed\""), !operate, "{label} {role}");
            assert_eq!(run_page.contains("/clear\""), operate, "{label} {role}: clear buttons");
            assert_eq!(run_page.contains("/mark\""), operate, "{label} {role}: mark buttons");
            assert_eq!(task_page.contains("/clear\""), operate, "{label} {role}: clear buttons");
            assert_eq!(
                dags.contains("href=\"/variables\""),
                role >= Role::Op,
                "{label} {role}: nav"
            );
            assert_eq!(
                dags.contains("href=\"/connections\""),
                role >= Role::Op,
                "{label} {role}: nav"
            );
            assert_eq!(
                dags.contains("href=\"/users\""),
                role == Role::Admin,
                "{label} {role}: nav"
            );
            assert!(dags.contains("action=\"/logout\""), "{label} {role}: log out");
        }
    }
}

#[tokio::test]
async fn admins_create_delete_and_reset_users_on_the_users_page() {
    for api in apis().await {
        let label = api.label;
        let admin = session_as(&api, Role::Admin).await;
        let answer = send_raw(&api, form("/users", "username=carol&role=Op&password=", Some(&admin))).await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {}", answer.body);
        let generated = answer
            .body
            .split("id=\"generated-password\"")
            .nth(1)
            .and_then(|rest| rest.split("<code class=\"mono\">").nth(1))
            .and_then(|rest| rest.split("</code>").next())
            .unwrap()
            .to_string();
        assert_eq!(generated.len(), 24, "{label}: {generated}");
        let again = send_raw(&api, page("/users", Some(&admin))).await;
        assert!(
            again.body.contains("carol") && !again.body.contains(&generated),
            "{label}: shown only once"
        );
        let login = users::check_login(&api.state.db, "carol", &generated).await.unwrap();
        assert!(matches!(login, users::Login::Accepted { .. }), "{label}");

        let answer = send_raw(
            &api,
            form(
                "/users",
                "username=dave&role=Viewer&password=dave+password",
                Some(&admin),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{label}");
        assert!(
            answer.location().starts_with("/users?notice="),
            "{label}: {}",
            answer.location()
        );
        let answer = send_raw(
            &api,
            form(
                "/users",
                "username=dave&role=Viewer&password=dave+password",
                Some(&admin),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{label}");
        assert!(answer.body.contains("user `dave` already exists"), "{label}");
        let answer = send_raw(
            &api,
            form("/users", "username=eve&role=Root&password=eve+password", Some(&admin)),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{label}");
        assert!(answer.body.contains("not a role"), "{label}");

        let answer = send_raw(
            &api,
            form("/users/reset-password", "username=dave&password=", Some(&admin)),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{label}");
        assert!(answer.body.contains("id=\"generated-password\""), "{label}");
        let login = users::check_login(&api.state.db, "dave", "dave password")
            .await
            .unwrap();
        assert_eq!(
            login,
            users::Login::Refused,
            "{label}: the old password no longer works"
        );

        let answer = send_raw(&api, form("/users/delete", "username=dave", Some(&admin))).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{label}");
        let answer = send_raw(&api, form("/users/delete", "username=test-admin", Some(&admin))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{label}: not oneself");
        let listed = send_raw(&api, page("/users", Some(&admin))).await.body;
        assert!(!listed.contains(">dave<") && listed.contains("test-admin"), "{label}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_configured_for_https() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("config.toml");
    std::fs::write(&path, "[webserver]\nbase_url = \"https://weir.example.com\"\n").unwrap();
    let config = weir::config::Config::load(&path, true, std::iter::empty::<(String, String)>()).unwrap();
    let mut api = apis().await.remove(0);
    let state = weir::api::ApiState {
        auth: support::authenticator(&config),
        health: Default::default(),
        ..api.state.clone()
    };
    api.router = weir::api::router(state);
    let new_user = NewUser {
        username: "ana".to_string(),
        password: "ana's password".to_string(),
        role: Role::Viewer,
        email: None,
        first_name: None,
        last_name: None,
    };
    users::create_user(&api.state.db, new_user).await.unwrap();
    let answer = send_raw(&api, form("/login", "username=ana&password=ana%27s+password", None)).await;
    let (_, header) = set_cookie(&answer);
    assert!(header.ends_with("; Secure"), "{header}");
}
