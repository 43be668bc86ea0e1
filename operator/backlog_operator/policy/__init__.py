"""The pure scaling policy: signals, config and history in, a Decision out.

No I/O, no clock reads, no kopf/psycopg/kubernetes (an import-linter contract
enforces it). The operator's reconcile loop and the simulator both call
`policy.decide(config, signals, current_replicas, history, now)`.
"""

from backlog_operator.policy.decision import decide
from backlog_operator.policy.types import (
    Behavior,
    Decision,
    Fallback,
    FallbackBehavior,
    PolicySpec,
    PolicyType,
    RatePolicy,
    RatePolicyType,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalerConfig,
    ScalerHistory,
    ScalingRules,
    SelectPolicy,
    Signals,
)

__all__ = [
    "Behavior",
    "Decision",
    "Fallback",
    "FallbackBehavior",
    "PolicySpec",
    "PolicyType",
    "RatePolicy",
    "RatePolicyType",
    "Reason",
    "Recommendation",
    "ScaleEvent",
    "ScalerConfig",
    "ScalerHistory",
    "ScalingRules",
    "SelectPolicy",
    "Signals",
    "decide",
]
