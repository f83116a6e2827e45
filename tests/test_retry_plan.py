"""retry_plan, tested directly: when a failed attempt's retry is due, and what the next
attempt runs (it resumes from the latest checkpoint the failed one published)."""

from __future__ import annotations

import random
from typing import Any

from actors import TaskOptions
from actors._core.attempts import ActiveAttempt
from actors._core.retry_plan import next_attempt, retry_due
from actors._enums import Isolation
from actors._execution.published import Published
from actors._outcome import Completed, TimedOut
from actors._policies import RetryPolicy
from tests.records import make_spec


def _attempt(
    attempt: int, *, retry: RetryPolicy | None, published: Published | None = None, **fields: Any
) -> ActiveAttempt:
    options = TaskOptions(isolation=Isolation.THREAD, retry=retry)
    worker: Any = None
    backend: Any = None
    spec = make_spec("a", options=options, **fields)
    return ActiveAttempt(spec, worker, backend, None, attempt=attempt, published=published)


def test_the_backoff_doubles_up_to_its_bound_and_stops_at_max_attempts() -> None:
    """Without jitter: 1 s, 2 s, then 4 s capped at 3 s; none after max_attempts."""
    policy = RetryPolicy(
        max_attempts=4, backoff=1.0, max_backoff=3.0, jitter=False, retry_on_timeout=True
    )
    rng = random.Random(0)
    timed_out = TimedOut(timeout_seconds=1.0)
    dues = [
        retry_due(_attempt(n, retry=policy), timed_out, now=100.0, rng=rng) for n in (1, 2, 3, 4)
    ]
    assert dues == [101.0, 102.0, 103.0, None]


def test_no_policy_or_an_outcome_it_does_not_retry_gives_none() -> None:
    """No retry policy, a completed attempt, or a timeout the policy does not retry."""
    rng = random.Random(0)
    policy = RetryPolicy(max_attempts=3, jitter=False)
    timed_out = TimedOut(timeout_seconds=1.0)
    assert retry_due(_attempt(1, retry=None), timed_out, now=0.0, rng=rng) is None
    assert retry_due(_attempt(1, retry=policy), Completed(None), now=0.0, rng=rng) is None
    assert retry_due(_attempt(1, retry=policy), timed_out, now=0.0, rng=rng) is None


def test_the_next_attempt_counts_attempts_and_resumes_from_the_latest_checkpoint() -> None:
    """next_attempt: prior_attempts is the failed attempt's number, not_before its due
    time, resume_json the latest checkpoint published (else the one it resumed from)."""
    published = Published()
    failed = _attempt(2, retry=None, published=published, resume_json='{"page": 1}')
    first = next_attempt(failed, 7.0)
    assert (first.prior_attempts, first.not_before, first.resume_json) == (2, 7.0, '{"page": 1}')
    published.checkpoint('{"page": 5}')
    assert next_attempt(failed, 7.0).resume_json == '{"page": 5}'
    assert next_attempt(_attempt(1, retry=None), 1.0).resume_json is None
