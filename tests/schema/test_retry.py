"""The one backoff rule: exponential, capped, jittered between half and all of the step."""

from hypothesis import given
from hypothesis import strategies as st

from migrate_assets.schema.retry import backoff_delay


@given(st.integers(1, 40), st.floats(0.01, 5), st.floats(0.01, 60))
def test_delay_is_capped_and_jittered(attempt: int, base: float, cap: float) -> None:
    step = min(cap, base * 2 ** (attempt - 1))
    d = backoff_delay(attempt, base, cap)
    assert step * 0.5 <= d <= step <= cap


def test_delay_grows_until_the_cap() -> None:
    lows = [min(2.0, 0.1 * 2 ** (a - 1)) * 0.5 for a in range(1, 8)]
    delays = [backoff_delay(a, 0.1, 2.0) for a in range(1, 8)]
    assert all(d >= low for d, low in zip(delays, lows, strict=True))
    assert max(delays) <= 2.0
