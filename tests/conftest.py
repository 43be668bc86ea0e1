"""Shared pytest wiring: fixtures live in tests/fixtures/, one module per real service."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.cluster",
    "tests.fixtures.crds",
    "tests.fixtures.e2e",
]
