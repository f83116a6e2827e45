"""``BreakerGate``: the supervisor's side of the operations' circuit breakers, as a plain
object (tested directly in tests/test_breaker_gate.py on a manual clock).

The breakers themselves (``actors._policies.CircuitBreakers``) are shared with the
submitting threads. The supervisor records how each attempt ended, and holds back the
pending tasks of an open operation until its cool-down is over (or its trial's outcome
releases them). This object reads the clock, records, logs a trip or a recovery, and
says when the cool-down ends; the supervisor arms the ``CooldownOver`` timer and moves
the held tasks.

Why a separate object: what an attempt's end means to its operation is a rule of its own
(a trial's outcome decides; a cancelled trial says nothing), apart from the messages.
"""

from __future__ import annotations

from typing import Literal

from actors._clock import Clock
from actors._core.attempts import ActiveAttempt
from actors._outcome import StopReason
from actors._policies import CircuitBreakers
from actors.logs import library_logger

__all__ = ["BreakerGate", "Change"]

Change = Literal["tripped", "recovered"]

_log = library_logger("actors.supervisor")


class BreakerGate:
    """Records attempts' ends in ``breakers`` (None: no breakers, every call a no-op)."""

    __slots__ = ("_breakers", "_clock")

    def __init__(self, breakers: CircuitBreakers | None, clock: Clock) -> None:
        self._breakers = breakers
        self._clock = clock

    def record(self, active: ActiveAttempt, *, failed: bool) -> Change | None:
        """Tell the attempt's operation how it ended; the breaker's change, if any (a
        trip or a recovery is logged). The attempt is no longer the operation's trial."""
        breakers = self._breakers
        if breakers is None or not breakers.enabled:
            return None
        operation = active.spec.operation_name
        change = breakers.record(operation, failed, self._clock.monotonic())
        active.trial = False
        if change == "tripped":
            snapshot = breakers.snapshot(self._clock.monotonic())[operation]
            _log.warning(
                "operation.tripped",
                operation=operation,
                retry_after=snapshot["retry_after"],
                trips=snapshot["trips"],
            )
            return "tripped"
        if change == "recovered":
            _log.info("operation.recovered", operation=operation)
            return "recovered"
        return None

    def abandon_trial(self, active: ActiveAttempt) -> bool:
        """A stopped attempt has ended: if it was its operation's trial and did not time
        out (a failure it recorded), its outcome says nothing and the next task tries.
        True when the held tasks of the operation should be released."""
        if not active.trial or active.stopping is StopReason.TIMEOUT or not self._breakers:
            return False
        self._breakers.abandon_trial(active.spec.operation_name)
        return True

    def cooldown_left(self, operation: str) -> float | None:
        """Seconds until ``operation``'s cool-down ends, or None when it is over (while
        a trial runs, its outcome releases the held tasks instead)."""
        assert self._breakers is not None
        end = self._breakers.cooldown_end(operation)
        now = self._clock.monotonic()
        if end is not None and end > now:
            return end - now
        return None

    def is_open(self, operation: str) -> bool:
        """Whether ``operation`` refuses new tasks now (a schedule's tick is skipped)."""
        return (
            self._breakers is not None
            and self._breakers.refusal(operation, self._clock.monotonic()) is not None
        )
