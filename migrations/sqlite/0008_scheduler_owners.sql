-- Who runs what: one row per scheduler process (`weir serve`/`weir scheduler`: kind 'daemon';
-- `weir dags test`: kind 'test'), with its host, pid and the pid's start time (clock ticks since
-- boot, from /proc/<pid>/stat, so a reused pid is not mistaken for it), its heartbeat and its
-- clean stop. A task instance records the scheduler that claimed its current attempt: recovery
-- takes over only attempts whose scheduler is dead. Keep in step with
-- migrations/postgres/0008_scheduler_owners.sql.

CREATE TABLE scheduler (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    pid_start    BIGINT,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT
);

ALTER TABLE task_instance ADD COLUMN scheduler_id BIGINT;
