"""The execution seam: where an operation runs is an :class:`ExecutionBackend`.

A back-end knows how to do each step of one attempt of an operation: start it, deliver
the cooperative stop, interrupt it, kill it, and report what happened as the facts the
registry already knows. It knows nothing of timing: the supervisor decides when each
step of the stop ladder is due (``stop_grace`` after the flag the interrupt, then the
kill), and a worker actor per task carries the supervisor's steps to the attempt.

Flow of one attempt::

    supervisor --start(spec, events)--> back-end --> Attempt (and the operation's context)
        events.started()        the operation is about to begin where it runs (a back-end
                                whose start is its hand-over has it recorded then instead)
        events.confirm_start()  on the back-end's own thread, before the operation runs:
                                with a durable store, waits until ``running`` is committed;
                                an outcome (a stop came first) ends the attempt unrun
        context                 progress and partial results, coalesced to the registry
        events.ended(outcome)   exactly once: Completed, Raised, Crashed, ResourceExhausted,
                                Cancelled, ...

Thread isolation (``actors._execution.thread_backend``), process isolation
(``actors._execution.process_backend``) and the event loop of coroutine operations
(``actors._execution.async_backend``) and a Ray cluster (``actors._execution.ray_backend``)
implement it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from actors._enums import Isolation
from actors._outcome import Outcome, StopReason

if TYPE_CHECKING:
    from actors._execution.published import Published
    from actors._records import TaskSpec

__all__ = ["Attempt", "AttemptEvents", "ExecutionBackend"]


class AttemptEvents(Protocol):
    """What a back-end reports about one attempt. Callable from any thread."""

    @property
    def published(self) -> Published | None:
        """The channel the attempt's context publishes through (progress, partial result,
        heartbeats, checkpoints): the supervisor reads the latest sign of life and
        checkpoint there. A back-end hands it to the context it makes."""
        ...

    def started(self, placement: Mapping[str, Any] | None = None) -> None:
        """The operation is about to begin (a child has the task, a node accepted it):
        ``running`` is recorded and the deadline armed, unless a stop came first (the
        attempt's start gate decides, without a round trip). ``placement``: where it
        runs, shown in the task's status (a Ray node's id and the worker's pid). Does not
        block."""

    def confirm_start(self, *, wait: bool = True) -> Outcome | None:
        """On the back-end's thread, after :meth:`started` and before the operation is
        called: with a durable store, blocks until ``running`` is committed. None means
        run it; an outcome (a stop came first, the start could not be stored) ends the
        attempt without running it, reported through :meth:`ended` by the back-end.
        ``wait=False`` never blocks: a commit not there yet reads as one that did not
        come in time (for a back-end that waited with :meth:`confirm_start_soon`)."""

    def confirm_start_soon(self, answer: Callable[[], None]) -> bool:
        """For a back-end that must not block (an event loop): True when
        :meth:`confirm_start` answers at once; otherwise ``answer()`` is called, from the
        registry's thread (perhaps twice), once it does."""

    def ended(self, outcome: Outcome) -> None:
        """The attempt is over (the operation returned or raised, or where it ran died):
        called exactly once, after which the back-end holds nothing of the attempt."""


class Attempt(Protocol):
    """The runtime's levers on one running attempt; user code never sees them. Each
    step may be called more than once and after the attempt ended (then it does nothing),
    from the worker actor's thread: none may block on the operation."""

    def stop(self, reason: StopReason) -> None:
        """The cooperative step: the operation's ``is_cancelled()`` turns true."""

    def interrupt(self, reason: StopReason) -> None:
        """The first forced step, ``stop_grace`` after :meth:`stop` (a thread gets
        ``TaskInterrupted`` raised in it; a child process gets SIGTERM)."""

    def kill(self, reason: StopReason) -> None:
        """Every later step: end the attempt by force where that is possible (SIGKILL of
        a child and its processes); a thread cannot be killed, so it is interrupted
        again."""


class ExecutionBackend(Protocol):
    """One place operations run."""

    @property
    def isolation(self) -> Isolation:
        """The ``isolation`` value that selects this back-end."""
        ...

    @property
    def starts_on_handover(self) -> bool:
        """True when :meth:`start` begins the operation at once, as a thread of the
        operation pool does (there is always a free one for a free slot): it then
        reports ``started`` inside :meth:`start`. False when the operation starts later
        (a child is acquired, a node has room): ``started`` comes from its thread."""
        ...

    @property
    def kill_ends_attempt(self) -> bool:
        """Whether :meth:`Attempt.kill` ends the attempt by force (a process); a thread
        back-end's kill is another interrupt, repeated more often."""
        ...

    def start(self, spec: TaskSpec, events: AttemptEvents) -> Attempt:
        """Begin one attempt of ``spec``'s operation; never blocks on the operation. The
        operation receives an object of the :class:`~actors.TaskContext` protocol, which
        the back-end makes (its progress reaches the registry, coalesced)."""
        ...

    def shutdown(self) -> None:
        """Release what the back-end holds (child processes, a cluster it started); called
        once no attempt runs any more. Idempotent."""
