-- ScaleTest analysis: figures of one part (baseline or load) of a run, from the pipeline's
-- jobs and events. Loaded by scaletest/sql.py; {schema} is the pipeline schema.
-- A job enters a stage when the previous stage's stage_done is logged (the worker moves
-- it in the same statement) or, for the first stage, when it is created. Queue wait is
-- entry -> first stage_started; latency is entry -> first stage_done; service time is
-- the worker's measured `seconds` in the event detail.

-- name: analysis_work_mem
-- Inside the analysis transaction only.
SET LOCAL work_mem = '128MB'

-- name: stage_figures
-- One row per stage, plus one row with stage NULL over every (job, stage): the run's
-- queue-wait percentiles (GROUPING SETS). The events are grouped per (job, stage) in ONE
-- aggregate and joined to nothing row by row afterwards: row estimates for a run's jobs
-- are poor, and a nested-loop join between two per-(job, stage) sets is quadratic.
WITH jobs AS (
    SELECT job_id, created_at
    FROM {schema}.upload_jobs
    WHERE run_id = %(run_id)s AND payload->>'part' = %(part)s
), per_stage AS (
    SELECT e.job_id, e.stage,
           min(j.created_at) AS job_created,
           min(e.created_at) FILTER (WHERE e.event_type = 'stage_done') AS done_at,
           min(e.created_at) FILTER (WHERE e.event_type = 'stage_started') AS first_started,
           count(*) FILTER (WHERE e.event_type = 'stage_done') AS completions,
           avg((e.detail->>'seconds')::float8) FILTER (WHERE e.event_type = 'stage_done')
               AS service,
           -- every attempt's time, failed ones included: what the stage's workers spent
           coalesce(sum((e.detail->>'seconds')::float8)
                    FILTER (WHERE e.event_type IN ('stage_done', 'retry', 'error')), 0) AS busy
    FROM {schema}.events AS e
    JOIN jobs AS j USING (job_id)
    WHERE e.event_type IN ('stage_started', 'stage_done', 'retry', 'error')
    GROUP BY e.job_id, e.stage
), entered AS (
    SELECT p.stage, p.completions, p.service, p.done_at, p.first_started,
           coalesce(lag(p.done_at) OVER (PARTITION BY p.job_id ORDER BY p.done_at),
                    p.job_created) AS entered_at
    FROM per_stage AS p
    WHERE p.done_at IS NOT NULL
), waits AS (
    SELECT stage, completions, service,
           extract(epoch FROM done_at - entered_at)::float8 AS latency,
           greatest(extract(epoch FROM first_started - entered_at)::float8, 0) AS wait
    FROM entered
), figures AS (
    SELECT stage,
           count(*)::bigint AS completions,
           sum(completions - 1)::bigint AS duplicate_completions,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency) AS latency,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY wait) AS queue_wait,
           coalesce(sum(wait), 0)::float8 AS queue_wait_total,
           percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY service) AS service
    FROM waits
    GROUP BY GROUPING SETS ((stage), ())
), busy AS (
    SELECT stage, sum(busy)::float8 AS service_total FROM per_stage GROUP BY stage
)
SELECT f.stage, f.completions, f.duplicate_completions, f.latency, f.queue_wait,
       f.queue_wait_total, f.service, coalesce(b.service_total, 0)::float8
FROM figures AS f
LEFT JOIN busy AS b ON b.stage = f.stage

-- name: end_to_end
SELECT count(*)::bigint AS jobs,
       count(*) FILTER (WHERE state = 'done')::bigint AS done,
       count(*) FILTER (WHERE state = 'deadletter')::bigint AS deadletter,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at)::float8)
           FILTER (WHERE state = 'done') AS latency,
       min(created_at) AS first_created,
       max(created_at) AS last_created,
       max(finished_at) FILTER (WHERE state IN ('done', 'deadletter')) AS last_finished
FROM {schema}.upload_jobs
WHERE run_id = %(run_id)s AND payload->>'part' = %(part)s

