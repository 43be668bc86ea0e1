"""backlog-operator: PostgreSQL backlog autoscaler and pipeline load tests."""

__version__ = "0.1.0"
