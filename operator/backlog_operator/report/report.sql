-- `backlog-operator report`: a recorded ScaleTest run, read back from the results tables
-- (migration 0020). Loaded by report/sql.py; {schema} is the run's pipeline schema.

-- name: find_run
-- RUN is a run id, or a ScaleTest name (its latest run).
SELECT run_id, namespace, name, mode, profile, pipeline_schema, spec, phase, verdict,
       requested_rate, baseline_throughput, baseline_requested, load_requested,
       started_at, baseline_started_at, baseline_finished_at, load_started_at,
       load_finished_at, drain_finished_at, completed_at, cleaned_up_at, results, db_profile
FROM backlog_operator.scaletest_runs
WHERE run_id = %(run)s OR name = %(run)s
ORDER BY (run_id = %(run)s) DESC, started_at DESC
LIMIT 1

-- name: stage_stats
SELECT part, stage, completions, duplicate_completions, latency_p50, latency_p95, latency_p99,
       queue_wait_p50, queue_wait_p95, queue_wait_total, service_p50, service_p95,
       service_total, avg_updated_minus_created, utilization
FROM backlog_operator.scaletest_stage_stats
WHERE run_id = %(run_id)s

-- name: slo_results
SELECT name, target, observed, met
FROM backlog_operator.scaletest_slo_results
WHERE run_id = %(run_id)s
ORDER BY name

-- name: samples
SELECT extract(epoch FROM sampled_at - %(origin)s)::float8, phase, produced, completed, deadletter
FROM backlog_operator.scaletest_samples
WHERE run_id = %(run_id)s
ORDER BY sampled_at

-- name: stage_samples
SELECT extract(epoch FROM sampled_at - %(origin)s)::float8, stage, ready, in_flight, done
FROM backlog_operator.scaletest_stage_samples
WHERE run_id = %(run_id)s
ORDER BY sampled_at, stage

-- name: scaler_samples
SELECT extract(epoch FROM sampled_at - %(origin)s)::float8, scaler, desired, current
FROM backlog_operator.scaletest_scaler_samples
WHERE run_id = %(run_id)s
ORDER BY sampled_at, scaler

-- name: latency_series_jobs
-- End-to-end latency percentiles of the load's jobs, by the time bucket they finished in.
SELECT floor(extract(epoch FROM finished_at - %(origin)s) / %(bucket_s)s)::float8 * %(bucket_s)s,
       count(*)::bigint,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at)::float8)
FROM {schema}.upload_jobs
WHERE run_id = %(run_id)s AND payload->>'part' = 'load' AND state = 'done'
GROUP BY 1
ORDER BY 1

-- name: latency_series_events
-- When the run's jobs were cleaned up, the events remain (they have no foreign key):
-- a job's first claim to its finalized event, for jobs finalized within the load and drain.
-- Slightly optimistic (the first queue wait is not in it); the report says so.
WITH fin AS (
    SELECT job_id, created_at AS done_at
    FROM {schema}.events
    WHERE event_type = 'finalized' AND detail->>'state' = 'done'
      AND created_at BETWEEN %(origin)s AND %(until)s
), first AS (
    SELECT e.job_id, min(e.created_at) AS began
    FROM {schema}.events AS e JOIN fin USING (job_id)
    GROUP BY e.job_id
)
SELECT floor(extract(epoch FROM fin.done_at - %(origin)s) / %(bucket_s)s)::float8 * %(bucket_s)s,
       count(*)::bigint,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM fin.done_at - first.began)::float8)
FROM fin JOIN first USING (job_id)
GROUP BY 1
ORDER BY 1
