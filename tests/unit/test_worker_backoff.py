"""Unit: retry delays grow exponentially, stay within their jittered band, and are capped."""

import random

from hypothesis import given
from hypothesis import strategies as st

from backlog_operator.worker.backoff import retry_delay


@given(
    retry_count=st.integers(min_value=0, max_value=500),
    base=st.floats(min_value=0.001, max_value=60),
    cap=st.floats(min_value=0.001, max_value=3600),
    seed=st.integers(),
)
def test_delay_is_within_half_to_full_capped_ceiling(
    retry_count: int, base: float, cap: float, seed: int
) -> None:
    ceiling = min(cap, base * 2.0 ** min(retry_count, 62))
    delay = retry_delay(retry_count, base_seconds=base, cap_seconds=cap, rng=random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling


def test_ceiling_doubles_per_retry_until_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    top = Top()
    delays = [retry_delay(n, base_seconds=1, cap_seconds=10, rng=top) for n in range(6)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_jitter_spreads_a_burst_of_retries() -> None:
    rng = random.Random(7)
    delays = {retry_delay(3, base_seconds=1, cap_seconds=60, rng=rng) for _ in range(50)}
    assert len(delays) == 50
