//! Every row of the REST and UI route tables × every kind of caller: the answer is 401 (UI pages:
//! a redirect to the login page), 403, or allowed (neither), exactly as the row's `Access` says.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use weir::api::rest::Verb;
use weir::domain::auth::{Access, Role};

use super::{RawAnswer, send_raw};
use crate::api::apis;
use crate::support;

/// Who is asking.
#[derive(Debug, Clone)]
enum Caller {
    Nobody,
    Garbage,
    /// A token signed with another secret: well-formed, not ours.
    Forged,
    Bearer(Role, String),
    /// The UI session cookie only, no `Authorization` header.
    Cookie(Role, String),
}

fn method(verb: Verb) -> Method {
    Method::from_bytes(verb.as_str().to_uppercase().as_bytes()).unwrap()
}

/// A concrete address for a path template: ids that do not exist (a 404 is "allowed").
fn concrete(path: &str) -> String {
    path.replace("{dag_id}", "nope")
        .replace("{dag_run_id}", "nope")
        .replace("{run_id}", "nope")
        .replace("{task_id}", "nope")
        .replace("{try_number}", "1")
        .replace("{import_error_id}", "1")
        .replace("{variable_key}", "nope")
        .replace("{connection_id}", "nope")
        .replace("{pool_name}", "nope")
        .replace("{backfill_id}", "1")
        .replace("{alert_id}", "1")
        .replace("{*path}", "weir.css")
}

fn forged_token() -> String {
    let config = weir::config::Config::load(
        std::path::Path::new("/nonexistent/config.toml"),
        false,
        std::iter::empty::<(String, String)>(),
    )
    .unwrap();
    let other = weir::api::auth::Authenticator::new(&config.api_auth, b"someone else's secret").unwrap();
    let principal = weir::domain::auth::Principal {
        username: support::test_username(Role::Admin),
        role: Role::Admin,
    };
    other.issue(&principal, 0, chrono::Utc::now()).unwrap()
}

async fn callers(api: &crate::api::Api) -> Vec<Caller> {
    let mut callers = vec![Caller::Nobody, Caller::Garbage, Caller::Forged];
    for role in Role::ALL {
        let token = support::token_for(&api.state, role).await;
        callers.push(Caller::Bearer(role, token.clone()));
        callers.push(Caller::Cookie(role, token));
    }
    callers
}

fn request(verb: Verb, uri: &str, caller: &Caller, form: bool) -> Request<Body> {
    // UI forms come as weir's own pages send them (origin, CSRF cookie and field), so that only
    // the caller decides the answer.
    let mut request = match (verb, form) {
        (Verb::Get, _) => Request::builder()
            .method(method(verb))
            .uri(uri)
            .body(Body::empty())
            .unwrap(),
        (_, true) => support::ui_form_post(uri, ""),
        (_, false) => Request::builder()
            .method(method(verb))
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    };
    let bearer = |token: &str| format!("Bearer {token}").parse().unwrap();
    match caller {
        Caller::Nobody => {}
        Caller::Garbage => {
            request.headers_mut().insert(header::AUTHORIZATION, bearer("garbage"));
        }
        Caller::Forged => {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, bearer(&forged_token()));
        }
        Caller::Bearer(_, token) => {
            request.headers_mut().insert(header::AUTHORIZATION, bearer(token));
        }
        Caller::Cookie(_, token) => support::add_session(&mut request, &support::session_cookie(token)),
    }
    request
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Unauthenticated,
    Forbidden,
    Allowed,
}

/// What the row's access promises this caller on the REST API.
fn expected_api(access: Access, verb: Verb, caller: &Caller) -> Verdict {
    let Access::AtLeast(needed) = access else {
        return Verdict::Allowed;
    };
    let role = match caller {
        Caller::Nobody | Caller::Garbage | Caller::Forged => return Verdict::Unauthenticated,
        // A cookie is never enough for a change: a browser could be made to send it.
        Caller::Cookie(_, _) if verb != Verb::Get => return Verdict::Unauthenticated,
        Caller::Bearer(role, _) | Caller::Cookie(role, _) => *role,
    };
    if role >= needed {
        Verdict::Allowed
    } else {
        Verdict::Forbidden
    }
}

fn api_verdict(answer: &RawAnswer) -> Verdict {
    match answer.status {
        StatusCode::UNAUTHORIZED => Verdict::Unauthenticated,
        StatusCode::FORBIDDEN => Verdict::Forbidden,
        _ => Verdict::Allowed,
    }
}

