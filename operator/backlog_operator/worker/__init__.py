"""The reference worker: `BaseWorker` (base.py) claims jobs of some stages in batches,
runs one handler per stage (simulated by default, simulate.py), and advances them,
under leases with fencing (store.py, queries.sql). `backlog-operator worker` (cli.py)
runs it; docs/decisions/0004-claims-leases-fencing.md explains the choices.
"""
