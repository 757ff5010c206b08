//! Browser safety through the router, on SQLite and PostgreSQL: forged form posts (another
//! origin, no token, a guessed token, a tossed cookie) are refused with a 403 page before any
//! handler runs and change nothing; pages hand out the CSRF cookie and token; hostile `next=`
//! values fall back to the default page; GET changes nothing; every response carries the
//! security headers; the REST API refuses state changes sent by other origins.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weir::api::router;
use weir::api::ui::csrf::{COOKIE_NAME, FIELD_NAME};

use crate::support::{self, UI_CSRF_TOKEN, UI_ORIGIN};
use crate::ui::{Ui, run_url};

const FOREIGN_ORIGIN: &str = "http://127.0.0.1:3000";
const OTHER_TOKEN: &str = "bad0000000000000000000000000000000000000000000000000000000000bad";

/// A post as a hostile page would send it: `origin` and `referer` as given, and the cookie and
/// field only when given.
fn forged(
    uri: &str,
    form: &str,
    origin: Option<&str>,
    referer: Option<&str>,
    cookie: Option<&str>,
    field: Option<&str>,
) -> Request<Body> {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    if let Some(referer) = referer {
        request = request.header(header::REFERER, referer);
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("{COOKIE_NAME}={cookie}"));
    }
    let body = match field {
        Some(token) => format!("{form}&{FIELD_NAME}={token}"),
        None => form.to_string(),
    };
    request.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn forged_form_posts_are_refused_before_anything_changes() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let ui = Ui::new(&test_db).await;
        let run = ui.run().await;
        let task_url = format!("{}/tasks/extract", run_url(&run));
        let (status, _, _) = ui.post("/variables", "key=region&value=kr").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let (status, _, _) = ui
            .post("/connections", "conn_id=kept&url=postgres%3A%2F%2Fu%3Ap%40h%2Fd")
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let (status, backfill_page, body) = ui
            .post(
                "/dags/shop/backfill",
                "from=2026-01-01&to=2026-01-02&reprocess=none&intent=start",
            )
            .await;
        let backfill_page = backfill_page.unwrap_or_else(|| panic!("{label}: {status} {body}"));
        let backfill_page = backfill_page.split('?').next().unwrap().to_string();

        let actions = [
            ("/dags/shop/pause".to_string(), "paused=true"),
            ("/dags/shop/trigger".to_string(), "run_id=forged"),
            (
                "/dags/shop/backfill".to_string(),
                "from=2026-02-01&to=2026-02-02&intent=start",
            ),
            (format!("{backfill_page}/state"), "to=cancelled"),
            (format!("{}/clear", run_url(&run)), "which=all"),
            (format!("{task_url}/clear"), "downstream=true"),
            (format!("{task_url}/mark"), "state=success"),
            ("/variables".to_string(), "key=forged&value=x"),
            ("/variables/delete".to_string(), "key=region"),
            (
                "/connections".to_string(),
                "conn_id=forged&url=postgres%3A%2F%2Fu%3Ap%40h%2Fd",
            ),
            ("/connections/delete".to_string(), "name=kept"),
            ("/connections/test".to_string(), "name=kept&source=database"),
        ];
        let before = support::ui_fingerprint(ui.db()).await;
        for (path, form) in &actions {
            let attacks = [
                (
                    "another origin that tossed its own cookie",
                    forged(
                        path,
                        form,
                        Some(FOREIGN_ORIGIN),
                        None,
                        Some(OTHER_TOKEN),
                        Some(OTHER_TOKEN),
                    ),
                ),
                (
                    "another origin with the victim's cookie but no field",
                    forged(path, form, Some(FOREIGN_ORIGIN), None, Some(UI_CSRF_TOKEN), None),
                ),
                (
                    "an opaque origin",
                    forged(path, form, Some("null"), None, Some(UI_CSRF_TOKEN), Some(UI_CSRF_TOKEN)),
                ),
                (
                    "a Referer of another origin",
                    forged(
                        path,
                        form,
                        None,
                        Some("http://evil.example/x"),
                        Some(UI_CSRF_TOKEN),
                        Some(UI_CSRF_TOKEN),
                    ),
                ),
                (
                    "neither Origin nor Referer",
                    forged(path, form, None, None, Some(UI_CSRF_TOKEN), Some(UI_CSRF_TOKEN)),
                ),
                (
                    "weir's origin without any token",
                    forged(path, form, Some(UI_ORIGIN), None, None, None),
                ),
                (
                    "weir's origin, the cookie, no field",
                    forged(path, form, Some(UI_ORIGIN), None, Some(UI_CSRF_TOKEN), None),
                ),
                (
                    "weir's origin, a guessed token",
                    forged(
                        path,
                        form,
                        Some(UI_ORIGIN),
                        None,
                        Some(UI_CSRF_TOKEN),
                        Some(OTHER_TOKEN),
                    ),
                ),
                (
                    "weir's origin, a field but no cookie",
                    forged(path, form, Some(UI_ORIGIN), None, None, Some(UI_CSRF_TOKEN)),
                ),
            ];
            for (attack, request) in attacks {
                let (status, location, body) = ui.send(request).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{label}: {attack} on {path}: {location:?} {body}"
                );
                assert!(
                    body.contains("changed nothing") && body.contains("reload it"),
                    "{label}: {attack} on {path}: the page says what happened and what to do: {body}"
                );
            }
        }
        assert_eq!(
            support::ui_fingerprint(ui.db()).await,
            before,
            "{label}: a refused post changed something"
        );

        // The fingerprint does see a change: the same pause from weir's own page works.
        let (status, _, _) = ui.post("/dags/shop/pause", "paused=true").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_ne!(support::ui_fingerprint(ui.db()).await, before, "{label}");
    }
}

