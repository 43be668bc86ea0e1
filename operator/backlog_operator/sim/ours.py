"""The operator's own policy as a simulator controller: `policy.decide`, imported, never copied.

Called by sim.run and sim.staged. Evaluations happen when the operator's would: every
`poll_interval_s`, and (with `listen`) `debounce_s` after a NOTIFY, i.e. after the first
arrival since the last reading; a reading restarts the poll timer, as the signal hub's
loop does (sources/hub.py). Signals are computed the way sources/flow.py computes them:
counts now, rates over a trailing `window_s` (60 s, the hub's default), service time as
the mean of the window's completions, else the last one measured.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from backlog_operator import policy
from backlog_operator.api import backlogscaler
from backlog_operator.policy.types import ScalerConfig, ScalerHistory, Signals
from backlog_operator.sim.engine import ScaleIn, Step, View

HUB_WINDOW_S = 60.0  # sources.hub.HubSettings.window_s
HUB_DEBOUNCE_S = 0.1  # sources.hub.HubSettings.debounce_s


@dataclass(frozen=True, slots=True)
class OursState:
    """Between evaluations: the policy's history and the source's last service time."""

    history: ScalerHistory
    last_service_s: float | None = None


@dataclass(frozen=True)
class OursController:
    """A BacklogScaler as the operator runs it. Build it with `from_spec` for CRD defaults."""

    config: ScalerConfig
    poll_interval_s: float = backlogscaler.DEFAULT_POLL_INTERVAL_S
    listen: bool = backlogscaler.DEFAULT_LISTEN
    drain_aware: bool = backlogscaler.DEFAULT_DRAIN_AWARE_SCALE_IN
    debounce_s: float = HUB_DEBOUNCE_S
    window_s: float = HUB_WINDOW_S
    name: str = "ours"
    # ScaleTest chains: arrival times of the upstream stage (spec.policy.upstreamStages).
    upstream_arrivals: Sequence[float] | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, object], **overrides: object) -> OursController:
        """From a BacklogScaler spec dict: the policy via `parse_spec`, plus the loop fields.

        A full spec (with scaleTargetRef and source) is validated as the operator would;
        a policy-only spec is enough for the simulator. Raises ValueError naming the field.
        """
        if "scaleTargetRef" in spec or "source" in spec:
            full = backlogscaler.parse_backlogscaler(spec)
            config, poll, listen, drain = (
                full.scaler,
                full.poll_interval_s,
                full.listen,
                full.drain_aware_scale_in,
            )
        else:
            # parse_spec validates the policy fields; the loop fields are read here the same way.
            config = backlogscaler.parse_spec(spec)
            raw_poll = spec.get("pollIntervalSeconds", backlogscaler.DEFAULT_POLL_INTERVAL_S)
            if isinstance(raw_poll, bool) or not isinstance(raw_poll, int):
                raise ValueError(f"spec.pollIntervalSeconds: must be an integer, got {raw_poll!r}")
            if not 1 <= raw_poll <= 3600:
                raise ValueError(f"spec.pollIntervalSeconds: must be in [1, 3600], got {raw_poll}")
            poll = raw_poll
            listen = _flag(spec, "listen", backlogscaler.DEFAULT_LISTEN)
            drain = _flag(spec, "drainAwareScaleIn", backlogscaler.DEFAULT_DRAIN_AWARE_SCALE_IN)
        return cls(config, float(poll), listen, drain, **overrides)  # type: ignore[arg-type]

    @property
    def scale_in(self) -> ScaleIn:
        return ScaleIn.DRAIN if self.drain_aware else ScaleIn.KILL

    @property
    def wake_debounce_s(self) -> float | None:
        return self.debounce_s if self.listen else None

    @property
    def floor(self) -> int:
        return self.config.min_replicas

    def start(self) -> tuple[OursState, float]:
        return OursState(ScalerHistory()), 0.0

    def signals(self, state: OursState, view: View) -> tuple[Signals, float | None]:
        """The Signals the operator's source would deliver now, and the service time kept."""
        window = self.window_s
        service = state.last_service_s
        if view.window_completions:
            service = view.window_service_s / view.window_completions
        upstream = None
        if self.upstream_arrivals is not None:
            up = self.upstream_arrivals
            seen = bisect.bisect_right(up, view.now)
            upstream = (seen - bisect.bisect_right(up, view.now - window, 0, seen)) / window
        return (
            Signals(
                ready=view.ready,
                in_flight=view.in_flight,
                oldest_ready_seconds=view.oldest_ready_s,
                arrival_rate_per_s=view.window_arrivals / window,
                completion_rate_per_s=view.window_completions / window,
                service_time_s=service,
                upstream_arrival_rate_per_s=upstream,
            ),
            service,
        )

    def step(self, state: OursState, view: View) -> Step:
        signals, service = self.signals(state, view)
        decision = policy.decide(self.config, signals, view.target, state.history, view.now)
        history = decision.history  # stored as is, as the operator does
        if history is not state.history or service != state.last_service_s:
            state = OursState(history, service)
        return Step(decision.desired_replicas, view.now + self.poll_interval_s, state)


def _flag(spec: dict[str, object], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"spec.{key}: must be a boolean, got {value!r}")
    return value
