"""The retry of a failed attempt, as two plain functions the supervisor calls (tested
directly in tests/test_retry_plan.py): whether and when the task's next attempt is due,
and the spec that attempt runs.

Why a separate module: the retry's rules (the policy decides, its backoff is drawn from
the supervisor's random source, the next attempt resumes from the latest checkpoint the
failed one published) are facts about a task, not about messages; the supervisor tells
the registry (``RetryScheduled``) and queues the spec.
"""

from __future__ import annotations

import random
from dataclasses import replace

from actors._core.attempts import ActiveAttempt
from actors._outcome import Outcome
from actors._records import TaskSpec

__all__ = ["next_attempt", "retry_due"]


def retry_due(
    active: ActiveAttempt, outcome: Outcome, *, now: float, rng: random.Random
) -> float | None:
    """The wall-clock time the task's next attempt is due after ``outcome`` ended
    ``active``, or None when its retry policy (if any) gives up."""
    policy = active.spec.options.retry
    if policy is None or not policy.retries(outcome, active.attempt):
        return None
    return now + policy.delay(active.attempt, rng)


def next_attempt(active: ActiveAttempt, at: float) -> TaskSpec:
    """The spec of the attempt after ``active``, due at ``at``: it counts the attempts
    made, and resumes from the latest checkpoint ``active`` published (else from where
    ``active`` resumed)."""
    published = active.published
    latest = None if published is None else published.latest_checkpoint()
    return replace(
        active.spec,
        prior_attempts=active.attempt,
        not_before=at,
        resume_json=active.spec.resume_json if latest is None else latest,
    )
