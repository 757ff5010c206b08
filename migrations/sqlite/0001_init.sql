-- weir metadata schema, version 1 (SQLite). Times are integer microseconds since the Unix epoch,
-- UTC; booleans are 0/1; JSON is text. Keep in step with migrations/postgres/0001_init.sql.

CREATE TABLE weir_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO weir_meta (key, value) VALUES ('change_seq', 0), ('scheduler_heartbeat', 0);

CREATE TABLE dag (
    dag_id                   TEXT PRIMARY KEY,
    fileloc                  TEXT NOT NULL,
    is_paused                BIGINT NOT NULL DEFAULT 0,
    is_active                BIGINT NOT NULL DEFAULT 1,
    schedule                 TEXT NOT NULL,
    timezone                 TEXT NOT NULL,
    owner                    TEXT NOT NULL,
    description              TEXT,
    tags                     TEXT NOT NULL DEFAULT '[]',
    next_dagrun_logical_date BIGINT,
    next_dagrun_run_after    BIGINT,
    last_parsed_at           BIGINT NOT NULL
);

CREATE TABLE dag_run (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    run_type            TEXT NOT NULL,
    state               TEXT NOT NULL,
    logical_date        BIGINT NOT NULL,
    data_interval_start BIGINT NOT NULL,
    data_interval_end   BIGINT NOT NULL,
    run_after           BIGINT NOT NULL,
    queued_at           BIGINT,
    start_date          BIGINT,
    end_date            BIGINT,
    conf                TEXT NOT NULL DEFAULT '{}',
    owner               TEXT,
    backfill_id         BIGINT,
    UNIQUE (dag_id, run_id)
);
CREATE UNIQUE INDEX dag_run_one_per_interval ON dag_run (dag_id, logical_date)
    WHERE run_type IN ('scheduled', 'backfill');
CREATE INDEX dag_run_by_state ON dag_run (state, dag_id);
CREATE INDEX dag_run_by_dag ON dag_run (dag_id, logical_date);

CREATE TABLE task_instance (
    run_pk          BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id         TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    state           TEXT NOT NULL,
    try_number      BIGINT NOT NULL DEFAULT 0,
    max_tries       BIGINT NOT NULL,
    pool            TEXT NOT NULL,
    pool_slots      BIGINT NOT NULL,
    priority_weight BIGINT NOT NULL,
    next_retry_at   BIGINT,
    queued_at       BIGINT,
    start_date      BIGINT,
    end_date        BIGINT,
    pid             BIGINT,
    hostname        TEXT,
    PRIMARY KEY (run_pk, task_id)
);
CREATE INDEX task_instance_by_state ON task_instance (state);

CREATE TABLE task_attempt (
    run_pk     BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id    TEXT NOT NULL,
    try_number BIGINT NOT NULL,
    state      TEXT NOT NULL,
    queued_at  BIGINT NOT NULL,
    start_date BIGINT,
    end_date   BIGINT,
    exit_code  BIGINT,
    pid        BIGINT,
    hostname   TEXT,
    rendered   TEXT NOT NULL DEFAULT '{}',
    output     TEXT,
    error      TEXT,
    PRIMARY KEY (run_pk, task_id, try_number)
);

CREATE TABLE import_error (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    filename  TEXT NOT NULL,
    line      BIGINT NOT NULL,
    col       BIGINT NOT NULL,
    message   TEXT NOT NULL,
    timestamp BIGINT NOT NULL
);
