"""ScaleTest phases and verdicts, mirrored by the CRD's status.phase / status.verdict enums.

Pending -> [Baseline ->] Loading -> Draining -> Analyzing -> Succeeded | Failed
(mode Simulated: Pending -> Analyzing, where the simulator runs). Any phase may go
to Failed when the run cannot go on (an invalid trace, no results schema).
tests/unit/test_scaletest_phases.py pins the enums against api/crds/scaletests.yaml.
Used by the transition modules and the handlers.
"""

from __future__ import annotations

import enum
from typing import Final


class Phase(enum.StrEnum):
    PENDING = "Pending"
    BASELINE = "Baseline"
    LOADING = "Loading"
    DRAINING = "Draining"
    ANALYZING = "Analyzing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def producing(self) -> bool:
        """Phases during which producers insert jobs."""
        return self in (Phase.BASELINE, Phase.LOADING)

    @property
    def sampling(self) -> bool:
        """Phases during which the sampler records the backlog and the scalers."""
        return self in (Phase.BASELINE, Phase.LOADING, Phase.DRAINING)


class Verdict(enum.StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"


class Part(enum.StrEnum):
    """Which slice of a run's jobs: the gentle baseline, or the load itself."""

    BASELINE = "baseline"
    LOAD = "load"


TERMINAL: Final = frozenset({Phase.SUCCEEDED, Phase.FAILED})

# Every move the phase machine may make; transitions/ never leave this graph.
ALLOWED: Final[dict[Phase, frozenset[Phase]]] = {
    # Simulated runs go straight to Analyzing: the whole run happens in virtual time there.
    Phase.PENDING: frozenset({Phase.BASELINE, Phase.LOADING, Phase.ANALYZING, Phase.FAILED}),
    Phase.BASELINE: frozenset({Phase.LOADING, Phase.FAILED}),
    Phase.LOADING: frozenset({Phase.DRAINING, Phase.FAILED}),
    Phase.DRAINING: frozenset({Phase.ANALYZING, Phase.FAILED}),
    Phase.ANALYZING: frozenset({Phase.SUCCEEDED, Phase.FAILED}),
    Phase.SUCCEEDED: frozenset(),
    Phase.FAILED: frozenset(),
}


def allowed(source: Phase, target: Phase) -> bool:
    return target in ALLOWED[source]


def part_of(phase: Phase) -> Part:
    """The part whose jobs a phase produces or waits for."""
    return Part.BASELINE if phase is Phase.BASELINE else Part.LOAD
