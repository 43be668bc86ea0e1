"""The BacklogScaler CRD's schema defaults equal the parser's SCHEMA_DEFAULTS, both ways.

Pure: reads api/crds/backlogscalers.yaml; the integration test checks the same on a real
API server. A default added on one side only fails here.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import yaml

from backlog_operator import pipeline
from backlog_operator.api import backlogscaler


def _crd() -> dict[str, Any]:
    path = importlib.resources.files("backlog_operator.api").joinpath("crds/backlogscalers.yaml")
    return yaml.safe_load(path.read_text())


def _spec_schema() -> dict[str, Any]:
    (version,) = _crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _leaf_defaults(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> default, for every property with a non-object default."""
    found: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "default" in prop and prop["default"] != {}:
            found[path] = prop["default"]
        found.update(_leaf_defaults(prop, f"{path}."))
    return found


def test_crd_defaults_equal_parser_defaults() -> None:
    crd = _leaf_defaults(_spec_schema())
    assert crd == dict(backlogscaler.SCHEMA_DEFAULTS)


def test_optional_sections_default_to_objects_so_their_fields_default() -> None:
    spec = _spec_schema()["properties"]
    for section in ("policy", "behavior", "fallback"):
        assert spec[section]["default"] == {}, section
    for direction in ("scaleUp", "scaleDown"):
        assert spec["behavior"]["properties"][direction]["default"] == {}


def test_stage_enums_are_the_pipeline_stages() -> None:
    spec = _spec_schema()["properties"]
    stages = spec["source"]["properties"]["stages"]["items"]["enum"]
    upstream = spec["policy"]["properties"]["upstreamStages"]["items"]["enum"]
    assert tuple(stages) == tuple(upstream) == pipeline.STAGES


def test_every_status_field_is_declared() -> None:
    (version,) = _crd()["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for name in (
        "observedGeneration", "desiredReplicas", "currentReplicas", "lastScaleTime", "backlog",
        "arrivalRatePerSecond", "completionRatePerSecond", "serviceTimeSeconds", "conditions",
        "lastError", "fallback",
    ):  # fmt: skip
        assert name in status, name
    condition = status["conditions"]["items"]["properties"]
    assert set(condition) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration",
    }  # fmt: skip
