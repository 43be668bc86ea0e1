"""Development tools: a local Kubernetes control plane with a process node, and PostgreSQL.

Entry points: `python -m devcluster up|down|status|db-up|db-down` (the Makefile's
cluster-* and db-* targets) and the pytest fixtures in tests/fixtures/. Not part
of the operator's runtime package.
"""