#[tokio::test]
async fn a_page_gives_the_browser_its_cookie_and_every_form_the_same_token() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let ui = Ui::new(&test_db).await;
        ui.run().await;
        let app = router(ui.state.clone());

        let response = app
            .clone()
            .oneshot(
                Request::get("/dags/shop?tab=trigger")
                    .header(header::COOKIE, &ui.cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let token = cookie
            .strip_prefix(&format!("{COOKIE_NAME}="))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("{label}: {cookie}"))
            .to_string();
        assert_eq!(token.len(), 64, "{label}: {cookie}");
        for attribute in ["Path=/", "HttpOnly", "SameSite=Strict"] {
            assert!(cookie.contains(attribute), "{label}: {cookie} lacks {attribute}");
        }
        assert!(
            !cookie.contains("Secure"),
            "{label}: plain http cannot keep a Secure cookie"
        );
        let field = format!("<input type=\"hidden\" name=\"{FIELD_NAME}\" value=\"{token}\">");
        assert_eq!(
            body.matches(&field).count(),
            3,
            "{label}: the pause toggle, the trigger form and the log-out button: {body}"
        );

        // With the cookie, the page keeps it and puts it in every form.
        let response = app
            .clone()
            .oneshot(
                Request::get(run_url(&ui.run().await))
                    .header(header::COOKIE, format!("{COOKIE_NAME}={token}; {}", ui.cookie))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(
            response.headers().get(header::SET_COOKIE).is_none(),
            "{label}: the cookie is kept"
        );
        let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let n_forms = body.matches("<form").count();
        assert!(n_forms >= 4, "{label}: {body}");
        assert_eq!(
            body.matches(&field).count(),
            n_forms,
            "{label}: every form carries the token"
        );

        // What the page gave works, from weir's origin (Referer is enough without Origin).
        let post = Request::post("/dags/shop/pause")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::REFERER, format!("{UI_ORIGIN}/dags/shop"))
            .header(header::COOKIE, format!("other=1; {COOKIE_NAME}={token}"))
            .body(Body::from(format!("paused=true&{FIELD_NAME}={token}")))
            .unwrap();
        let (status, location, body) = ui.send(post).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {body}");
        assert!(location.unwrap().starts_with("/dags/shop?notice="), "{label}");

        // Behind https, the cookie is Secure.
        let https = Ui::with_config(&test_db, "\n[webserver]\nbase_url = \"https://weir.example.com\"\n").await;
        let response = router(https.state.clone())
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = response.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(cookie.ends_with("; Secure"), "{label}: {cookie}");
    }
}

