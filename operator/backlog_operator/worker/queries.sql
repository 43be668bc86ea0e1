-- The reference worker's SQL. Loaded once by worker/store.py with
-- backlog_operator.db.queries.load; {schema} is composed with psycopg.sql.Identifier.
-- Fencing: every write that finishes a claim matches (job_id, claimed_at, claimed_by,
-- state = 'working'); claimed_at is the claim's token (see docs/decisions/0004).

-- name: check_schema
SELECT to_regclass(format('%%I.upload_jobs', %(schema)s::text)) IS NOT NULL
   AND to_regclass(format('%%I.events', %(schema)s::text)) IS NOT NULL AS present

-- name: claim
-- One statement: pick up to `limit` ready rows of the worker's stages (earlier array
-- entries first, oldest first within a stage, via the upload_jobs_ready index), lock them
-- with SKIP LOCKED, mark them working under a lease, and log stage_started.
WITH picked AS (
    SELECT ready.job_id
    FROM unnest(%(stages)s::text[]) AS wanted(stage)
    CROSS JOIN LATERAL (
        SELECT j.job_id
        FROM {schema}.upload_jobs AS j
        WHERE j.stage = wanted.stage
          AND j.state IN ('queued', 'retryable')
          AND (j.state = 'queued' OR j.retry_at <= now())
        ORDER BY j.created_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS ready
    LIMIT %(limit)s
), claimed AS (
    UPDATE {schema}.upload_jobs AS j
    SET state = 'working',
        claimed_by = %(worker)s,
        claimed_at = now(),
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
        started_at = coalesce(j.started_at, now()),
        updated_at = now()
    -- ANY(ARRAY(...)): primary-key probes; a join here gets planned as a hash over the table
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM picked))
    RETURNING j.job_id, j.document_id, j.stage, j.retry_count, j.payload, j.claimed_at
), started AS (
    INSERT INTO {schema}.events (job_id, document_id, stage, event_type, worker, detail)
    SELECT c.job_id, c.document_id, c.stage, 'stage_started', %(worker)s,
           jsonb_build_object('attempt', c.retry_count + 1)
    FROM claimed AS c
)
-- Text columns: ids and the token go back into the next statements as joined strings.
SELECT job_id::text, document_id::text, stage, retry_count, payload::text, claimed_at::text
FROM claimed

-- name: complete
-- A batch of finished claims in one statement: advance (next stage, queued; or done),
-- retry (same stage, retryable after a delay) or deadletter, fenced on the claim token,
-- and log stage_done / retry / error plus finalized for terminal states.
WITH batch AS (
    SELECT *
    -- Arrays arrive as comma-joined text (cheap to build in Python; '' means NULL);
    -- errors as one jsonb object keyed by job id, holding the failed jobs only.
    FROM unnest(
        string_to_array(%(job_ids)s, ',')::uuid[],
        string_to_array(%(tokens)s, ',')::timestamptz[],
        string_to_array(%(stages)s, ','),
        string_to_array(%(next_stages)s, ','),
        string_to_array(%(next_states)s, ','),
        string_to_array(%(retry_counts)s, ',')::integer[],
        string_to_array(%(delays)s, ',', '')::float8[],
        string_to_array(%(seconds)s, ',', '')::float8[]
    ) AS b(job_id, token, stage, next_stage, next_state, retry_count, delay, seconds)
    ORDER BY b.job_id  -- a fixed lock order
), moved AS (
    UPDATE {schema}.upload_jobs AS j
    SET stage = b.next_stage,
        state = b.next_state,
        retry_count = b.retry_count,
        retry_at = now() + make_interval(secs => b.delay),
        last_error = coalesce(%(errors)s::jsonb -> b.job_id::text, j.last_error),
        claimed_by = NULL,
        claimed_at = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN b.next_state IN ('done', 'deadletter') THEN now() END,
        updated_at = now()
    FROM batch AS b
    WHERE j.job_id = b.job_id
      AND j.state = 'working'
      AND j.claimed_by = %(worker)s
      AND j.claimed_at = b.token
      AND j.stage = b.stage
    RETURNING j.job_id, j.document_id, b.stage, b.next_state, b.retry_count, b.seconds,
              %(errors)s::jsonb -> b.job_id::text AS error
), logged AS (
    INSERT INTO {schema}.events (job_id, document_id, stage, event_type, worker, detail)
    SELECT m.job_id, m.document_id, m.stage, e.event_type, %(worker)s, e.detail
    FROM moved AS m
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN m.next_state IN ('queued', 'done') THEN 'stage_done'
              WHEN m.next_state = 'retryable' THEN 'retry'
              ELSE 'error' END,
         CASE WHEN m.error IS NULL THEN jsonb_build_object('seconds', m.seconds)
              ELSE jsonb_build_object(
                  'seconds', m.seconds, 'retry_count', m.retry_count, 'error', m.error) END),
        ('finalized', jsonb_build_object('state', m.next_state))
    ) AS e(event_type, detail)
    WHERE e.event_type <> 'finalized' OR m.next_state IN ('done', 'deadletter')
)
SELECT job_id::text FROM moved

