"""The retry policy is pure: these tests need no network, clock or randomness."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convoai.errors import (
    AgentNotFound,
    AuthenticationFailed,
    ConvoAIError,
    InvalidRequest,
    LimitExceeded,
    RateLimited,
    TaskConflict,
    UpstreamError,
    UpstreamUnavailable,
)
from upstream.retry import NO_RETRY, RetryPolicy, is_retryable

POLICY = RetryPolicy()  # 4 attempts, 0.2 s base, 2.0 s cap, 7 s budget
ROOMY = RetryPolicy(max_attempts=1_000_000, budget_s=1000.0)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (UpstreamUnavailable(detail="ConnectTimeout"), True),
        (RateLimited(status=429), True),
        (RateLimited(status=429, retry_after=1.0), True),
        (UpstreamError(status=500), True),
        (UpstreamError(status=502), True),
        (UpstreamError(status=503), True),
        (UpstreamError(status=504), True),
        (UpstreamError(status=None), True),
        (UpstreamError(status=501), False),
        (UpstreamError(status=408), False),
        (UpstreamError(status=302), False),
        (InvalidRequest(status=400), False),
        (AuthenticationFailed(status=401), False),
        (AuthenticationFailed(status=403), False),
        (AgentNotFound(status=404), False),
        (TaskConflict(status=409), False),
        (LimitExceeded(status=422), False),
        (ConvoAIError(status=503), False),  # only the known retryable classes
        (ValueError("not ours"), False),
    ],
)
def test_which_errors_are_retried(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable
    delay = POLICY.next_delay(1, error, elapsed_s=0.0, rand=0.0)
    assert (delay is not None) is retryable


@pytest.mark.parametrize(
    ("attempt", "full_delay"),
    [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 2.0), (6, 2.0), (40, 2.0), (10_000, 2.0)],
)
def test_backoff_doubles_then_is_capped(attempt: int, full_delay: float) -> None:
    error = UpstreamError(status=503)
    assert ROOMY.next_delay(attempt, error, 0.0, rand=0.0) == pytest.approx(full_delay / 2)
    assert ROOMY.next_delay(attempt, error, 0.0, rand=0.5) == pytest.approx(full_delay * 0.75)
    assert ROOMY.next_delay(attempt, error, 0.0, rand=0.999999) == pytest.approx(full_delay)


@pytest.mark.parametrize("rand", [0.0, 0.1, 0.25, 0.5, 0.75, 0.999999])
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_jitter_stays_within_half_to_full_delay(attempt: int, rand: float) -> None:
    full = min(0.2 * 2 ** (attempt - 1), 2.0)
    delay = POLICY.next_delay(attempt, UpstreamUnavailable(), 0.0, rand)
    assert delay is not None
    assert 0.5 * full <= delay < full


@pytest.mark.parametrize(
    ("policy", "attempt", "gives_up"),
    [
        (POLICY, 1, False),
        (POLICY, 3, False),
        (POLICY, 4, True),
        (POLICY, 5, True),
        (RetryPolicy(max_attempts=2), 1, False),
        (RetryPolicy(max_attempts=2), 2, True),
        (NO_RETRY, 1, True),
    ],
)
def test_gives_up_after_max_attempts(policy: RetryPolicy, attempt: int, gives_up: bool) -> None:
    delay = policy.next_delay(attempt, UpstreamError(status=503), 0.0, rand=0.0)
    assert (delay is None) is gives_up


@pytest.mark.parametrize(
    ("elapsed_s", "gives_up"),
    [(0.0, False), (6.8, False), (6.9, False), (6.91, True), (7.0, True), (50.0, True)],
)
def test_gives_up_when_the_delay_would_overrun_the_budget(elapsed_s: float, gives_up: bool) -> None:
    # attempt 1, rand 0 -> delay 0.1 s; the budget is 7 s.
    delay = POLICY.next_delay(1, UpstreamUnavailable(), elapsed_s, rand=0.0)
    assert (delay is None) is gives_up


@pytest.mark.parametrize(
    ("retry_after", "elapsed_s", "expected"),
    [
        (1.5, 0.0, 1.5),  # exactly as asked, no jitter
        (0.0, 0.0, 0.0),
        (3.0, 0.0, 3.0),  # above max_delay_s: the server's hint wins over our cap
        (6.0, 1.5, None),  # but not over the budget
        (30.0, 0.0, None),
    ],
)
def test_retry_after_is_honoured_within_the_budget(
    retry_after: float, elapsed_s: float, expected: float | None
) -> None:
    error = RateLimited(status=429, retry_after=retry_after)
    assert POLICY.next_delay(1, error, elapsed_s, rand=0.9) == expected


def test_rate_limited_without_retry_after_uses_backoff() -> None:
    error = RateLimited(status=429, retry_after=None)
    assert POLICY.next_delay(2, error, 0.0, rand=0.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay_s": -1.0}, {"max_delay_s": -0.1}, {"budget_s": 0.0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_immutable() -> None:
    with pytest.raises(AttributeError):
        POLICY.max_attempts = 10  # type: ignore[misc]


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    elapsed_s=st.floats(min_value=0.0, max_value=20.0),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_any_delay_is_bounded_by_cap_and_budget(
    attempt: int, elapsed_s: float, rand: float
) -> None:
    delay = POLICY.next_delay(attempt, UpstreamError(status=502), elapsed_s, rand)
    if delay is not None:
        assert 0.0 < delay <= POLICY.max_delay_s
        assert elapsed_s + delay <= POLICY.budget_s
        assert attempt < POLICY.max_attempts
