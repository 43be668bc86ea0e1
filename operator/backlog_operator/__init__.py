"""backlog-operator: scale PostgreSQL job-pipeline workers to their backlog, and load-test the pipeline."""

__version__ = "0.1.0"
