-- Datasets (§6): an event per outlet of every successful task, and per dataset-scheduled DAG how
-- far it has consumed each dataset it lists. Keep in step with migrations/postgres/0004_datasets.sql.

CREATE TABLE dataset_event (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset           TEXT NOT NULL,
    source_dag_id     TEXT NOT NULL,
    source_run_id     TEXT NOT NULL,
    source_task_id    TEXT NOT NULL,
    source_try_number BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX dataset_event_by_dataset ON dataset_event (dataset, id);

-- The watermark: the id of the newest event of `dataset` that `dag_id` has consumed (by creating a
-- dataset run) or that existed when the DAG first listed the dataset. Events with a higher id are
-- pending for that DAG.
CREATE TABLE dataset_consumer (
    dag_id            TEXT NOT NULL,
    dataset           TEXT NOT NULL,
    consumed_event_id BIGINT NOT NULL,
    PRIMARY KEY (dag_id, dataset)
);
