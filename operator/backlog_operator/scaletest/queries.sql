-- ScaleTest's SQL for runs, producers, sampling and cleanup. Loaded once with
-- backlog_operator.db.queries.load; {schema} is the pipeline schema, composed with
-- psycopg.sql.Identifier. The results schema (backlog_operator) is fixed by migration 0020.

-- name: clock
SELECT now()

-- name: create_run
-- Idempotent: a restarted operator re-creates nothing.
INSERT INTO backlog_operator.scaletest_runs
    (run_id, namespace, name, uid, mode, profile, pipeline_schema, spec)
VALUES (%(run_id)s, %(namespace)s, %(name)s, %(uid)s, %(mode)s, %(profile)s, %(schema)s,
        %(spec)s)
ON CONFLICT (run_id) DO NOTHING

-- name: get_run
SELECT run_id, phase, baseline_requested, load_requested, requested_rate, baseline_throughput,
       started_at, baseline_started_at, baseline_finished_at, load_started_at,
       load_finished_at, drain_finished_at, completed_at, verdict, results, cleaned_up_at
FROM backlog_operator.scaletest_runs WHERE run_id = %(run_id)s

-- name: set_phase
UPDATE backlog_operator.scaletest_runs SET phase = %(phase)s, updated_at = now()
WHERE run_id = %(run_id)s

-- name: start_baseline
-- coalesce: entering a phase twice (a restart between the update and the status patch)
-- keeps the first start time and the first total.
UPDATE backlog_operator.scaletest_runs
SET baseline_started_at = coalesce(baseline_started_at, now()),
    baseline_requested = coalesce(baseline_requested, %(requested)s),
    updated_at = now()
WHERE run_id = %(run_id)s

-- name: finish_baseline
UPDATE backlog_operator.scaletest_runs
SET baseline_finished_at = coalesce(baseline_finished_at, now()),
    baseline_throughput = coalesce(baseline_throughput, %(throughput)s),
    updated_at = now()
WHERE run_id = %(run_id)s

-- name: start_load
UPDATE backlog_operator.scaletest_runs
SET load_started_at = coalesce(load_started_at, now()),
    load_requested = coalesce(load_requested, %(requested)s),
    requested_rate = coalesce(requested_rate, %(rate)s),
    updated_at = now()
WHERE run_id = %(run_id)s

-- name: finish_load
UPDATE backlog_operator.scaletest_runs
SET load_finished_at = coalesce(load_finished_at, now()), updated_at = now()
WHERE run_id = %(run_id)s

-- name: finish_drain
UPDATE backlog_operator.scaletest_runs
SET drain_finished_at = coalesce(drain_finished_at, now()), updated_at = now()
WHERE run_id = %(run_id)s

-- name: complete_run
UPDATE backlog_operator.scaletest_runs
SET completed_at = coalesce(completed_at, now()), verdict = %(verdict)s, phase = %(phase)s,
    updated_at = now()
WHERE run_id = %(run_id)s

-- name: seed_producers
INSERT INTO backlog_operator.scaletest_producers (run_id, part, producer)
SELECT %(run_id)s, %(part)s, p FROM generate_series(0, %(producers)s - 1) AS p
ON CONFLICT DO NOTHING

-- name: producer_progress
SELECT produced FROM backlog_operator.scaletest_producers
WHERE run_id = %(run_id)s AND part = %(part)s AND producer = %(producer)s

-- name: produced_total
SELECT coalesce(sum(produced), 0)::bigint FROM backlog_operator.scaletest_producers
WHERE run_id = %(run_id)s AND part = %(part)s

-- name: part_elapsed
-- Seconds since the part began, by the database clock (the clock that stamped it).
SELECT extract(epoch FROM now() - CASE %(part)s WHEN 'baseline' THEN baseline_started_at
                                                 ELSE load_started_at END)::float8
FROM backlog_operator.scaletest_runs WHERE run_id = %(run_id)s

