"""See the results: `stats`, `doctor` and `report` subcommands, and the demo's live display.

Loaded lazily by backlog_operator.cli. matplotlib and rich come from the optional
`report` extra: modules here import them inside functions, never at import time,
so the operator image (without the extra) can still run `stats` and `doctor`.
"""