-- name: heartbeat
-- Extend the leases of claims this worker still holds. SKIP LOCKED: a row being completed
-- right now by this worker's other connection needs no extension (and must not deadlock).
WITH mine AS (
    SELECT j.job_id
    FROM {schema}.upload_jobs AS j
    JOIN unnest(
        string_to_array(%(job_ids)s, ',')::uuid[], string_to_array(%(tokens)s, ',')::timestamptz[]
    ) AS b(job_id, token) ON j.job_id = b.job_id AND j.claimed_at = b.token
    WHERE j.state = 'working' AND j.claimed_by = %(worker)s
    ORDER BY j.job_id
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE {schema}.upload_jobs AS j
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM mine
WHERE j.job_id = mine.job_id
RETURNING j.job_id::text

-- name: reap
-- Expired leases back to retryable (or deadletter past max_retries). SKIP LOCKED makes it
-- safe to run from every worker at once: each expired row is reaped by exactly one.
WITH expired AS (
    SELECT job_id
    FROM {schema}.upload_jobs
    WHERE state = 'working' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE {schema}.upload_jobs AS j
    SET state = CASE WHEN j.retry_count + 1 > %(max_retries)s THEN 'deadletter' ELSE 'retryable' END,
        retry_count = j.retry_count + 1,
        retry_at = now(),
        last_error = jsonb_build_object(
            'type', 'LeaseExpired',
            'message', 'lease expired before the job was completed',
            'worker', j.claimed_by,
            'lease_expires_at', j.lease_expires_at,
            'reaped_by', %(worker)s::text),
        claimed_by = NULL,
        claimed_at = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN j.retry_count + 1 > %(max_retries)s THEN now() END,
        updated_at = now()
    FROM expired
    WHERE j.job_id = expired.job_id
    RETURNING j.job_id, j.document_id, j.stage, j.state, j.retry_count, j.last_error
), logged AS (
    INSERT INTO {schema}.events (job_id, document_id, stage, event_type, worker, detail)
    SELECT r.job_id, r.document_id, r.stage, e.event_type, %(worker)s, e.detail
    FROM reaped AS r
    CROSS JOIN LATERAL (VALUES
        (CASE r.state WHEN 'retryable' THEN 'retry' ELSE 'error' END,
         jsonb_build_object('retry_count', r.retry_count, 'error', r.last_error)),
        ('finalized', jsonb_build_object('state', r.state))
    ) AS e(event_type, detail)
    WHERE e.event_type <> 'finalized' OR r.state = 'deadletter'
)
SELECT job_id::text, stage, state FROM reaped

-- name: release
-- Drain: hand unfinished claims straight back to the queue (no retry counted).
UPDATE {schema}.upload_jobs AS j
SET state = 'queued',
    claimed_by = NULL,
    claimed_at = NULL,
    lease_expires_at = NULL,
    updated_at = now()
FROM unnest(
    string_to_array(%(job_ids)s, ',')::uuid[], string_to_array(%(tokens)s, ',')::timestamptz[]
) AS b(job_id, token)
WHERE j.job_id = b.job_id
  AND j.claimed_at = b.token
  AND j.claimed_by = %(worker)s
  AND j.state = 'working'
RETURNING j.job_id::text
