-- People who sign in to the API and the UI, with Airflow's roles and user fields. The password is
-- stored only as an argon2id hash in PHC format. `token_epoch` grows when the password is reset:
-- tokens and sessions carry the epoch they were issued in and stop working when it moves on.
-- Keep in step with migrations/postgres/0006_users.sql.

CREATE TABLE weir_user (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    -- Viewer | User | Op | Admin
    role            TEXT NOT NULL,
    email           TEXT,
    first_name      TEXT,
    last_name       TEXT,
    token_epoch     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
