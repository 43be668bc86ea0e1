-- The scaler's own SQL (drain-aware scale-in). Loaded once by scaler/claims.py;
-- {schema} and {table} come from a BacklogScaler spec and are composed with
-- psycopg.sql.Identifier.

-- name: claims_by_pod
-- In-flight jobs per worker pod, for the pods of one scale target. Any stage counts:
-- a worker may serve several. Uses the partial index upload_jobs_working_claimed_by.
SELECT j.claimed_by, count(*)::int AS claims
FROM {schema}.{table} AS j
WHERE j.state = 'working'
  AND j.claimed_by = ANY(%(pods)s::text[])
GROUP BY j.claimed_by
