-- The audit log: one row per change a person made (REST API, UI, CLI) and per login, in the shape
-- of Airflow's `log` table. `surface` is api, ui or cli; `address` is where the change came from
-- (the client's IP address over HTTP, the host name for the CLI). `extra` is a JSON object of
-- names and ids only (never a variable's value, a password or a request body). Keep in step with
-- migrations/postgres/0007_event_log.sql.

CREATE TABLE event_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dttm         BIGINT NOT NULL,
    event        TEXT NOT NULL,
    owner        TEXT NOT NULL,
    surface      TEXT NOT NULL,
    address      TEXT,
    dag_id       TEXT,
    run_id       TEXT,
    task_id      TEXT,
    try_number   BIGINT,
    logical_date BIGINT,
    extra        TEXT
);
CREATE INDEX event_log_by_time ON event_log (dttm);
CREATE INDEX event_log_by_dag ON event_log (dag_id, dttm);
