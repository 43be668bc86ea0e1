"""Build a `KedaConfig` from a ScaledObject-like mapping (`--compare FILE.yaml`).

Called by sim.cli. Pure: takes the parsed YAML. Understands the fields the model uses:
spec.pollingInterval, cooldownPeriod, minReplicaCount, maxReplicaCount,
advanced.horizontalPodAutoscalerConfig.behavior (HPA shape, parsed by the BacklogScaler
parser since the shape is the same) and the first trigger's targetQueryValue and
activationTargetQueryValue. Errors are ValueErrors naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backlog_operator.api import backlogscaler
from backlog_operator.policy.types import Behavior
from backlog_operator.sim.keda import KedaConfig

_BEHAVIOR = "spec.advanced.horizontalPodAutoscalerConfig.behavior"


def _int(spec: Mapping[str, Any], key: str, default: int, low: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"spec.{key}: must be an integer >= {low}, got {value!r}")
    return value


def _number(meta: Mapping[str, Any], key: str, path: str, default: float | None) -> float:
    value = meta.get(key, default)
    if value is None:
        raise ValueError(f"{path}.{key}: required")
    try:
        number = float(value)  # KEDA trigger metadata values are strings
    except (TypeError, ValueError):
        raise ValueError(f"{path}.{key}: must be a number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{path}.{key}: must be >= 0, got {value!r}")
    return number


def parse_scaled_object(obj: Mapping[str, Any]) -> KedaConfig:
    """A ScaledObject (kind ScaledObject with a spec, or a bare spec) -> KedaConfig."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a ScaledObject mapping, got {type(obj).__name__}")
    if "kind" in obj and obj["kind"] != "ScaledObject":
        raise ValueError(f"kind: expected ScaledObject, got {obj['kind']!r}")
    spec = obj.get("spec", obj)
    if not isinstance(spec, Mapping):
        raise ValueError("spec: must be a mapping")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers or not isinstance(triggers[0], Mapping):
        raise ValueError("spec.triggers: needs one trigger with metadata.targetQueryValue")
    meta = triggers[0].get("metadata", {})
    if not isinstance(meta, Mapping):
        raise ValueError("spec.triggers[0].metadata: must be a mapping")
    path = "spec.triggers[0].metadata"
    target = _number(meta, "targetQueryValue", path, None)
    if target <= 0:
        raise ValueError(f"{path}.targetQueryValue: must be > 0")
    low = _int(spec, "minReplicaCount", 0, 0)
    high = _int(spec, "maxReplicaCount", 100, 1)
    if low > high:
        raise ValueError(f"spec.minReplicaCount: must be at most maxReplicaCount ({low} > {high})")
    advanced = spec.get("advanced") or {}
    hpa = (
        advanced.get("horizontalPodAutoscalerConfig") or {} if isinstance(advanced, Mapping) else {}
    )
    behavior_spec = hpa.get("behavior") if isinstance(hpa, Mapping) else None
    defaults = KedaConfig()
    scale_up, scale_down = defaults.scale_up, defaults.scale_down
    if behavior_spec is not None:
        try:
            # HPA's defaults for omitted fields, not the BacklogScaler's (they differ).
            behavior = backlogscaler.parse_behavior(
                behavior_spec, Behavior(defaults.scale_up, defaults.scale_down)
            )
        except ValueError as error:
            raise ValueError(str(error).replace("spec.behavior", _BEHAVIOR)) from None
        scale_up, scale_down = behavior.scale_up, behavior.scale_down
    return KedaConfig(
        target_value=target,
        activation_value=_number(meta, "activationTargetQueryValue", path, 0.0),
        polling_interval_s=float(_int(spec, "pollingInterval", 30, 1)),
        cooldown_s=float(_int(spec, "cooldownPeriod", 300, 0)),
        min_replicas=low,
        max_replicas=high,
        scale_up=scale_up,
        scale_down=scale_down,
    )
