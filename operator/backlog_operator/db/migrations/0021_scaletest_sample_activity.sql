-- ScaleTest samples also record the database's activity at each tick, so the run's
-- database profile can report the worst moment (lock waits, connections, the oldest open
-- transaction) and not only a snapshot taken after the load. Written by
-- scaletest/sampler.py; read by scaletest/analysis.py. See docs/decisions/0024.
ALTER TABLE backlog_operator.scaletest_samples
    ADD COLUMN lock_waits integer,
    ADD COLUMN connections integer,
    ADD COLUMN oldest_xact_seconds double precision;
