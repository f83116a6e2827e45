"""``ShutdownSequence``: a runtime's closing, as one object its facade owns (tested
directly in tests/test_shutdown_sequence.py): whether it still accepts new work, and
its shutdown, begun once whoever calls it.

A runtime refuses what it is asked to start once it is closed (``shutdown`` was called)
or has given up (its parts failed more often than the restart intensity allows, or its
supervisor failed: ``SelfHealing.gave_up_reason``); the error says which
(``closing.closed_error``). Shutdown is one sequence: the runtime is closed under the
submission lock (a submission is admitted whole or refused), the supervisor is asked to
drain, and a :class:`~actors._core.teardown.Teardown` stops the parts on a thread of
its own once it has. A later or concurrent call waits for that same teardown. A wait
from inside an operation is refused (it would wait for itself); a bounded wait that
runs out says what the teardown is still waiting for (``teardown.describe_wait``) and
leaves it running.

Why a separate object: the order (closed before the drain, one teardown, the refusals
read from the same state) is the shutdown's invariant, apart from the facade's
documented methods; the facade gives it the readers that explain a wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from actors._core.closing import closed_error
from actors._core.restarts import SelfHealing
from actors._core.supervisor_stats import SupervisorStats
from actors._core.teardown import Step, Teardown, describe_wait
from actors._errors import RuntimeClosedError

__all__ = ["ShutdownSequence"]


class ShutdownSequence:
    """Closed once :meth:`run` is called; refusing once closed or given up."""

    __slots__ = (
        "_drain",
        "_healing",
        "_in_operation",
        "_lock",
        "_running",
        "_steps",
        "_submit_lock",
        "_subscription",
        "_supervisor",
        "_teardown",
        "closed",
    )

    def __init__(
        self,
        *,
        submit_lock: threading.Lock,
        healing: SelfHealing,
        drain: Callable[[bool], threading.Event],
        steps: Callable[[], Sequence[Step]],
        in_operation: Callable[[], bool],
        running: Callable[[], Sequence[str]],
        supervisor: Callable[[], SupervisorStats],
        subscription: Callable[[], object],
    ) -> None:
        self.closed = False
        self._submit_lock = submit_lock
        self._healing = healing
        self._drain = drain  # asks the supervisor to drain; set once it has
        self._steps = steps  # the teardown's steps, in their order
        self._in_operation = in_operation  # whether the caller runs an operation
        # What a timed-out wait explains itself with (see describe_wait).
        self._running, self._supervisor, self._subscription = running, supervisor, subscription
        self._teardown: Teardown | None = None  # once shutdown has begun
        self._lock = threading.Lock()  # a concurrent caller waits for the same teardown

    @property
    def refusing(self) -> bool:
        """Shut down, or given up (its shutdown, on a thread of its own, may not have
        closed it yet): nothing new is accepted."""
        return self.closed or self._healing.gave_up_reason is not None

    def closed_error(self, consequence: str) -> RuntimeClosedError:
        """The error of a refused call: given up (and why) or shut down, then what the
        refusal means for the call (``consequence``)."""
        return closed_error(self._healing.gave_up_reason, consequence)

    def refusal(self, consequence: str) -> RuntimeClosedError | None:
        """The error for a call refused because nothing new is accepted, else None."""
        return self.closed_error(consequence) if self.refusing else None

    def run(self, *, wait: bool, cancel_pending: bool, timeout: float | None) -> None:
        """Close, begin the shutdown unless it has begun, and with ``wait`` return once
        its teardown is over (:class:`TimeoutError` past ``timeout`` seconds, the
        teardown carrying on; :class:`RuntimeError` from a step that failed)."""
        if wait and self._in_operation():
            raise RuntimeError(
                "shutdown(wait=True) was called from inside an operation, which would wait "
                "for itself; call shutdown(wait=False) there"
            )
        with self._lock:
            with self._submit_lock:
                self.closed = True
            if self._teardown is None:
                drained = self._drain(cancel_pending)
                self._teardown = Teardown(self._steps())
                self._teardown.start(drained)
            teardown = self._teardown
        if not wait:
            return
        if not teardown.join(timeout):
            waits_for = describe_wait(
                teardown.step,
                running=self._running,
                supervisor=self._supervisor,
                subscription=self._subscription,
            )
            raise TimeoutError(
                f"shutdown still waiting after {timeout} s for {waits_for}; it carries on "
                "in the background"
            )
        if teardown.error is not None:
            raise RuntimeError("shutdown failed") from teardown.error
