"""A controller that follows a fixed schedule of replicas: baselines, tests, calibration.

Called by tests and by sim.staged for stages without a scaler. `Scripted(((0, 4),))`
runs 4 replicas from t=0; `((0, 4), (60, 1))` scales in to 1 at t=60.
"""

from __future__ import annotations

from dataclasses import dataclass

from backlog_operator.sim.engine import ScaleIn, Step, View


@dataclass(frozen=True)
class Scripted:
    """Replicas set at given times, no feedback. State: index of the next change."""

    schedule: tuple[tuple[float, int], ...]
    name: str = "scripted"
    scale_in: ScaleIn = ScaleIn.DRAIN
    wake_debounce_s: float | None = None
    window_s: float = 60.0

    @property
    def floor(self) -> int:
        return self.schedule[-1][1] if self.schedule else 0

    def start(self) -> tuple[int, float]:
        return 0, self.schedule[0][0] if self.schedule else float("inf")

    def step(self, state: int, view: View) -> Step:
        desired = view.target
        index = state
        while index < len(self.schedule) and self.schedule[index][0] <= view.now + 1e-9:
            desired = self.schedule[index][1]
            index += 1
        after = self.schedule[index][0] if index < len(self.schedule) else float("inf")
        return Step(desired, after, index)
