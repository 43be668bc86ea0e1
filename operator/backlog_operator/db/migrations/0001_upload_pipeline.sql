-- The upload pipeline: documents, their jobs moving through 11 stages, and events.
-- Mirrors backlog_operator/pipeline.py (STAGES, STATES, EVENT_TYPES, ready_channel).
CREATE SCHEMA IF NOT EXISTS upload_pipeline;

CREATE FUNCTION upload_pipeline.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE upload_pipeline.documents (
    document_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    filename     text NOT NULL,
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size_bytes   bigint NOT NULL DEFAULT 0 CONSTRAINT documents_size_bytes_check CHECK (size_bytes >= 0),
    run_id       text,  -- ScaleTest tags its synthetic documents so it can find and remove them
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_run_id_idx ON upload_pipeline.documents (run_id) WHERE run_id IS NOT NULL;

-- Only when the caller did not set updated_at itself (so imports can keep historical times).
CREATE TRIGGER documents_touch_updated_at
    BEFORE UPDATE ON upload_pipeline.documents
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION upload_pipeline.touch_updated_at();

CREATE TABLE upload_pipeline.upload_jobs (
    job_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id      uuid NOT NULL REFERENCES upload_pipeline.documents (document_id) ON DELETE CASCADE,
    stage            text NOT NULL DEFAULT 'queued' CONSTRAINT upload_jobs_stage_check CHECK (stage IN (
                         'queued', 'job_validated', 'parsing', 'parsed', 'parse_validated',
                         'chunking', 'chunks_buffered', 'chunked', 'embedding',
                         'embeddings_buffered', 'embedded')),
    state            text NOT NULL DEFAULT 'queued' CONSTRAINT upload_jobs_state_check CHECK (state IN (
                         'queued', 'working', 'retryable', 'done', 'deadletter')),
    retry_count      integer NOT NULL DEFAULT 0 CONSTRAINT upload_jobs_retry_count_check CHECK (retry_count >= 0),
    retry_at         timestamptz,
    idempotency_key  text CONSTRAINT upload_jobs_idempotency_key_key UNIQUE,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_error       jsonb,
    claimed_by       text,
    claimed_at       timestamptz,
    lease_expires_at timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    run_id           text
);

-- One active job per (document, stage): a retry or a duplicate producer cannot fork a document.
CREATE UNIQUE INDEX upload_jobs_one_active_per_stage
    ON upload_pipeline.upload_jobs (document_id, stage)
    WHERE state IN ('queued', 'working', 'retryable');

-- Claiming: oldest ready rows of a stage. INCLUDE lets ready counts and the oldest-ready
-- age run as index-only scans that still filter retryable rows on retry_at.
CREATE INDEX upload_jobs_ready
    ON upload_pipeline.upload_jobs (stage, created_at) INCLUDE (state, retry_at)
    WHERE state IN ('queued', 'retryable');

-- Backlog counts per (stage, state) over active rows only: stays small as done rows pile up.
CREATE INDEX upload_jobs_active
    ON upload_pipeline.upload_jobs (stage, state)
    WHERE state IN ('queued', 'working', 'retryable');

-- Who holds what: drain-aware scale-in asks which workers are busy; the reaper finds expired leases.
CREATE INDEX upload_jobs_working_claimed_by
    ON upload_pipeline.upload_jobs (claimed_by) WHERE state = 'working';
CREATE INDEX upload_jobs_working_lease
    ON upload_pipeline.upload_jobs (lease_expires_at) WHERE state = 'working';

-- ON DELETE CASCADE from documents and per-document lookups need this (the unique index
-- above covers active rows only).
CREATE INDEX upload_jobs_document_id ON upload_pipeline.upload_jobs (document_id);
CREATE INDEX upload_jobs_run_id ON upload_pipeline.upload_jobs (run_id) WHERE run_id IS NOT NULL;

CREATE TRIGGER upload_jobs_touch_updated_at
    BEFORE UPDATE ON upload_pipeline.upload_jobs
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION upload_pipeline.touch_updated_at();

-- Wake listeners when a job becomes ready. Row-level, but NOTIFY folds identical
-- (channel, payload) pairs within a transaction, so a bulk insert sends one per stage.
CREATE FUNCTION upload_pipeline.notify_job_ready() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('upload_pipeline_jobs_ready', NEW.stage);
    RETURN NULL;
END;
$$;

-- WHEN clauses keep the claim (queued -> working) and finishing updates from calling plpgsql.
CREATE TRIGGER upload_jobs_notify_ready_insert
    AFTER INSERT ON upload_pipeline.upload_jobs
    FOR EACH ROW WHEN (NEW.state IN ('queued', 'retryable'))
    EXECUTE FUNCTION upload_pipeline.notify_job_ready();

CREATE TRIGGER upload_jobs_notify_ready_update
    AFTER UPDATE OF state, stage ON upload_pipeline.upload_jobs
    FOR EACH ROW WHEN (
        NEW.state IN ('queued', 'retryable')
        AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.stage IS DISTINCT FROM NEW.stage))
    EXECUTE FUNCTION upload_pipeline.notify_job_ready();

CREATE TABLE upload_pipeline.events (
    event_id    bigserial PRIMARY KEY,
    job_id      uuid,  -- no foreign key: events outlive the jobs they describe
    document_id uuid,
    stage       text,
    event_type  text NOT NULL CONSTRAINT events_event_type_check CHECK (event_type IN (
                    'stage_started', 'stage_done', 'retry', 'error', 'finalized')),
    worker      text,
    detail      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_at ON upload_pipeline.events (created_at);
CREATE INDEX events_job_id ON upload_pipeline.events (job_id);
