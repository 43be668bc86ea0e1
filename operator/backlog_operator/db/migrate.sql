-- Queries of the migration runner (backlog_operator/db/migrate.py), one per `-- name:` header.

-- name: lock
-- One key for every migrating process of this project; waits for the holder to finish.
SELECT pg_advisory_lock(7161483969052566272);

-- name: try_lock
SELECT pg_try_advisory_lock(7161483969052566272);

-- name: unlock
SELECT pg_advisory_unlock(7161483969052566272);

-- name: create_history
CREATE SCHEMA IF NOT EXISTS backlog_operator;
CREATE TABLE IF NOT EXISTS backlog_operator.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: history_exists
SELECT to_regclass('backlog_operator.schema_migrations') IS NOT NULL;

-- name: applied
SELECT version, name, checksum FROM backlog_operator.schema_migrations ORDER BY version;

-- name: record
INSERT INTO backlog_operator.schema_migrations (version, name, checksum) VALUES (%s, %s, %s);

-- name: current_version
SELECT max(version) FROM backlog_operator.schema_migrations;