#[tokio::test]
async fn hostile_next_values_fall_back_to_the_default_page_after_the_action() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let ui = Ui::new(&test_db).await;
        let run = ui.run().await;
        let hostile = [
            ("/%09/evil.example", "%2F%09%2Fevil.example"),
            ("CR/LF", "%2Fdags%2Fshop%0D%0ASet-Cookie%3A%20x%3Dy"),
            ("//evil.example", "%2F%2Fevil.example"),
            ("/\\evil.example", "%2F%5Cevil.example"),
            ("https://evil.example", "https%3A%2F%2Fevil.example"),
        ];
        for (index, (what, next)) in hostile.iter().enumerate() {
            let paused = index % 2 == 0;
            let (status, location, body) = ui
                .post("/dags/shop/pause", &format!("paused={paused}&next={next}"))
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {what}: {body}");
            let location = location.unwrap();
            assert!(
                location.starts_with("/dags/shop?notice="),
                "{label}: {what} went to {location}"
            );
            let (_, page) = ui.get("/").await;
            assert!(
                page.contains(&format!("aria-checked=\"{}\"", !paused)),
                "{label}: {what}: the pause itself was done"
            );

            let task_url = format!("{}/tasks/extract", run_url(&run));
            let (status, location, body) = ui
                .post(&format!("{task_url}/mark"), &format!("state=success&next={next}"))
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {what}: {body}");
            assert!(
                location.unwrap().starts_with(&format!("{task_url}?notice=")),
                "{label}: {what}"
            );
        }
        // A local next is still followed.
        let (_, location, _) = ui
            .post("/dags/shop/pause", "paused=false&next=%2Fdags%2Fshop%3Ftab%3Druns")
            .await;
        assert!(location.unwrap().starts_with("/dags/shop?tab=runs&notice="), "{label}");
    }
}

#[tokio::test]
async fn pages_hold_nothing_the_csp_blocks_get_changes_nothing_and_actions_answer_only_post() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let ui = Ui::new(&test_db).await;
        let run = ui.run().await;
        let task_url = format!("{}/tasks/extract", run_url(&run));
        let before = support::ui_fingerprint(ui.db()).await;
        let pages = [
            "/".to_string(),
            "/import-errors".to_string(),
            "/datasets".to_string(),
            "/alerts".to_string(),
            "/variables".to_string(),
            "/connections".to_string(),
            "/dags/shop".to_string(),
            "/dags/shop?tab=graph".to_string(),
            "/dags/shop?tab=backfill".to_string(),
            run_url(&run),
            task_url.clone(),
        ];
        for page in &pages {
            let (status, body) = ui.get(page).await;
            assert_eq!(status, StatusCode::OK, "{label}: {page}: {body}");
            // What the CSP would block, including markup made by code (the graph's SVG).
            for blocked in ["<style", " style=", "<script>", " onclick=", " onload=", "javascript:"] {
                assert!(!body.contains(blocked), "{label}: {page} holds `{blocked}`");
            }
        }
        let actions = [
            "/dags/shop/pause".to_string(),
            "/dags/shop/trigger".to_string(),
            "/dags/shop/backfill".to_string(),
            "/dags/shop/backfills/1/state".to_string(),
            format!("{}/clear", run_url(&run)),
            format!("{task_url}/clear"),
            format!("{task_url}/mark"),
            "/variables/delete".to_string(),
            "/connections/delete".to_string(),
            "/connections/test".to_string(),
        ];
        for action in &actions {
            for method in [Method::GET, Method::HEAD] {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(format!("{action}?paused=true&state=success&which=all&name=x&key=x"))
                    .body(Body::empty())
                    .unwrap();
                let (status, _, _) = ui.send(request).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{label}: {method} {action}");
            }
        }
        assert_eq!(
            support::ui_fingerprint(ui.db()).await,
            before,
            "{label}: a GET changed something"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let test_db = support::databases().await.into_iter().next().unwrap();
    let ui = Ui::new(&test_db).await;
    let requests = [
        Request::get("/").body(Body::empty()).unwrap(),
        Request::get("/dags/shop?tab=graph").body(Body::empty()).unwrap(),
        Request::get("/dags/no_such_dag").body(Body::empty()).unwrap(),
        Request::get("/static/weir.js").body(Body::empty()).unwrap(),
        Request::get("/static/no-such-file.css").body(Body::empty()).unwrap(),
        Request::get("/no/such/route").body(Body::empty()).unwrap(),
        Request::get("/api/v2/version").body(Body::empty()).unwrap(),
        Request::get("/api/v2/dags/no_such_dag").body(Body::empty()).unwrap(),
        Request::get("/metrics").body(Body::empty()).unwrap(),
        Request::post("/dags/shop/pause")
            .body(Body::from("paused=true"))
            .unwrap(),
        support::ui_form_post("/dags/shop/pause", "paused=true"),
    ];
    for request in requests {
        let what = format!("{} {}", request.method(), request.uri());
        let response = router(ui.state.clone()).oneshot(request).await.unwrap();
        for (name, value) in weir::api::SECURITY_HEADERS {
            assert_eq!(
                response.headers().get(&name).map(|found| found.to_str().unwrap()),
                Some(value),
                "{what} ({}) lacks {name}",
                response.status()
            );
        }
    }
    let csp = weir::api::CONTENT_SECURITY_POLICY;
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
}

