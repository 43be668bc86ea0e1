"""BacklogScaler spec parsing: a spec dict (from the API server or a YAML file) -> typed values.

Pure: no I/O. The operator's handlers call `parse_backlogscaler` (or `parse_spec` for
the policy part only); the simulator reads BacklogScaler YAML files through
`parse_manifest`. Defaults and bounds mirror the CRD (api/crds/backlogscalers.yaml,
compared by a unit test through `SCHEMA_DEFAULTS`), so a spec the API server accepts
parses here, and a bad one fails with a ValueError naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

from backlog_operator import pipeline
from backlog_operator.policy import types as t

IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
DNS_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
SECRET_KEY: Final = re.compile(r"^[-._a-zA-Z0-9]+$")
KIND: Final = re.compile(r"^[A-Z][A-Za-z0-9]*$")
API_VERSION: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?$"
)

DEFAULT_POLL_INTERVAL_S: Final = 5
DEFAULT_LISTEN: Final = True
DEFAULT_DRAIN_AWARE_SCALE_IN: Final = True
DEFAULT_DSN_KEY: Final = "dsn"

# Every default the CRD's structural schema applies, by dotted path under spec.
# backlogPerReplica and fallback.replicas have none there: the CRD requires them
# with BacklogPerReplica and Static (policy.types explains their internal defaults).
SCHEMA_DEFAULTS: Final[Mapping[str, object]] = {
    "database.dsnSecretRef.key": DEFAULT_DSN_KEY,
    "source.schema": pipeline.DEFAULT_SCHEMA,
    "source.table": pipeline.DEFAULT_TABLE,
    "minReplicas": t.DEFAULT_MIN_REPLICAS,
    "maxReplicas": t.DEFAULT_MAX_REPLICAS,
    "pollIntervalSeconds": DEFAULT_POLL_INTERVAL_S,
    "listen": DEFAULT_LISTEN,
    "policy.type": t.DEFAULT_POLICY_TYPE.value,
    "policy.targetQueueWaitSeconds": t.DEFAULT_TARGET_QUEUE_WAIT_S,
    "policy.targetUtilization": t.DEFAULT_TARGET_UTILIZATION,
    "policy.activationBacklog": t.DEFAULT_ACTIVATION_BACKLOG,
    "policy.idleCooldownSeconds": t.DEFAULT_IDLE_COOLDOWN_S,
    "policy.tolerance": t.DEFAULT_TOLERANCE,
    "behavior.scaleUp.stabilizationWindowSeconds": t.DEFAULT_SCALE_UP_STABILIZATION_S,
    "behavior.scaleUp.selectPolicy": t.DEFAULT_SELECT_POLICY.value,
    "behavior.scaleUp.policies": [
        {"type": "Percent", "value": t.DEFAULT_SCALE_UP_PERCENT, "periodSeconds": 15},
        {"type": "Pods", "value": 4, "periodSeconds": 15},
    ],
    "behavior.scaleDown.stabilizationWindowSeconds": t.DEFAULT_SCALE_DOWN_STABILIZATION_S,
    "behavior.scaleDown.selectPolicy": t.DEFAULT_SELECT_POLICY.value,
    "behavior.scaleDown.policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    "fallback.failureThreshold": t.DEFAULT_FAILURE_THRESHOLD,
    "fallback.behavior": t.DEFAULT_FALLBACK_BEHAVIOR.value,
    "drainAwareScaleIn": DEFAULT_DRAIN_AWARE_SCALE_IN,
    "paused": False,
}

_SPEC_FIELDS: Final = frozenset(
    {
        "scaleTargetRef",
        "database",
        "source",
        "minReplicas",
        "maxReplicas",
        "pollIntervalSeconds",
        "listen",
        "policy",
        "behavior",
        "fallback",
        "drainAwareScaleIn",
        "paused",
    }
)


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    """spec.scaleTargetRef: any resource with a /scale subresource."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """spec.source: where the stage backlog lives."""

    stages: tuple[str, ...]
    schema: str = pipeline.DEFAULT_SCHEMA
    table: str = pipeline.DEFAULT_TABLE


@dataclass(frozen=True, slots=True)
class BacklogScalerSpec:
    """A whole BacklogScaler spec, defaults applied."""

    scale_target_ref: ScaleTargetRef
    dsn_secret_name: str
    source: SourceSpec
    dsn_secret_key: str = DEFAULT_DSN_KEY
    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S
    listen: bool = DEFAULT_LISTEN
    drain_aware_scale_in: bool = DEFAULT_DRAIN_AWARE_SCALE_IN
    scaler: t.ScalerConfig = field(default_factory=t.ScalerConfig)


# --- field readers: each names the field in its error ---------------------------------------

E = TypeVar("E", bound=StrEnum)


def _object(parent: Mapping[str, Any], key: str, path: str, allowed: set[str]) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: must be an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: unknown field")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str, default: int | None, lo: int, hi: int) -> int:
    value = obj.get(key, default)
    if value is None:
        raise ValueError(f"{path}: required")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{path}: must be between {lo} and {hi}, got {value}")
    return value


def _number(
    obj: Mapping[str, Any], key: str, path: str, default: float | None, lo: float, hi: float
) -> float:
    """A number in (lo, hi]: every float bound in the CRD is an exclusive minimum."""
    value = obj.get(key, default)
    if value is None:
        raise ValueError(f"{path}: required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: must be a number, got {value!r}")
    if not lo < value <= hi:
        raise ValueError(f"{path}: must be greater than {lo:g} and at most {hi:g}, got {value}")
    return float(value)


def _bool(obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: must be true or false, got {value!r}")
    return value


def _enum(obj: Mapping[str, Any], key: str, path: str, kind: type[E], default: E | None) -> E:
    value = obj.get(key, default)
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValueError(f"{path}: must be one of {allowed}, got {value!r}") from None


def _string(
    obj: Mapping[str, Any],
    key: str,
    path: str,
    pattern: re.Pattern[str],
    default: str | None = None,
    max_length: int = 253,
) -> str:
    value = obj.get(key, default)
    if value is None:
        raise ValueError(f"{path}: required")
    if not isinstance(value, str) or not pattern.match(value) or len(value) > max_length:
        raise ValueError(
            f"{path}: must match {pattern.pattern} (<= {max_length} chars), got {value!r}"
        )
    return value


def _stages(
    obj: Mapping[str, Any], key: str, path: str, min_items: int, max_items: int
) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"{path}: must be a list of stages")
    if not min_items <= len(value) <= max_items:
        raise ValueError(f"{path}: must have {min_items} to {max_items} items, got {len(value)}")
    for i, stage in enumerate(value):
        if stage not in pipeline.STAGES:
            raise ValueError(
                f"{path}[{i}]: unknown stage {stage!r}; one of {', '.join(pipeline.STAGES)}"
            )
    if len(set(value)) != len(value):
        raise ValueError(f"{path}: stages must be unique")
    return tuple(value)


# --- sections --------------------------------------------------------------------------------


def _policy(spec: Mapping[str, Any]) -> t.PolicySpec:
    p = "spec.policy"
    obj = _object(
        spec,
        "policy",
        p,
        {
            "type",
            "targetQueueWaitSeconds",
            "targetUtilization",
            "backlogPerReplica",
            "activationBacklog",
            "idleCooldownSeconds",
            "upstreamStages",
            "tolerance",
        },
    )
    kind = _enum(obj, "type", f"{p}.type", t.PolicyType, t.DEFAULT_POLICY_TYPE)
    if kind is t.PolicyType.BACKLOG_PER_REPLICA and "backlogPerReplica" not in obj:
        raise ValueError(f"{p}.backlogPerReplica: required when {p}.type is BacklogPerReplica")
    return t.PolicySpec(
        type=kind,
        target_queue_wait_s=_number(
            obj,
            "targetQueueWaitSeconds",
            f"{p}.targetQueueWaitSeconds",
            t.DEFAULT_TARGET_QUEUE_WAIT_S,
            0,
            86400,
        ),
        target_utilization=_number(
            obj, "targetUtilization", f"{p}.targetUtilization", t.DEFAULT_TARGET_UTILIZATION, 0, 1
        ),
        backlog_per_replica=_number(
            obj,
            "backlogPerReplica",
            f"{p}.backlogPerReplica",
            t.DEFAULT_BACKLOG_PER_REPLICA,
            0,
            1_000_000,
        ),
        activation_backlog=_int(
            obj,
            "activationBacklog",
            f"{p}.activationBacklog",
            t.DEFAULT_ACTIVATION_BACKLOG,
            0,
            2**63 - 1,
        ),
        idle_cooldown_s=float(
            _int(
                obj,
                "idleCooldownSeconds",
                f"{p}.idleCooldownSeconds",
                int(t.DEFAULT_IDLE_COOLDOWN_S),
                0,
                86400,
            )
        ),
        upstream_stages=_stages(obj, "upstreamStages", f"{p}.upstreamStages", 0, 10),
    )


def _tolerance(spec: Mapping[str, Any]) -> float:
    policy = spec.get("policy") or {}
    value = policy.get("tolerance", t.DEFAULT_TOLERANCE) if isinstance(policy, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"spec.policy.tolerance: must be a number in [0, 1), got {value!r}")
    return float(value)


def _rules(behavior: Mapping[str, Any], key: str, default: t.ScalingRules) -> t.ScalingRules:
    p = f"spec.behavior.{key}"
    obj = _object(behavior, key, p, {"stabilizationWindowSeconds", "selectPolicy", "policies"})
    raw_policies = obj.get("policies")
    policies = default.policies
    if raw_policies is not None:
        if not isinstance(raw_policies, list | tuple) or not 1 <= len(raw_policies) <= 10:
            raise ValueError(f"{p}.policies: must be a list of 1 to 10 policies")
        parsed = []
        for i, item in enumerate(raw_policies):
            ip = f"{p}.policies[{i}]"
            item = _object({"item": item}, "item", ip, {"type", "value", "periodSeconds"})
            parsed.append(
                t.RatePolicy(
                    type=_enum(item, "type", f"{ip}.type", t.RatePolicyType, None),
                    value=_int(item, "value", f"{ip}.value", None, 1, 2**31 - 1),
                    period_s=float(
                        _int(item, "periodSeconds", f"{ip}.periodSeconds", None, 1, 1800)
                    ),
                )
            )
        policies = tuple(parsed)
    window = _int(
        obj,
        "stabilizationWindowSeconds",
        f"{p}.stabilizationWindowSeconds",
        int(default.stabilization_window_s),
        0,
        3600,
    )
    return t.ScalingRules(
        stabilization_window_s=float(window),
        select_policy=_enum(
            obj, "selectPolicy", f"{p}.selectPolicy", t.SelectPolicy, default.select_policy
        ),
        policies=policies,
    )


def _behavior(spec: Mapping[str, Any], defaults: t.Behavior | None = None) -> t.Behavior:
    obj = _object(spec, "behavior", "spec.behavior", {"scaleUp", "scaleDown"})
    base = t.Behavior() if defaults is None else defaults
    return t.Behavior(
        scale_up=_rules(obj, "scaleUp", base.scale_up),
        scale_down=_rules(obj, "scaleDown", base.scale_down),
    )


def parse_behavior(behavior: object, defaults: t.Behavior) -> t.Behavior:
    """An HPA-shaped `behavior` alone, omitted fields from `defaults`.

    The KEDA model (sim.keda_spec) passes HPA's defaults, which differ from ours
    (docs/decisions/0006). Raises ValueError naming the field, as `spec.behavior...`.
    """
    return _behavior({"behavior": behavior}, defaults)


def _fallback(spec: Mapping[str, Any], max_replicas: int) -> t.Fallback:
    p = "spec.fallback"
    obj = _object(spec, "fallback", p, {"failureThreshold", "behavior", "replicas"})
    kind = _enum(obj, "behavior", f"{p}.behavior", t.FallbackBehavior, t.DEFAULT_FALLBACK_BEHAVIOR)
    if kind is t.FallbackBehavior.STATIC and "replicas" not in obj:
        raise ValueError(f"{p}.replicas: required when {p}.behavior is Static")
    replicas = _int(obj, "replicas", f"{p}.replicas", t.DEFAULT_FALLBACK_REPLICAS, 1, 1000)
    if "replicas" in obj and replicas > max_replicas:
        raise ValueError(f"{p}.replicas: must be at most spec.maxReplicas ({max_replicas})")
    return t.Fallback(
        failure_threshold=_int(
            obj, "failureThreshold", f"{p}.failureThreshold", t.DEFAULT_FAILURE_THRESHOLD, 1, 1000
        ),
        behavior=kind,
        replicas=replicas,
    )


# --- entry points ----------------------------------------------------------------------------


def parse_spec(spec: Mapping[str, Any]) -> t.ScalerConfig:
    """The policy part of a BacklogScaler spec, with the CRD's defaults applied.

    Raises ValueError naming the field (e.g. "spec.policy.targetUtilization: ...").
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"spec: must be an object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _SPEC_FIELDS)
    if unknown:
        raise ValueError(f"spec.{unknown[0]}: unknown field")
    low = _int(spec, "minReplicas", "spec.minReplicas", t.DEFAULT_MIN_REPLICAS, 0, 1000)
    high = _int(spec, "maxReplicas", "spec.maxReplicas", t.DEFAULT_MAX_REPLICAS, 1, 1000)
    if low > high:
        raise ValueError(f"spec.minReplicas: must be at most spec.maxReplicas ({low} > {high})")
    return t.ScalerConfig(
        min_replicas=low,
        max_replicas=high,
        policy=_policy(spec),
        behavior=_behavior(spec),
        fallback=_fallback(spec, high),
        tolerance=_tolerance(spec),
        paused=_bool(spec, "paused", "spec.paused", False),
    )


