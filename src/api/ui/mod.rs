//! The web UI (§8): server-rendered pages at Airflow's URLs. For now the root page says where
//! things are; the pages come with the UI work.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new().route("/", get(home))
}

async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>weir</title><h1>weir</h1><p>The REST API is under <a href=\"/api/v2/dags\">/api/v2</a>.</p>",
    )
}
