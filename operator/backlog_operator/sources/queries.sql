-- The signal hub's SQL. Loaded once by sources/queries.py with
-- backlog_operator.db.queries.load; {schema} and {table} come from a BacklogScaler spec
-- and are composed with psycopg.sql.Identifier, never formatted.

-- name: stage_signals
-- One statement per (database, schema, table) per tick, for every stage the hub's
-- subscribers need. Backlog: an index-only scan of upload_jobs_backlog (active rows
-- only, so it stays small while done rows pile up). Flow: stage_done and error events
-- of the last `window_s` seconds via events_created_at. Rows for every requested stage,
-- zeros when a stage has no active job; oldest_ready_s is NULL when nothing is ready.
WITH wanted AS (
    SELECT DISTINCT unnest(%(stages)s::text[]) AS stage
), backlog AS (
    SELECT j.stage,
           count(*) FILTER (WHERE j.state = 'queued'
                               OR (j.state = 'retryable' AND coalesce(j.retry_at <= now(), true)))
               AS ready,
           count(*) FILTER (WHERE j.state = 'working') AS in_flight,
           count(*) FILTER (WHERE j.state = 'retryable' AND j.retry_at > now()) AS waiting,
           -- A queued row became ready when it was last updated (created, advanced, released);
           -- a retryable one when its retry_at passed.
           min(CASE WHEN j.state = 'queued' THEN j.updated_at
                    WHEN coalesce(j.retry_at <= now(), true)
                    THEN coalesce(j.retry_at, j.updated_at) END)
               AS ready_since
    FROM {schema}.{table} AS j
    WHERE j.state IN ('queued', 'working', 'retryable')
      AND j.stage = ANY(%(stages)s::text[])
    GROUP BY j.stage
), flow AS (
    SELECT e.stage,
           count(*) FILTER (WHERE e.event_type = 'stage_done') AS completions,
           count(*) FILTER (WHERE e.event_type = 'error') AS failures,
           avg((e.detail ->> 'seconds')::float8) FILTER (WHERE e.event_type = 'stage_done')
               AS service_time_s
    FROM {schema}.events AS e
    WHERE e.created_at > now() - make_interval(secs => %(window_s)s)
      AND e.event_type IN ('stage_done', 'error')
      AND e.stage = ANY(%(stages)s::text[])
    GROUP BY e.stage
)
SELECT w.stage,
       coalesce(b.ready, 0) AS ready,
       coalesce(b.in_flight, 0) AS in_flight,
       coalesce(b.waiting, 0) AS waiting,
       extract(epoch FROM now() - b.ready_since)::float8 AS oldest_ready_s,
       coalesce(f.completions, 0) AS completions,
       coalesce(f.failures, 0) AS failures,
       f.service_time_s,
       extract(epoch FROM now())::float8 AS db_now
FROM wanted AS w
LEFT JOIN backlog AS b ON b.stage = w.stage
LEFT JOIN flow AS f ON f.stage = w.stage
ORDER BY w.stage

-- name: backlog_only
-- The backlog half of stage_signals alone: what the benchmark times with and without the
-- partial index (the flow half reads the events table, not upload_jobs).
SELECT j.stage,
       count(*) FILTER (WHERE j.state = 'queued'
                           OR (j.state = 'retryable' AND coalesce(j.retry_at <= now(), true)))
           AS ready,
       count(*) FILTER (WHERE j.state = 'working') AS in_flight,
       min(CASE WHEN j.state = 'queued' THEN j.updated_at
                WHEN coalesce(j.retry_at <= now(), true)
                THEN coalesce(j.retry_at, j.updated_at) END)
           AS ready_since
FROM {schema}.{table} AS j
WHERE j.state IN ('queued', 'working', 'retryable')
  AND j.stage = ANY(%(stages)s::text[])
GROUP BY j.stage

-- name: listen
LISTEN {channel}

-- name: unlisten
UNLISTEN {channel}
