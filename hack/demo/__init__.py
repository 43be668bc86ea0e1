"""`make demo`: the main job end to end on a throw-away local cluster and PostgreSQL.

`python -m demo [run|down]` (hack/ on PYTHONPATH, as the Makefile sets it).
Modules: setup.py (PostgreSQL, cluster, CRDs, RBAC, operator), deploy.py (the
worker pools, BacklogScalers and the ScaleTest from manifests/), progress.py
(live display), run.py (the steps, timings, results, report and teardown).
Environment: KEEP=1 keeps everything running; DEMO_PROFILE=short runs the short
load the e2e test uses; DEMO_OUT sets the reports folder (default reports/);
DEMO_STATE the state folder (default .local/demo/).
"""
