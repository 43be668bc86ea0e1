"""PostgreSQL -> Signals for the BacklogScalers.

Entry point: `hub.SignalHubs` (one per operator process). A scaler subscribes with a
`subscriber.Subscription` and reads `subscriber.Reading`s. Modules: pool (one pool per
DSN), queries (+ queries.sql), flow (pure rate arithmetic), listener (LISTEN/NOTIFY),
hub (ticks and fan-out), dsn (scrubbing). See docs/decisions/0007-signal-hub.md.
"""
