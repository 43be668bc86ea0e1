-- Replaces 0002's upload_jobs_backlog. Measured on 5M jobs / 100k active
-- (tests/bench/test_backlog_query.py): a (stage, state, updated_at) index cannot
-- deduplicate, so counting through it reads every tuple of a ~6 MB index, while 0001's
-- upload_jobs_active (stage, state) packs the same 100k rows into posting lists under
-- 1 MB and counts several times faster. The operator's query now counts through
-- upload_jobs_active and needs only two small probes, served by these indexes:
-- - the oldest queued row of a stage (ORDER BY updated_at LIMIT 1);
-- - retryable rows whose retry_at is still ahead (a range scan), and the oldest due one.
-- See docs/decisions/0007-signal-hub.md.
DROP INDEX IF EXISTS upload_pipeline.upload_jobs_backlog;

CREATE INDEX upload_jobs_queued_since
    ON upload_pipeline.upload_jobs (stage, updated_at)
    WHERE state = 'queued';

CREATE INDEX upload_jobs_retry_due
    ON upload_pipeline.upload_jobs (stage, retry_at)
    WHERE state = 'retryable';
