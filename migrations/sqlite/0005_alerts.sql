-- Alerts (§9): the delivery outbox, one row per (alert, channel), written in the same transaction
-- as the state change that raised it and sent by the daemon's delivery loop; and, per run, when it
-- missed its DAG's SLA (so sla_miss fires once per run). Keep in step with
-- migrations/postgres/0005_alerts.sql.

CREATE TABLE alert (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL,
    event           TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT,
    -- The §9 fields as sent, frozen when the alert was raised (JSON).
    payload         TEXT NOT NULL,
    -- pending | sending | delivered | failed
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- While `sending`: when the claim lapses and the delivery goes back to pending (its sender
    -- died, or was killed).
    claimed_until   BIGINT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX alert_due ON alert (status, next_attempt_at);
CREATE INDEX alert_by_dag ON alert (dag_id, id);

ALTER TABLE dag_run ADD COLUMN sla_missed_at BIGINT;
