//! Datasets: the `/api/v2/datasets` and `/assets` lists with lineage from the loaded DAGs and the
//! newest event, the event lists newest first, their refusals of bad input, and the UI page.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};
use weir::storage::datasets::{self, NewDatasetEvent};

use super::{Api, apis_with};

const PRODUCER: &str = "
dag_id: producer
tasks:
  load: { command: 'true', outlets: [warehouse.orders] }
";

const CONSUMER: &str = "
dag_id: consumer
schedule: {datasets: [warehouse.orders, warehouse.items]}
tasks:
  report: { command: 'true' }
";

/// Records an event as if `task_id` of `run_id` had updated `dataset`.
async fn record(api: &Api, dataset: &str, source_dag_id: &str, run_id: &str, task_id: &str) {
    let mut connection = api.state.db.begin().await.unwrap();
    let event = NewDatasetEvent {
        dataset,
        source_dag_id,
        source_run_id: run_id,
        source_task_id: task_id,
        source_try_number: 1,
    };
    datasets::record_event(&mut connection, &event, Utc::now())
        .await
        .unwrap();
    connection.commit().await.unwrap();
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn datasets_list_lineage_from_the_dags_and_the_newest_event() {
    for api in apis_with(&[PRODUCER, CONSUMER]).await {
        let label = api.label;
        record(&api, "warehouse.orders", "producer", "manual__1", "load").await;
        record(&api, "warehouse.orders", "producer", "manual__2", "load").await;
        // A dataset only events know: its producer's DAG file is gone.
        record(&api, "lake.raw", "retired", "manual__9", "dump").await;

        let answer = api.get("/api/v2/datasets").await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["total_entries"], 3, "{label}: {answer:?}");
        let list = &answer.body["datasets"];
        assert_eq!(
            names(list),
            ["lake.raw", "warehouse.items", "warehouse.orders"],
            "{label}"
        );
        let orders = &list[2];
        assert_eq!(orders["uri"], "warehouse.orders");
        assert_eq!(
            orders["producing_tasks"],
            json!([{"dag_id": "producer", "task_id": "load"}])
        );
        assert_eq!(orders["consuming_dags"], json!([{"dag_id": "consumer"}]));
        assert_eq!(orders["events_total"], 2, "{label}");
        assert_eq!(orders["last_event"]["dag_id"], "producer");
        assert_eq!(orders["last_event"]["run_id"], "manual__2", "{label}: the newest event");
        assert_eq!(orders["last_event"]["task_id"], "load");
        assert!(orders["last_event"]["timestamp"].is_string(), "{orders}");
        let items = &list[1];
        assert_eq!(items["last_event"], Value::Null, "{label}: declared, never updated");
        assert_eq!(items["producing_tasks"], json!([]));
        assert_eq!(items["events_total"], 0);
        let raw = &list[0];
        assert_eq!(raw["consuming_dags"], json!([]));
        assert_eq!(raw["last_event"]["dag_id"], "retired");

        let page = api.get("/api/v2/datasets?limit=1&offset=1&order_by=-name").await;
        assert_eq!(page.body["total_entries"], 3);
        assert_eq!(names(&page.body["datasets"]), ["warehouse.items"], "{label}");
        let pattern = api.get("/api/v2/datasets?name_pattern=orders").await;
        assert_eq!(names(&pattern.body["datasets"]), ["warehouse.orders"], "{label}");

        let assets = api.get("/api/v2/assets").await;
        assert_eq!(assets.status, StatusCode::OK, "{label}");
        assert_eq!(assets.body["assets"], answer.body["datasets"], "{label}: the same list");
    }
}

