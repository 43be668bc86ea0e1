"""backlog-operator: size PostgreSQL job-pipeline workers to their backlog; load-test the pipeline."""

__version__ = "0.1.0"
