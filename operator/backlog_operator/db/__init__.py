"""Database schema for the upload pipeline and the operator: migrations, named queries, CLI."""