#[tokio::test]
async fn dataset_events_are_listed_newest_first_and_filtered() {
    for api in apis_with(&[PRODUCER, CONSUMER]).await {
        let label = api.label;
        record(&api, "warehouse.orders", "producer", "manual__1", "load").await;
        record(&api, "warehouse.items", "producer", "manual__1", "other").await;
        record(&api, "warehouse.orders", "producer", "manual__2", "load").await;

        let answer = api.get("/api/v2/datasets/events?dataset=warehouse.orders").await;
        assert_eq!(answer.status, StatusCode::OK, "{label}: {answer:?}");
        assert_eq!(answer.body["total_entries"], 2, "{label}");
        let events = answer.body["dataset_events"].as_array().unwrap();
        let runs: Vec<&str> = events
            .iter()
            .map(|event| event["source_run_id"].as_str().unwrap())
            .collect();
        assert_eq!(runs, ["manual__2", "manual__1"], "{label}: newest first");
        let newest = &events[0];
        assert_eq!(newest["name"], "warehouse.orders");
        assert_eq!(newest["source_dag_id"], "producer");
        assert_eq!(newest["source_task_id"], "load");
        assert_eq!(newest["source_try_number"], 1);
        assert!(newest["timestamp"].is_string());

        let oldest_first = api.get("/api/v2/datasets/events?order_by=id&limit=1").await;
        assert_eq!(oldest_first.body["total_entries"], 3, "{label}");
        assert_eq!(oldest_first.body["dataset_events"][0]["name"], "warehouse.orders");
        assert_eq!(oldest_first.body["dataset_events"][0]["source_run_id"], "manual__1");
        let by_task = api.get("/api/v2/datasets/events?source_task_id=other").await;
        assert_eq!(by_task.body["total_entries"], 1, "{label}");

        let assets = api.get("/api/v2/assets/events?dataset=warehouse.items").await;
        assert_eq!(assets.body["asset_events"][0]["name"], "warehouse.items", "{label}");
    }
}

#[tokio::test]
async fn bad_dataset_queries_are_refused_with_a_precise_detail() {
    for api in apis_with(&[PRODUCER, CONSUMER]).await {
        let label = api.label;
        for (uri, expected) in [
            ("/api/v2/datasets?limit=-1", "`limit` must be a non-negative integer"),
            ("/api/v2/datasets?order_by=size", "cannot order by `size`"),
            ("/api/v2/datasets/events?dataset=", "`dataset` is empty"),
            (
                "/api/v2/datasets/events?offset=many",
                "`offset` must be a non-negative integer",
            ),
            ("/api/v2/datasets/events?source_dag_id=no%20spaces", "is not a valid"),
            ("/api/v2/assets/events?order_by=dataset", "cannot order by `dataset`"),
        ] {
            let answer = api.get(uri).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{label}: {uri}: {answer:?}");
            assert!(answer.detail().contains(expected), "{label}: {uri}: {answer:?}");
        }
    }
}

#[tokio::test]
async fn the_datasets_page_shows_producers_datasets_and_consumers() {
    for api in apis_with(&[PRODUCER, CONSUMER]).await {
        let label = api.label;
        record(
            &api,
            "warehouse.orders",
            "producer",
            "manual__2026-03-01T00:00:00+00:00",
            "load",
        )
        .await;
        let page = api.get("/datasets").await;
        assert_eq!(page.status, StatusCode::OK, "{label}: {page:?}");
        let html = page.body.as_str().unwrap();
        for expected in [
            "warehouse.orders",
            "warehouse.items",
            "href=\"/dags/producer\"",
            "href=\"/dags/consumer\"",
            "load",
            "href=\"/dags/producer/runs/manual__2026-03-01T00%3A00%3A00%2B00%3A00\"",
            "href=\"/datasets\"",
        ] {
            assert!(html.contains(expected), "{label}: the page lacks {expected}:\n{html}");
        }
    }
}

#[tokio::test]
async fn the_datasets_page_explains_datasets_when_there_are_none() {
    for api in apis_with(&[]).await {
        let page = api.get("/datasets").await;
        assert_eq!(page.status, StatusCode::OK, "{}: {page:?}", api.label);
        let html = page.body.as_str().unwrap();
        assert!(html.contains("No datasets yet"), "{html}");
        assert!(html.contains("outlets: [warehouse.orders]"), "{html}");
    }
}
