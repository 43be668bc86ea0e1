-- `backlog-operator doctor`: database checks. Loaded by report/sql.py; {schema} is the
-- pipeline schema, composed with psycopg.sql.Identifier.

-- name: server
SELECT split_part(current_setting('server_version'), ' ', 1), current_database(),
       coalesce(host(inet_server_addr()), 'local socket'), current_setting('port')

-- name: indexes
-- Indexes on the jobs table: name, valid (a failed CREATE INDEX CONCURRENTLY leaves an
-- invalid one behind), partial (has a predicate).
SELECT i.relname, x.indisvalid, x.indpred IS NOT NULL
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_class AS t ON t.oid = x.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema_name)s AND t.relname = 'upload_jobs'

-- name: expired_leases
-- Claims whose lease ran out more than `grace_s` seconds ago: the worker died and no
-- reaper (every worker runs one) returned the job. Per stage, with the oldest expiry.
SELECT stage, count(*)::bigint,
       max(extract(epoch FROM now() - lease_expires_at))::float8 AS oldest_s
FROM {schema}.upload_jobs
WHERE state = 'working'
  AND lease_expires_at < now() - make_interval(secs => %(grace_s)s)
GROUP BY stage
ORDER BY stage

-- name: deadletters_last_hour
-- Jobs that ended in deadletter in the last hour, per stage, with the commonest error.
SELECT stage, count(*)::bigint,
       mode() WITHIN GROUP (ORDER BY left(coalesce(last_error::text, ''), 120)) AS error
FROM {schema}.upload_jobs
WHERE state = 'deadletter' AND finished_at > now() - interval '1 hour'
GROUP BY stage
ORDER BY stage