-- name: original_plan_figure
-- The original team's per-stage figure, as they wrote it: AVG(updated_at - created_at)
-- GROUP BY (current) stage. Reported next to the event-based percentiles for comparison.
SELECT stage, avg(extract(epoch FROM updated_at - created_at))::float8
FROM {schema}.upload_jobs
WHERE run_id = %(run_id)s AND payload->>'part' = %(part)s
GROUP BY stage

-- name: scaler_samples
SELECT scaler, sampled_at, desired, current
FROM backlog_operator.scaletest_scaler_samples
WHERE run_id = %(run_id)s
ORDER BY scaler, sampled_at

-- name: store_stage_stats
INSERT INTO backlog_operator.scaletest_stage_stats
    (run_id, part, stage, completions, duplicate_completions, latency_p50, latency_p95,
     latency_p99, queue_wait_p50, queue_wait_p95, queue_wait_total, service_p50, service_p95,
     service_total, avg_updated_minus_created, utilization)
VALUES (%(run_id)s, %(part)s, %(stage)s, %(completions)s, %(duplicate_completions)s,
        %(latency_p50)s, %(latency_p95)s, %(latency_p99)s, %(queue_wait_p50)s,
        %(queue_wait_p95)s, %(queue_wait_total)s, %(service_p50)s, %(service_p95)s,
        %(service_total)s, %(avg_updated_minus_created)s, %(utilization)s)
ON CONFLICT (run_id, part, stage) DO UPDATE SET
    completions = EXCLUDED.completions,
    duplicate_completions = EXCLUDED.duplicate_completions,
    latency_p50 = EXCLUDED.latency_p50, latency_p95 = EXCLUDED.latency_p95,
    latency_p99 = EXCLUDED.latency_p99, queue_wait_p50 = EXCLUDED.queue_wait_p50,
    queue_wait_p95 = EXCLUDED.queue_wait_p95, queue_wait_total = EXCLUDED.queue_wait_total,
    service_p50 = EXCLUDED.service_p50, service_p95 = EXCLUDED.service_p95,
    service_total = EXCLUDED.service_total,
    avg_updated_minus_created = EXCLUDED.avg_updated_minus_created,
    utilization = EXCLUDED.utilization

-- name: store_slo
INSERT INTO backlog_operator.scaletest_slo_results (run_id, name, target, observed, met)
VALUES (%(run_id)s, %(name)s, %(target)s, %(observed)s, %(met)s)
ON CONFLICT (run_id, name) DO UPDATE SET
    target = EXCLUDED.target, observed = EXCLUDED.observed, met = EXCLUDED.met

-- name: store_results
UPDATE backlog_operator.scaletest_runs
SET results = %(results)s, db_profile = %(db_profile)s, updated_at = now()
WHERE run_id = %(run_id)s

-- name: has_pg_stat_statements
SELECT to_regclass('pg_stat_statements') IS NOT NULL
   AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')

-- name: top_statements
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 200) AS query, calls,
       round(total_exec_time::numeric, 1)::float8 AS total_ms,
       round(mean_exec_time::numeric, 3)::float8 AS mean_ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT 5

-- name: connections_by_state
SELECT coalesce(state, 'background'), count(*)::bigint
FROM pg_stat_activity
WHERE datname = current_database()
GROUP BY 1 ORDER BY 1

-- name: lock_waits
SELECT count(*)::bigint FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'

-- name: activity_peaks
-- The worst moments the sampler saw during the run.
SELECT max(lock_waits), max(connections), max(oldest_xact_seconds)
FROM backlog_operator.scaletest_samples
WHERE run_id = %(run_id)s

-- name: table_health
-- Dead tuples and the age of the oldest transaction (running now; and the table's
-- relfrozenxid age in transaction ids) on the jobs table.
SELECT coalesce(t.n_live_tup, 0)::bigint, coalesce(t.n_dead_tup, 0)::bigint,
       t.last_autovacuum,
       age(c.relfrozenxid)::bigint AS relfrozenxid_age,
       (SELECT max(extract(epoch FROM now() - xact_start))::float8
          FROM pg_stat_activity
         WHERE datname = current_database() AND xact_start IS NOT NULL
           AND pid <> pg_backend_pid()) AS oldest_xact_seconds
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables AS t ON t.relid = c.oid
WHERE n.nspname = %(schema_name)s AND c.relname = 'upload_jobs'
