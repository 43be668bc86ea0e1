"""The policy simulator: replay an arrival trace through a queue model in virtual time.

`backlog-operator simulate` (sim.cli), the benchmark (tests/bench/test_simulator.py)
and ScaleTest `mode: Simulated` (sim.staged) use it. Pure: no I/O outside sim.cli and
sim.plot, no clock reads, no kopf/psycopg/kubernetes (.importlinter enforces it).

Modules: traces (input), service (service-time distributions), engine (the
discrete-event queue), ours (the operator's own policy as a controller), keda (the
KEDA + HPA default model), run (both side by side), results (metrics, table, JSON),
staged (chained stages for ScaleTest), calibrate (sim vs live comparison hook).
"""
