-- Backfills (§3.8): one row per backfill, one row per logical date it covers.
-- Keep in step with migrations/postgres/0003_backfill.sql.

CREATE TABLE backfill (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id             TEXT NOT NULL,
    from_date          BIGINT NOT NULL,
    to_date            BIGINT NOT NULL,
    reprocess_behavior TEXT NOT NULL,
    max_active_runs    BIGINT NOT NULL,
    run_backwards      BIGINT NOT NULL DEFAULT 0,
    conf               TEXT NOT NULL DEFAULT '{}',
    state              TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    completed_at       BIGINT
);
-- One active (running or paused) backfill per DAG, even against two concurrent requests.
CREATE UNIQUE INDEX backfill_one_active_per_dag ON backfill (dag_id) WHERE state IN ('running', 'paused');

CREATE TABLE backfill_date (
    backfill_id         BIGINT NOT NULL REFERENCES backfill (id) ON DELETE CASCADE,
    ordinal             BIGINT NOT NULL,
    logical_date        BIGINT NOT NULL,
    data_interval_start BIGINT NOT NULL,
    data_interval_end   BIGINT NOT NULL,
    run_after           BIGINT NOT NULL,
    action              TEXT NOT NULL,
    existing_run_id     TEXT,
    reason              TEXT,
    run_pk              BIGINT,
    PRIMARY KEY (backfill_id, ordinal)
);
CREATE INDEX dag_run_by_backfill ON dag_run (backfill_id);
