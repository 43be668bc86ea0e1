-- upload_jobs is a hot queue table: every job transition rewrites its row (state is
-- indexed, so no HOT update) and leaves a dead entry in the partial indexes. With the
-- default trigger (20% of the table: 1M dead rows at 5M jobs) VACUUM rarely runs, and
-- the operator's backlog count (sources/queries.sql) then visits the heap for every page
-- touched since: tests/bench/test_backlog_query.py measured ~0.1 s vacuumed against
-- ~8 s right after all 100k active rows were rewritten. Vacuum after a bounded number of
-- changes instead, whatever the table size. See docs/decisions/0007-signal-hub.md.
ALTER TABLE upload_pipeline.upload_jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
