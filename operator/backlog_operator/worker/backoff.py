"""Retry delays: exponential backoff with "equal jitter", capped.

Called by worker/base.py when a handler fails. Pure: the random source is passed in.
"""

import random


def retry_delay(
    retry_count: int, *, base_seconds: float, cap_seconds: float, rng: random.Random
) -> float:
    """Seconds to wait before attempt `retry_count + 2` (retry_count = retries so far).

    The ceiling doubles per retry up to the cap; the delay is drawn from
    [ceiling / 2, ceiling], so retries of a burst spread out yet never fire at once.
    """
    exponent = min(max(retry_count, 0), 62)  # keeps 2**n finite
    ceiling = min(cap_seconds, base_seconds * (2.0**exponent))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