#[tokio::test]
async fn every_api_route_answers_every_caller_as_its_row_declares() {
    for api in apis().await {
        let label = api.label;
        let callers = callers(&api).await;
        let table = weir::api::rest::route_table();
        assert!(table.len() > 50, "{table:?}");
        for route in &table {
            let uri = concrete(route.path);
            for caller in &callers {
                let answer = send_raw(&api, request(route.verb, &uri, caller, false)).await;
                let expected = expected_api(route.access, route.verb, caller);
                assert_eq!(
                    api_verdict(&answer),
                    expected,
                    "{label}: {} {uri} ({:?}) as {caller:?}: {answer:?}",
                    route.verb.as_str(),
                    route.access
                );
                assert!(answer.status.as_u16() < 500, "{label}: {uri} as {caller:?}: {answer:?}");
                if expected == Verdict::Unauthenticated {
                    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{label}: {uri}");
                    assert!(
                        answer.detail().starts_with("Not authenticated")
                            || answer.detail().starts_with("Invalid token"),
                        "{label}: {uri}: {answer:?}"
                    );
                }
                if expected == Verdict::Forbidden {
                    assert!(
                        answer.detail().starts_with("Forbidden: this needs the"),
                        "{label}: {answer:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_route_table_gives_each_role_airflows_permissions() {
    let access = |verb: Verb, path: &str| {
        weir::api::rest::route_table()
            .into_iter()
            .find(|route| route.verb == verb && route.path == path)
            .unwrap_or_else(|| panic!("no route {} {path}", verb.as_str()))
            .access
    };
    // Exactly the open routes that README.md and docs/security.md list, no more.
    let mut public: Vec<String> = weir::api::rest::route_table()
        .into_iter()
        .filter(|route| route.access == Access::Public)
        .map(|route| format!("{} {}", route.verb.as_str(), route.path))
        .collect();
    public.sort();
    assert_eq!(
        public,
        [
            "get /api/v2/monitor/health",
            "get /api/v2/openapi.json",
            "get /api/v2/version",
            "get /metrics",
            "get /schemas/dag.schema.json",
            "post /auth/token",
        ]
    );
    assert_eq!(access(Verb::Get, "/api/v2/dags"), Access::READ);
    assert_eq!(access(Verb::Get, "/api/v2/pools"), Access::READ);
    assert_eq!(
        access(Verb::Get, "/api/v2/variables"),
        Access::CONFIGURE,
        "Viewers never read variables"
    );
    assert_eq!(access(Verb::Get, "/api/v2/connections"), Access::CONFIGURE);
    assert_eq!(access(Verb::Post, "/api/v2/dags/{dag_id}/dagRuns"), Access::OPERATE);
    assert_eq!(access(Verb::Patch, "/api/v2/dags/{dag_id}"), Access::OPERATE);
    assert_eq!(
        access(Verb::Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"),
        Access::OPERATE
    );
    assert_eq!(access(Verb::Post, "/api/v2/backfills"), Access::OPERATE);
    assert_eq!(access(Verb::Post, "/api/v2/variables"), Access::CONFIGURE);
    assert_eq!(access(Verb::Patch, "/api/v2/pools/{pool_name}"), Access::CONFIGURE);
    let ui = weir::api::ui::route_table();
    let ui_access = |verb: Verb, path: &str| {
        ui.iter()
            .find(|route| route.verb == verb && route.path == path)
            .unwrap()
            .access
    };
    assert_eq!(ui_access(Verb::Get, "/"), Access::READ);
    assert_eq!(ui_access(Verb::Post, "/dags/{dag_id}/trigger"), Access::OPERATE);
    assert_eq!(ui_access(Verb::Get, "/variables"), Access::CONFIGURE);
    assert_eq!(ui_access(Verb::Get, "/users"), Access::ADMINISTER);
    assert_eq!(ui_access(Verb::Get, "/login"), Access::Public);
    for route in &ui {
        assert!(
            route.verb == Verb::Get || route.verb == Verb::Post,
            "UI changes are POSTs, pages GETs: {route:?}"
        );
    }
}

/// What the row's access promises on the UI: callers without a session are sent to the login
/// page (a 303 whose `next` brings a GET back), roles below the row's get a 403 page.
fn expected_ui(access: Access, caller: &Caller) -> Verdict {
    let Access::AtLeast(needed) = access else {
        return Verdict::Allowed;
    };
    let role = match caller {
        Caller::Nobody | Caller::Garbage | Caller::Forged => return Verdict::Unauthenticated,
        Caller::Bearer(role, _) | Caller::Cookie(role, _) => *role,
    };
    if role >= needed {
        Verdict::Allowed
    } else {
        Verdict::Forbidden
    }
}

fn ui_verdict(answer: &RawAnswer, access: Access) -> Verdict {
    // Logging out lands on the login page too: for public routes only the status counts.
    let to_login = answer.status == StatusCode::SEE_OTHER && answer.location().starts_with("/login");
    if to_login && access != Access::Public {
        return Verdict::Unauthenticated;
    }
    match answer.status {
        StatusCode::UNAUTHORIZED => Verdict::Unauthenticated,
        StatusCode::FORBIDDEN => Verdict::Forbidden,
        _ => Verdict::Allowed,
    }
}

#[tokio::test]
async fn every_ui_route_answers_every_caller_as_its_row_declares() {
    for api in apis().await {
        let label = api.label;
        let callers = callers(&api).await;
        let table = weir::api::ui::route_table();
        assert!(table.len() > 25, "{table:?}");
        for route in &table {
            let uri = concrete(route.path);
            for caller in &callers {
                // A garbage cookie rather than a garbage header: that is what a browser sends.
                let caller_here = match caller {
                    Caller::Garbage => Caller::Cookie(Role::Admin, "garbage".to_string()),
                    other => other.clone(),
                };
                let answer = send_raw(&api, request(route.verb, &uri, &caller_here, true)).await;
                let expected = expected_ui(route.access, caller);
                assert_eq!(
                    ui_verdict(&answer, route.access),
                    expected,
                    "{label}: {} {uri} ({:?}) as {caller:?}: {} {}",
                    route.verb.as_str(),
                    route.access,
                    answer.status,
                    answer.location()
                );
                assert!(answer.status.as_u16() < 500, "{label}: {uri} as {caller:?}: {answer:?}");
                if expected == Verdict::Unauthenticated && route.verb == Verb::Get {
                    let next = weir::api::ui::encode(&uri);
                    assert_eq!(answer.location(), format!("/login?next={next}"), "{label}");
                }
                if expected == Verdict::Forbidden {
                    assert!(answer.body.contains("Forbidden: this needs the"), "{label}: {uri}");
                }
            }
        }
    }
}