def parse_backlogscaler(spec: Mapping[str, Any]) -> BacklogScalerSpec:
    """A whole BacklogScaler spec: target, database, source, wake-ups and the policy."""
    scaler = parse_spec(spec)
    if "scaleTargetRef" not in spec:
        raise ValueError("spec.scaleTargetRef: required")
    ref = _object(spec, "scaleTargetRef", "spec.scaleTargetRef", {"apiVersion", "kind", "name"})
    database = _object(spec, "database", "spec.database", {"dsnSecretRef"})
    secret = _object(database, "dsnSecretRef", "spec.database.dsnSecretRef", {"name", "key"})
    if "source" not in spec:
        raise ValueError("spec.source: required")
    source = _object(spec, "source", "spec.source", {"schema", "table", "stages"})
    stages = _stages(source, "stages", "spec.source.stages", 1, len(pipeline.STAGES))
    overlap = [s for s in scaler.policy.upstream_stages if s in stages]
    if overlap:
        raise ValueError(
            f"spec.policy.upstreamStages: {overlap[0]!r} is also in spec.source.stages"
        )
    return BacklogScalerSpec(
        scale_target_ref=ScaleTargetRef(
            api_version=_string(ref, "apiVersion", "spec.scaleTargetRef.apiVersion", API_VERSION),
            kind=_string(ref, "kind", "spec.scaleTargetRef.kind", KIND, max_length=63),
            name=_string(ref, "name", "spec.scaleTargetRef.name", DNS_SUBDOMAIN),
        ),
        dsn_secret_name=_string(secret, "name", "spec.database.dsnSecretRef.name", DNS_SUBDOMAIN),
        dsn_secret_key=_string(
            secret, "key", "spec.database.dsnSecretRef.key", SECRET_KEY, DEFAULT_DSN_KEY
        ),
        source=SourceSpec(
            stages=stages,
            schema=_string(
                source, "schema", "spec.source.schema", IDENTIFIER, pipeline.DEFAULT_SCHEMA, 63
            ),
            table=_string(
                source, "table", "spec.source.table", IDENTIFIER, pipeline.DEFAULT_TABLE, 63
            ),
        ),
        poll_interval_s=_int(
            spec,
            "pollIntervalSeconds",
            "spec.pollIntervalSeconds",
            DEFAULT_POLL_INTERVAL_S,
            1,
            3600,
        ),
        listen=_bool(spec, "listen", "spec.listen", DEFAULT_LISTEN),
        drain_aware_scale_in=_bool(
            spec, "drainAwareScaleIn", "spec.drainAwareScaleIn", DEFAULT_DRAIN_AWARE_SCALE_IN
        ),
        scaler=scaler,
    )


def parse_manifest(obj: Mapping[str, Any]) -> BacklogScalerSpec:
    """A BacklogScaler object as read from YAML (apiVersion, kind, metadata, spec)."""
    if not isinstance(obj, Mapping) or obj.get("kind") != "BacklogScaler":
        kind = obj.get("kind") if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"kind: expected BacklogScaler, got {kind!r}")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise ValueError("spec: required")
    return parse_backlogscaler(spec)
