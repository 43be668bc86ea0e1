-- `backlog-operator stats`: the pipeline per stage, now. Loaded by report/sql.py;
-- {schema} is the pipeline schema, composed with psycopg.sql.Identifier.

-- name: stage_table
-- One row per stage that has active jobs or activity in the last hour.
-- - ready / in flight: active rows only (the upload_jobs_active partial index);
--   a retryable row is ready once its retry_at has passed.
-- - done_1h: stage_done events of the last hour (events_created_at).
-- - avg_updated_minus_created: the original plan's figure, as they wrote it:
--   AVG(updated_at - created_at) GROUP BY stage over jobs created in the last hour.
-- - in-stage time p50/p95: a stage_done minus the job's previous stage_done (or the
--   job's creation for its first stage); service p95 is the worker's measured seconds.
WITH active AS (
    SELECT stage,
           count(*) FILTER (WHERE state = 'queued'
                            OR (state = 'retryable' AND coalesce(retry_at <= now(), true)))
               AS ready,
           count(*) FILTER (WHERE state = 'working') AS in_flight
    FROM {schema}.upload_jobs
    WHERE state IN ('queued', 'working', 'retryable')
    GROUP BY stage
), original AS (
    SELECT stage, avg(extract(epoch FROM updated_at - created_at))::float8 AS avg_s
    FROM {schema}.upload_jobs
    WHERE created_at > now() - interval '1 hour'
    GROUP BY stage
), done AS (
    SELECT e.stage, e.job_id, e.created_at, (e.detail ->> 'seconds')::float8 AS service_s
    FROM {schema}.events AS e
    WHERE e.event_type = 'stage_done' AND e.created_at > now() - interval '1 hour'
), timed AS (
    SELECT d.stage, d.service_s,
           extract(epoch FROM d.created_at - coalesce(prev.at, j.created_at))::float8 AS in_stage_s
    FROM done AS d
    LEFT JOIN {schema}.upload_jobs AS j ON j.job_id = d.job_id
    LEFT JOIN LATERAL (
        SELECT max(p.created_at) AS at
        FROM {schema}.events AS p
        WHERE p.job_id = d.job_id AND p.event_type = 'stage_done' AND p.created_at < d.created_at
    ) AS prev ON true
), flow AS (
    SELECT stage, count(*) AS done_1h,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY in_stage_s) AS in_stage_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY in_stage_s) AS in_stage_p95,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY service_s) AS service_p95
    FROM timed
    GROUP BY stage
), stages AS (
    SELECT stage FROM active UNION SELECT stage FROM original UNION SELECT stage FROM flow
)
SELECT s.stage,
       coalesce(a.ready, 0)::bigint AS ready,
       coalesce(a.in_flight, 0)::bigint AS in_flight,
       coalesce(f.done_1h, 0)::bigint AS done_1h,
       o.avg_s AS avg_updated_minus_created,
       f.in_stage_p50, f.in_stage_p95, f.service_p95
FROM stages AS s
LEFT JOIN active AS a USING (stage)
LEFT JOIN original AS o USING (stage)
LEFT JOIN flow AS f USING (stage)
