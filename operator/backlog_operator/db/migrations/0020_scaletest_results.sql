-- ScaleTest results: one row per run, its producers' progress, samples taken during the
-- run, per-stage statistics and SLO verdicts. Written by backlog_operator/scaletest/
-- (queries in scaletest/queries.sql). Results outlive the ScaleTest resource and the
-- run's synthetic jobs; rows of a run go only when the run row is deleted (CASCADE).
-- Numbered 0020 to stay clear of the pipeline migrations (0001-0019). See docs/decisions/0021.
CREATE SCHEMA IF NOT EXISTS backlog_operator;

CREATE TABLE backlog_operator.scaletest_runs (
    run_id            text PRIMARY KEY,
    namespace         text NOT NULL,
    name              text NOT NULL,
    uid               text,
    mode              text NOT NULL,
    profile           text NOT NULL,
    pipeline_schema   text NOT NULL DEFAULT 'upload_pipeline',
    spec              jsonb NOT NULL,
    phase             text NOT NULL DEFAULT 'Pending',
    -- jobs the schedule asks for, per part; fixed when the part starts, so a restart
    -- resumes towards the same total.
    baseline_requested bigint,
    load_requested     bigint,
    requested_rate     double precision,
    baseline_throughput double precision,
    started_at         timestamptz NOT NULL DEFAULT now(),
    baseline_started_at timestamptz,
    baseline_finished_at timestamptz,
    load_started_at    timestamptz,
    load_finished_at   timestamptz,
    drain_finished_at  timestamptz,
    completed_at       timestamptz,
    verdict            text CONSTRAINT scaletest_runs_verdict_check CHECK (verdict IN ('Passed', 'Failed')),
    results            jsonb,
    db_profile         jsonb,
    cleaned_up_at      timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scaletest_runs_resource ON backlog_operator.scaletest_runs (namespace, name);

-- Producer i of P owns the sequence numbers seq with seq % P = i; `produced` moves in the
-- same transaction as its inserts, so a restarted producer resumes exactly where it was.
CREATE TABLE backlog_operator.scaletest_producers (
    run_id    text NOT NULL REFERENCES backlog_operator.scaletest_runs (run_id) ON DELETE CASCADE,
    part      text NOT NULL CONSTRAINT scaletest_producers_part_check CHECK (part IN ('baseline', 'load')),
    producer  integer NOT NULL,
    produced  bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, part, producer)
);

-- One row per sample tick: run-wide counts.
CREATE TABLE backlog_operator.scaletest_samples (
    run_id     text NOT NULL REFERENCES backlog_operator.scaletest_runs (run_id) ON DELETE CASCADE,
    sampled_at timestamptz NOT NULL,
    phase      text NOT NULL,
    produced   bigint NOT NULL,
    completed  bigint NOT NULL,
    deadletter bigint NOT NULL,
    PRIMARY KEY (run_id, sampled_at)
);

-- Per stage at each tick: ready, in flight, and done (jobs that have left the stage).
CREATE TABLE backlog_operator.scaletest_stage_samples (
    run_id     text NOT NULL,
    sampled_at timestamptz NOT NULL,
    stage      text NOT NULL,
    ready      bigint NOT NULL,
    in_flight  bigint NOT NULL,
    done       bigint NOT NULL,
    PRIMARY KEY (run_id, sampled_at, stage),
    FOREIGN KEY (run_id, sampled_at)
        REFERENCES backlog_operator.scaletest_samples (run_id, sampled_at) ON DELETE CASCADE
);

-- Per scaler at each tick, from the BacklogScaler's status.
CREATE TABLE backlog_operator.scaletest_scaler_samples (
    run_id     text NOT NULL,
    sampled_at timestamptz NOT NULL,
    scaler     text NOT NULL,
    desired    integer,
    current    integer,
    PRIMARY KEY (run_id, sampled_at, scaler),
    FOREIGN KEY (run_id, sampled_at)
        REFERENCES backlog_operator.scaletest_samples (run_id, sampled_at) ON DELETE CASCADE
);

-- Per stage figures of a run part (baseline or load), computed from upload_pipeline.events.
CREATE TABLE backlog_operator.scaletest_stage_stats (
    run_id              text NOT NULL REFERENCES backlog_operator.scaletest_runs (run_id) ON DELETE CASCADE,
    part                text NOT NULL CONSTRAINT scaletest_stage_stats_part_check CHECK (part IN ('baseline', 'load')),
    stage               text NOT NULL,
    completions         bigint NOT NULL,
    duplicate_completions bigint NOT NULL DEFAULT 0,
    latency_p50         double precision,
    latency_p95         double precision,
    latency_p99         double precision,
    queue_wait_p50      double precision,
    queue_wait_p95      double precision,
    queue_wait_total    double precision,
    service_p50         double precision,
    service_p95         double precision,
    service_total       double precision,
    -- the original plan's figure: AVG(updated_at - created_at) over the part's jobs at this stage
    avg_updated_minus_created double precision,
    utilization         double precision,
    PRIMARY KEY (run_id, part, stage)
);

CREATE TABLE backlog_operator.scaletest_slo_results (
    run_id   text NOT NULL REFERENCES backlog_operator.scaletest_runs (run_id) ON DELETE CASCADE,
    name     text NOT NULL,
    target   double precision NOT NULL,
    observed double precision,
    met      boolean NOT NULL,
    PRIMARY KEY (run_id, name)
);
