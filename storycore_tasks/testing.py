"""Testing your operations: virtual time, injected faults, captured lifecycle events and
leak checks. The pytest plugin (``storycore_tasks.pytest_plugin``, registered by entry
point) turns these into the fixtures ``task_manager``, ``manual_clock`` and
``captured_lifecycle``.

* :class:`ManualClock`: build a manager with ``clock=ManualClock()`` and move time with
  :func:`advance`; a 30-minute timeout is then tested in microseconds.
* ``manager.faults`` (a :class:`FaultPlan`): make chosen runs of an operation raise,
  hang, ignore cancellation, start late, crash or exceed a resource limit, by operation
  name or task id, without touching the operation. Every injected fault is named in the
  task's status (``injected_faults``) and logged as ``fault.injected``.
* :class:`LifecycleCapture`: the manager's structlog events, captured from every thread.
* :func:`assert_no_leaks`: the block leaves no thread, actor or child process behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog

from actors import FaultPlan, FaultRule, InjectedFaultError, ManualClock
from actors._clock import blocking_timeout
from actors.testing import ResourceSnapshot, assert_no_leaks
from storycore_tasks.manager import TaskManager

__all__ = [
    "FaultPlan",
    "FaultRule",
    "InjectedFaultError",
    "LifecycleCapture",
    "ManualClock",
    "ResourceSnapshot",
    "advance",
    "assert_no_leaks",
    "settle",
]


def advance(manager: TaskManager, seconds: float) -> None:
    """Move the manager's :class:`ManualClock` by ``seconds`` and return once what the
    timers that fell due caused (timeouts, retries, delays, retention) is recorded, so
    ``get_task_status`` shows it."""
    clock = manager.runtime.clock
    if not isinstance(clock, ManualClock):
        raise TypeError(
            f"advance() needs a manager built with clock=ManualClock(), this one runs on "
            f"{clock!r}; use the manual_clock fixture, or TaskManager(clock=ManualClock())"
        )
    clock.advance(seconds)
    settle(manager)


def settle(manager: TaskManager) -> None:
    """Return once the manager's supervisor and registry have handled every message sent
    to them before the call."""
    manager.runtime.sync()


class LifecycleCapture:
    """Captures every structlog event the manager logs, from any thread, in order.

    Use it as a context manager (the ``captured_lifecycle`` fixture does): while it is
    active, structlog's configuration is replaced by this capture (nothing is printed)
    and restored afterwards, as it was, or unconfigured if it was.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._saved: dict[str, Any] | None = None
        self._was_configured = False

    # -- capturing ---------------------------------------------------------------------

    def __enter__(self) -> LifecycleCapture:
        self._was_configured = structlog.is_configured()
        self._saved = structlog.get_config()
        structlog.configure(
            processors=[self._record],
            wrapper_class=structlog.make_filtering_bound_logger(0),  # every level
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._was_configured and self._saved is not None:
            structlog.configure(**self._saved)
        else:
            structlog.reset_defaults()

    def _record(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        entry = dict(event_dict)
        entry.setdefault("log_level", method_name)
        with self._cond:
            self._events.append(entry)
            self._cond.notify_all()
        raise structlog.DropEvent

    # -- reading -----------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every captured event so far (a copy), each a dict with ``event``."""
        with self._cond:
            return list(self._events)

    def named(self, event: str, *, task_id: str | None = None) -> list[dict[str, Any]]:
        """The captured events called ``event`` (of task ``task_id``, when given)."""
        return [e for e in self.events if e["event"] == event and _of(e, task_id)]

    def of_task(self, task_id: str) -> list[str]:
        """The names of one task's events, in order: ``["task.created", ...]``."""
        return [e["event"] for e in self.events if e.get("task_id") == task_id]

    def wait_for(
        self,
        event: str,
        *,
        task_id: str | None = None,
        timeout: float = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first event called ``event`` (of ``task_id``, matching ``where``),
        waiting up to ``timeout`` seconds for it; :class:`TimeoutError` if none comes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self._events:
                    if (
                        entry["event"] == event
                        and _of(entry, task_id)
                        and (where is None or where(entry))
                    ):
                        return dict(entry)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({e["event"] for e in self._events})
                    raise TimeoutError(
                        f"no {event!r} event{'' if task_id is None else f' of {task_id}'} "
                        f"within {timeout} s; captured kinds: {seen}"
                    )
                self._cond.wait(blocking_timeout(remaining))


def _of(entry: dict[str, Any], task_id: str | None) -> bool:
    return task_id is None or entry.get("task_id") == task_id
