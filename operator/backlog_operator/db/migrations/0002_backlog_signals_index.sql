-- The operator's backlog query (sources/queries.sql: stage_signals) as one index-only scan:
-- ready and in-flight counts per stage, the retryable rows' retry_at filter, and the
-- oldest ready row's age (a queued row became ready at updated_at, a retryable one at
-- retry_at). upload_jobs_active (stage, state) lacks updated_at and retry_at, so the
-- same query through it fetches every active row from the heap. See docs/decisions/0007.
CREATE INDEX upload_jobs_backlog
    ON upload_pipeline.upload_jobs (stage, state, updated_at) INCLUDE (retry_at)
    WHERE state IN ('queued', 'working', 'retryable');