-- name: produce
-- One batch of producer `producer`: documents and their first job, then its progress, in
-- one statement and one transaction. Keys derive from (run, part, seq), so a batch that is
-- replayed after a crash inserts nothing twice. The FK check of the jobs runs at the end
-- of the statement, after the documents CTE inserted their parents.
WITH batch AS (
    SELECT s.seq,
           md5(%(run_id)s || ':' || %(part)s || ':' || s.seq)::uuid AS document_id
    FROM unnest(%(seqs)s::bigint[]) AS s(seq)
), docs AS (
    INSERT INTO {schema}.documents (document_id, filename, content_type, run_id)
    SELECT document_id, 'scaletest-' || %(part)s || '-' || seq || '.pdf', 'application/pdf',
           %(run_id)s
    FROM batch
    ON CONFLICT (document_id) DO NOTHING
), jobs AS (
    INSERT INTO {schema}.upload_jobs (document_id, idempotency_key, payload, run_id)
    SELECT document_id, %(run_id)s || ':' || %(part)s || ':' || seq,
           %(payload)s::jsonb || jsonb_build_object('seq', seq), %(run_id)s
    FROM batch
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING 1
)
UPDATE backlog_operator.scaletest_producers
SET produced = %(produced)s, updated_at = now()
WHERE run_id = %(run_id)s AND part = %(part)s AND producer = %(producer)s
RETURNING (SELECT count(*) FROM jobs)

-- name: part_counts
-- Progress of one part of a run: jobs created, done, deadletter.
SELECT count(*)::bigint AS created,
       count(*) FILTER (WHERE state = 'done')::bigint AS done,
       count(*) FILTER (WHERE state = 'deadletter')::bigint AS deadletter
FROM {schema}.upload_jobs
WHERE run_id = %(run_id)s AND payload->>'part' = %(part)s

-- name: stage_state_counts
-- The sampler's per (stage, state) counts over the run's jobs of one part.
SELECT stage, state, count(*)::bigint
FROM {schema}.upload_jobs
WHERE run_id = %(run_id)s AND payload->>'part' = %(part)s
GROUP BY stage, state

-- name: insert_sample
INSERT INTO backlog_operator.scaletest_samples
    (run_id, sampled_at, phase, produced, completed, deadletter, lock_waits, connections,
     oldest_xact_seconds)
VALUES (%(run_id)s, %(sampled_at)s, %(phase)s, %(produced)s, %(completed)s, %(deadletter)s,
        %(lock_waits)s, %(connections)s, %(oldest_xact_seconds)s)
ON CONFLICT DO NOTHING

-- name: db_activity
-- This database's sessions now: waiting on a lock, connected clients, the oldest open
-- transaction (ours excluded).
SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::integer,
       count(*) FILTER (WHERE backend_type = 'client backend')::integer,
       max(extract(epoch FROM now() - xact_start)::float8)
           FILTER (WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid())
FROM pg_stat_activity
WHERE datname = current_database()

-- name: insert_stage_samples
INSERT INTO backlog_operator.scaletest_stage_samples
    (run_id, sampled_at, stage, ready, in_flight, done)
SELECT %(run_id)s, %(sampled_at)s, s.stage, s.ready, s.in_flight, s.done
FROM unnest(%(stages)s::text[], %(ready)s::bigint[], %(in_flight)s::bigint[],
            %(done)s::bigint[]) AS s(stage, ready, in_flight, done)
ON CONFLICT DO NOTHING

-- name: insert_scaler_samples
INSERT INTO backlog_operator.scaletest_scaler_samples
    (run_id, sampled_at, scaler, desired, current)
SELECT %(run_id)s, %(sampled_at)s, s.scaler, s.desired, s.current
FROM unnest(%(scalers)s::text[], %(desired)s::integer[], %(current)s::integer[])
    AS s(scaler, desired, current)
ON CONFLICT DO NOTHING

-- name: delete_run_jobs
-- Cleanup: the run's synthetic documents; their jobs go by ON DELETE CASCADE.
-- Results rows (backlog_operator.*) stay.
WITH gone AS (
    DELETE FROM {schema}.documents WHERE run_id = %(run_id)s RETURNING 1
)
SELECT count(*)::bigint FROM gone

-- name: mark_cleaned
UPDATE backlog_operator.scaletest_runs SET cleaned_up_at = now(), updated_at = now()
WHERE run_id = %(run_id)s
