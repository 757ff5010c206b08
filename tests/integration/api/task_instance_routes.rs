//! Task instances: list, get, mark, tries, logs, and `clearTaskInstances`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use super::apis;

const RUN: &str = "/api/v2/dags/test/dagRuns/ti_run";

#[tokio::test]
async fn task_instances_are_listed_and_fetched_in_airflow_shape() {
    for api in apis().await {
        api.finished_run("ti_run").await;
        let answer = api.get(&format!("{RUN}/taskInstances")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(answer.body["total_entries"], 2);
        let second = &answer.body["task_instances"][1];
        assert_eq!(second["task_id"], "second");
        assert_eq!(second["state"], json!(null), "weir's `none` is Airflow's null");
        assert_eq!(second["map_index"], -1);
        assert_eq!(second["max_tries"], 1, "Airflow's max_tries counts retries");
        assert_eq!(second["executor_config"], "{}");
        let filtered = api.get(&format!("{RUN}/taskInstances?state=success")).await;
        assert_eq!(filtered.body["total_entries"], 1, "{filtered:?}");
        let first = api.get(&format!("{RUN}/taskInstances/first")).await;
        assert_eq!(first.body["state"], "success", "{first:?}");
        assert_eq!(first.body["try_number"], 1);
        assert_eq!(first.body["rendered_fields"], json!({"command": "echo hello"}));
        let id = first.body["id"].as_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(
            api.get(&format!("{RUN}/taskInstances/first")).await.body["id"],
            id,
            "ids are stable"
        );

        assert_eq!(
            api.get(&format!("{RUN}/taskInstances/nope")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get(&format!("{RUN}/taskInstances/a%2Fb")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/nope/taskInstances").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get(&format!("{RUN}/taskInstances?state=asleep")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get(&format!("{RUN}/taskInstances?limit=-1")).await.status,
            StatusCode::BAD_REQUEST
        );

        let tries = api.get(&format!("{RUN}/taskInstances/first/tries")).await;
        assert_eq!(tries.body["total_entries"], 1, "{tries:?}");
        assert_eq!(tries.body["task_instances"][0]["output"], "hello");
        assert_eq!(
            api.get(&format!("{RUN}/taskInstances/nope/tries")).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn marking_a_task_instance_changes_it_unless_it_is_a_dry_run() {
    for api in apis().await {
        api.finished_run("ti_run").await;
        let dry = api
            .call(
                Method::PATCH,
                &format!("{RUN}/taskInstances/second/dry_run"),
                Some(json!({"new_state": "failed"})),
            )
            .await;
        assert_eq!(dry.status, StatusCode::OK, "{}: {dry:?}", api.label);
        assert_eq!(
            dry.body["task_instances"][0]["state"],
            json!(null),
            "a dry run changes nothing"
        );
        let flagged_dry = api
            .call(
                Method::PATCH,
                &format!("{RUN}/taskInstances/second"),
                Some(json!({"new_state": "failed", "dry_run": true})),
            )
            .await;
        assert_eq!(
            flagged_dry.body["task_instances"][0]["state"],
            json!(null),
            "{flagged_dry:?}"
        );
        let real = api
            .call(
                Method::PATCH,
                &format!("{RUN}/taskInstances/second"),
                Some(json!({"new_state": "failed"})),
            )
            .await;
        assert_eq!(real.body["task_instances"][0]["state"], "failed", "{real:?}");
        for (body, status) in [
            (json!({"new_state": "running"}), StatusCode::BAD_REQUEST),
            (json!({}), StatusCode::BAD_REQUEST),
            (
                json!({"new_state": "success", "include_downstream": true}),
                StatusCode::BAD_REQUEST,
            ),
            (json!({"new_state": true}), StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let answer = api
                .call(
                    Method::PATCH,
                    &format!("{RUN}/taskInstances/second"),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(answer.status, status, "{body}: {answer:?}");
        }
        let missing = api
            .call(
                Method::PATCH,
                &format!("{RUN}/taskInstances/nope"),
                Some(json!({"new_state": "success"})),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
        let mapped = api
            .call(
                Method::PATCH,
                &format!("{RUN}/taskInstances/second?map_index=3"),
                Some(json!({"new_state": "success"})),
            )
            .await;
        assert_eq!(mapped.status, StatusCode::NOT_FOUND, "{mapped:?}");
    }
}

#[tokio::test]
async fn logs_come_as_json_lines_or_plain_text_and_bad_ids_never_reach_the_disk() {
    for api in apis().await {
        api.finished_run("ti_run").await;
        let answer = api.get(&format!("{RUN}/taskInstances/first/logs/1")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {answer:?}", api.label);
        assert_eq!(
            answer.body["content"],
            json!([{"event": "line one"}, {"event": "hello us"}])
        );
        let token = answer.body["continuation_token"].as_str().unwrap().to_string();
        let rest = api
            .get(&format!("{RUN}/taskInstances/first/logs/1?token={token}"))
            .await;
        assert_eq!(rest.body["content"], json!([]), "nothing after the token: {rest:?}");

        let request = Request::builder()
            .uri(format!("{RUN}/taskInstances/first/logs/1"))
            .header(header::ACCEPT, "text/plain")
            .body(Body::empty())
            .unwrap();
        let text = api.send(request).await;
        assert!(text.content_type.starts_with("text/plain"), "{text:?}");
        assert_eq!(text.body, json!("line one\nhello us\n"));

        for (uri, status) in [
            (format!("{RUN}/taskInstances/first/logs/2"), StatusCode::NOT_FOUND),
            (format!("{RUN}/taskInstances/first/logs/0"), StatusCode::NOT_FOUND),
            (format!("{RUN}/taskInstances/second/logs/1"), StatusCode::NOT_FOUND),
            (format!("{RUN}/taskInstances/first/logs/abc"), StatusCode::BAD_REQUEST),
            (format!("{RUN}/taskInstances/first/logs/-1"), StatusCode::BAD_REQUEST),
            (
                format!("{RUN}/taskInstances/first/logs/1?token=xyz"),
                StatusCode::BAD_REQUEST,
            ),
            (
                format!("{RUN}/taskInstances/..%2F..%2Fconfig/logs/1"),
                StatusCode::BAD_REQUEST,
            ),
            (format!("{RUN}/taskInstances/../logs/1"), StatusCode::BAD_REQUEST),
            (
                "/api/v2/dags/test/dagRuns/..%2F..%2F../taskInstances/first/logs/1".to_string(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/v2/dags/%2E%2E/dagRuns/ti_run/taskInstances/first/logs/1".to_string(),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let answer = api.get(&uri).await;
            assert_eq!(answer.status, status, "{uri}: {answer:?}");
            assert!(!answer.detail().is_empty(), "{uri}: {answer:?}");
        }
    }
}

/// The window one JSON log response holds at most (`MAX_LOG_CHUNK` in the handler).
const LOG_WINDOW: usize = 1024 * 1024;

/// A GET with an `Accept` header, answered with its headers and raw body.
async fn get_raw(api: &super::Api, uri: &str, accept: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = Request::builder()
        .uri(uri)
        .header(header::ACCEPT, accept)
        .header(header::AUTHORIZATION, format!("Bearer {}", api.admin_token))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn a_large_log_is_read_in_bounded_windows_that_walk_it_once() {
    // About 20 MB of lines of varying length, some with multi-byte characters.
    let mut log = String::with_capacity(21 * 1024 * 1024);
    let mut line = 0usize;
    while log.len() < 20 * 1024 * 1024 {
        let width = 20 + (line * 7919) % 300;
        log.push_str(&format!("{line:08} {} é ✓\n", "x".repeat(width)));
        line += 1;
    }
    for api in apis().await {
        let run = api.finished_run("ti_run").await;
        let first = weir::domain::ids::TaskId::parse("first").unwrap();
        let path =
            weir::runtime::task_log::LogPath::new(&api.state.config.logs_dir(), &run.dag_id, &run.run_id, &first, 1)
                .file();
        std::fs::write(&path, &log).unwrap();
        let uri = format!("{RUN}/taskInstances/first/logs/1");

        let mut walked = String::with_capacity(log.len());
        let mut token = String::new();
        let mut responses = 0;
        loop {
            let (status, _, body) = get_raw(&api, &format!("{uri}?token={token}"), "application/json").await;
            assert_eq!(status, StatusCode::OK, "{}", api.label);
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let lines = answer["content"].as_array().unwrap();
            let next = answer["continuation_token"].as_str().unwrap().to_string();
            if lines.is_empty() {
                assert_eq!(next, token, "an empty answer stays where it is");
                break;
            }
            let window: usize = lines.iter().map(|line| line["event"].as_str().unwrap().len() + 1).sum();
            assert!(window <= LOG_WINDOW, "{}: a response holds {window} bytes", api.label);
            for line in lines {
                walked.push_str(line["event"].as_str().unwrap());
                walked.push('\n');
            }
            assert_eq!(
                next.parse::<usize>().unwrap(),
                walked.len(),
                "the token is where the text ends"
            );
            token = next;
            responses += 1;
            assert!(responses <= 100, "{}: the walk does not end", api.label);
        }
        assert_eq!(walked.len(), log.len(), "{}", api.label);
        assert!(walked == log, "{}: the windows concatenate to the file", api.label);
        assert!(responses >= 20, "{}: {responses} responses", api.label);

        let (status, headers, body) = get_raw(&api, &uri, "text/plain").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body == log.as_bytes(),
            "{}: the text form streams the whole file",
            api.label
        );
        let end = headers["airflow-continuation-token"].to_str().unwrap().to_string();
        assert_eq!(end, log.len().to_string());
        let (_, _, rest) = get_raw(&api, &format!("{uri}?token={end}"), "text/plain").await;
        assert!(rest.is_empty(), "nothing after the end");
        let middle = log.len() / 2;
        let (_, headers, tail) = get_raw(&api, &format!("{uri}?token={middle}"), "text/plain").await;
        assert!(tail == log.as_bytes()[middle..], "the text form starts at the token");
        assert_eq!(headers["airflow-continuation-token"], end.as_str());
    }
}

#[tokio::test]
async fn clear_task_instances_selects_by_run_task_and_downstream() {
    for api in apis().await {
        let run = api.finished_run("ti_run").await;
        api.finish(&run).await;
        let body = json!({"dry_run": true, "only_failed": false, "dag_run_id": "ti_run", "task_ids": ["first"], "include_downstream": true});
        let dry = api
            .call(Method::POST, "/api/v2/dags/test/clearTaskInstances", Some(body))
            .await;
        assert_eq!(dry.status, StatusCode::OK, "{}: {dry:?}", api.label);
        let ids: Vec<&str> = dry.body["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ti| ti["task_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["first", "second"]);
        assert_eq!(dry.body["total_entries"], 2);
        let only_failed = api
            .call(Method::POST, "/api/v2/dags/test/clearTaskInstances", Some(json!({})))
            .await;
        assert_eq!(
            only_failed.body["total_entries"], 0,
            "only_failed and dry_run default to true: {only_failed:?}"
        );
        let real = api
            .call(
                Method::POST,
                "/api/v2/dags/test/clearTaskInstances",
                Some(json!({"dry_run": false, "only_failed": false, "task_ids": [["second", -1]]})),
            )
            .await;
        assert_eq!(real.body["task_instances"][0]["state"], json!(null), "{real:?}");
        assert_eq!(
            api.get("/api/v2/dags/test/dagRuns/ti_run").await.body["state"],
            "queued"
        );

        for (body, status, needle) in [
            (
                json!({"task_ids": ["nope"]}),
                StatusCode::NOT_FOUND,
                "has no task `nope`",
            ),
            (
                json!({"task_ids": [["first", 2]]}),
                StatusCode::BAD_REQUEST,
                "no mapped tasks",
            ),
            (json!({"task_ids": [3]}), StatusCode::UNPROCESSABLE_ENTITY, "task_ids"),
            (
                json!({"include_upstream": true}),
                StatusCode::BAD_REQUEST,
                "include_upstream",
            ),
            (
                json!({"dag_run_id": "nope"}),
                StatusCode::NOT_FOUND,
                "has no run `nope`",
            ),
            (
                json!({"start_date": "2026-03-02T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"}),
                StatusCode::BAD_REQUEST,
                "start_date",
            ),
        ] {
            let answer = api
                .call(Method::POST, "/api/v2/dags/test/clearTaskInstances", Some(body.clone()))
                .await;
            assert_eq!(answer.status, status, "{body}: {answer:?}");
            assert!(answer.detail().contains(needle), "{body}: {answer:?}");
        }
        let missing = api
            .call(Method::POST, "/api/v2/dags/missing/clearTaskInstances", Some(json!({})))
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}
