-- weir metadata schema, version 2 (sqlite): variables and connections managed through the API/CLI.
-- Keep in step with migrations/postgres/0002_variables_connections.sql.

CREATE TABLE variable (
    key         TEXT PRIMARY KEY,
    val         TEXT NOT NULL,
    description TEXT
);

-- The password is stored as given until the secrets key of §1 encrypts it; it is never returned.
CREATE TABLE connection (
    conn_id     TEXT PRIMARY KEY,
    conn_type   TEXT NOT NULL,
    host        TEXT,
    conn_schema TEXT,
    login       TEXT,
    password    TEXT,
    port        BIGINT,
    extra       TEXT,
    description TEXT
);