#[tokio::test]
async fn the_api_refuses_state_changes_sent_by_another_origin() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let ui = Ui::new(&test_db).await;
        let create = |key: &str, origin: Option<&str>| {
            let mut request = Request::post("/api/v2/variables").header(header::CONTENT_TYPE, "application/json");
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            request
                .body(Body::from(format!("{{\"key\": \"{key}\", \"value\": \"v\"}}")))
                .unwrap()
        };
        let (status, _, body) = ui.send(create("from_page", Some(FOREIGN_ORIGIN))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");
        assert!(
            body.contains("\"detail\"") && body.contains(FOREIGN_ORIGIN),
            "{label}: {body}"
        );
        let (status, _, body) = ui.send(create("from_null", Some("null"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");
        let delete = Request::delete("/api/v2/variables/region")
            .header(header::ORIGIN, FOREIGN_ORIGIN)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = ui.send(delete).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");

        // A client (no Origin) and weir's own origin are served; reading is never refused.
        let (status, _, body) = ui.send(create("from_client", None)).await;
        assert!(status.is_success(), "{label}: {status} {body}");
        let (status, _, body) = ui.send(create("from_weir", Some(UI_ORIGIN))).await;
        assert!(status.is_success(), "{label}: {status} {body}");
        let read = Request::get("/api/v2/variables")
            .header(header::ORIGIN, FOREIGN_ORIGIN)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = ui.send(read).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(
            body.contains("from_client") && body.contains("from_weir"),
            "{label}: {body}"
        );
        assert!(
            !body.contains("from_page") && !body.contains("from_null"),
            "{label}: {body}"
        );
    }
}

#[tokio::test]
async fn a_loopback_weir_answers_no_request_addressed_to_another_host_name() {
    let test_db = support::databases().await.into_iter().next().unwrap();
    let ui = Ui::new(&test_db).await;
    let get = |path: &str, host: &str| {
        Request::get(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    // A page at evil.example whose name now points at 127.0.0.1 reaches weir with its own name.
    for path in ["/", "/variables", "/api/v2/variables", "/api/v2/dags"] {
        let (status, _, body) = ui.send(get(path, "evil.example:8080")).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}: {body}");
        assert!(
            body.contains("base_url") && body.contains("evil.example"),
            "{path}: {body}"
        );
    }
    let mut forged = support::ui_form_post("/dags/shop/pause", "paused=true");
    forged
        .headers_mut()
        .insert(header::HOST, "evil.example:8080".parse().unwrap());
    forged
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example:8080".parse().unwrap());
    let before = support::ui_fingerprint(ui.db()).await;
    let (status, _, _) = ui.send(forged).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(support::ui_fingerprint(ui.db()).await, before);

    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let (status, _, body) = ui.send(get("/", host)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }

    // Listening on every address, weir cannot know its names: any Host is answered.
    let public = Ui::with_config(&test_db, "\n[webserver]\nbind = \"0.0.0.0:8080\"\n").await;
    let (status, _, body) = public.send(get("/", "weir.internal:8080")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
