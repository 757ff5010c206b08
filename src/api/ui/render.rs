//! Templates and static files, embedded in the binary from `web/` (rust-embed): the minijinja
//! environment that renders every page, and the handler that serves CSS and JS.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};

use super::error::UiPath;
use crate::api::error::ApiError;
use crate::domain::auth::{Access, Principal};

#[derive(rust_embed::Embed)]
#[folder = "web/templates"]
struct Templates;

#[derive(rust_embed::Embed)]
#[folder = "web/static"]
struct Static;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut environment = Environment::new();
    environment
        .set_loader(|name| Ok(Templates::get(name).map(|file| String::from_utf8_lossy(&file.data).into_owned())));
    environment.add_filter("urlencode", |value: String| super::views::encode(&value));
    environment.add_function("csrf_field", csrf_field);
    environment.set_formatter(html_formatter);
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    environment
});

/// `{{ csrf_field() }}`: the hidden field that every `<form method="post">` carries (a tidy test
/// checks that none lacks it).
fn csrf_field() -> Result<minijinja::Value, minijinja::Error> {
    super::csrf::current_field()
        .map(minijinja::Value::from_safe_string)
        .ok_or_else(|| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "csrf_field() used outside a UI request: a form rendered here would be refused",
            )
        })
}

/// minijinja's HTML escaping, except that `/` stays `/` (minijinja writes `&#x2f;`, which is
/// valid but makes every URL in the page source unreadable).
fn html_formatter(
    output: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if value.is_safe() || matches!(state.auto_escape(), minijinja::AutoEscape::None) {
        return minijinja::escape_formatter(output, state, value);
    }
    let text = if value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    };
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    output
        .write_str(&escaped)
        .map_err(|error| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, error.to_string()))
}

tokio::task_local! {
    /// The caller of the UI request being handled, set by the guard for the handler's future.
    static CALLER: Principal;
}

/// Runs a UI handler with `principal` as the caller every page it renders shows and obeys.
pub async fn with_caller<F: std::future::Future>(principal: Principal, future: F) -> F::Output {
    CALLER.scope(principal, future).await
}

/// What every template gets about its caller: `me` (username, role; absent on public pages) and
/// `can` (what the role may do, so a page shows only the actions it may take).
fn caller_context() -> minijinja::Value {
    CALLER
        .try_with(|principal| {
            context! {
                me => context! { username => principal.username, role => principal.role.as_str() },
                can => context! {
                    operate => principal.may(Access::OPERATE),
                    configure => principal.may(Access::CONFIGURE),
                    administer => principal.may(Access::ADMINISTER),
                },
            }
        })
        .unwrap_or_else(|_| context! { can => context! { operate => false, configure => false, administer => false } })
}

/// Renders template `name` (HTML-escaped) with `context` and the caller's `me` and `can`.
pub fn page(name: &str, context: minijinja::Value) -> Result<Html<String>, ApiError> {
    let template = ENVIRONMENT
        .get_template(name)
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("loading template {name}: {error:#}")))?;
    let html = template
        .render(context! { ..caller_context(), ..context })
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("rendering template {name}: {error:#}")))?;
    Ok(Html(html))
}

/// `GET /static/{*path}`: CSS, JS and images from `web/static`.
pub async fn asset(UiPath(path): UiPath<String>) -> Result<Response, ApiError> {
    let file = Static::get(&path).ok_or_else(|| ApiError::NotFound(format!("no static file `{path}`")))?;
    let content_type = match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        file.data.into_owned(),
    )
        .into_response())
}
