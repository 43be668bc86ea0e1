"""sim.calibrate's input helpers: a live run's timeline -> the simulator's inputs."""

from __future__ import annotations

import pytest

from backlog_operator.sim import calibrate


def test_per_second_counts_keeps_every_job() -> None:
    offsets = [-0.01, 0.2, 0.9, 1.0, 2.5, 3.0, 7.2]
    counts = calibrate.per_second_counts(offsets, 4)
    # Early (clock skew) and late (producer lag) jobs stay in the edge seconds.
    assert counts == [3, 1, 1, 2]
    assert sum(counts) == len(offsets)
    assert calibrate.per_second_counts([], 0) == [0]


def test_startup_delays_match_pods_to_the_scale_ups_that_asked_for_them() -> None:
    changes = [(1.0, 1), (2.0, 3), (30.0, 2), (31.0, 3)]
    claims = [5.0, 7.0, 6.5, 36.0]
    # Slots 1.0, 2.0, 2.0; after the scale-down at 30 s nothing more is matched.
    assert calibrate.startup_delays(changes, claims) == pytest.approx([4.0, 4.5, 5.0])
    # A pod that never claimed: the remaining slots are simply unmatched.
    assert calibrate.startup_delays(changes, [5.0]) == pytest.approx([4.0])
    assert calibrate.startup_delays([], [3.0]) == []


def test_mean_cycle_is_the_gap_between_a_workers_consecutive_starts() -> None:
    starts = {"a": [0.0, 0.52, 1.04, 1.56], "b": [10.0, 10.6], "c": [3.0]}
    assert calibrate.mean_cycle(starts) == pytest.approx((0.52 * 3 + 0.6) / 4)
    assert calibrate.mean_cycle({"a": [1.0]}) is None
