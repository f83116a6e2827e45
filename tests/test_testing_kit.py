"""The testing kit: ``storycore_tasks.testing`` (advance, settle, LifecycleCapture, the
re-exports) and the pytest plugin's fixtures (manual_clock, task_manager,
captured_lifecycle), the latter exercised through pytester on small test files.

pytester runs the inner sessions in this process (``runpytest``), except where a fresh
process matters (``runpytest_subprocess``). The inner sessions do not load
tests/conftest.py; the plugin comes from its ``pytest11`` entry point.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

import actors
import actors.testing
import storycore_tasks.pytest_plugin
from storycore_tasks import TaskManager
from storycore_tasks import testing as kit
from storycore_tasks.testing import LifecycleCapture, advance

pytest_plugins = ["pytester"]

MakeManager = Callable[..., TaskManager]

BOUND = 20.0  # seconds: an upper bound for a loaded machine, never a duration we expect

# A thread the inner "leaky" test starts waits on this; set once the inner run is over.
LEAK_RELEASE = threading.Event()


@pytest.fixture
def leak_release() -> Iterator[threading.Event]:
    LEAK_RELEASE.clear()
    yield LEAK_RELEASE
    LEAK_RELEASE.set()


# -- the plugin, through pytester ------------------------------------------------------------


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("storycore_tasks")
    assert plugin is storycore_tasks.pytest_plugin


def test_a_half_hour_timeout_in_virtual_time(pytester: pytest.Pytester) -> None:
    """task_manager runs on manual_clock when the test asks for both; advance() moves it
    and returns once the timeout is recorded: 1800 s pass in well under a second."""
    pytester.makepyfile(
        """
        import threading

        from storycore_tasks.testing import ManualClock, advance


        def test_timeout(task_manager, manual_clock):
            assert isinstance(manual_clock, ManualClock)
            assert task_manager.runtime.clock is manual_clock
            entered = threading.Event()

            def render(params, task):
                entered.set()
                task.wait_cancelled(30)
                return "late"

            task_id = task_manager.create_task(render, timeout=1800)
            assert entered.wait(10)
            advance(task_manager, 1799.999)
            assert task_manager.get_task_status(task_id)["status"] == "running"
            advance(task_manager, 0.001)
            status = task_manager.get_task_status(task_id)
            assert status["status"] == "failed"
            assert status["error"]["code"] == "TIMEOUT"
            assert status["error"]["details"]["timeout_seconds"] == 1800
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.duration < BOUND


def test_the_marker_passes_options_to_the_manager(pytester: pytest.Pytester) -> None:
    """@pytest.mark.task_manager(...) options reach TaskManager (the marker is registered:
    --strict-markers accepts it); without it the defaults and a real clock apply;
    positional arguments are refused with a clear error."""
    pytester.makepyfile(
        """
        import pytest

        from storycore_tasks.testing import ManualClock

        clock = ManualClock()


        @pytest.mark.task_manager(num_workers=2, default_timeout=5.0, clock=clock)
        def test_options(task_manager):
            assert task_manager.get_stats()["num_workers"] == 2
            assert task_manager.runtime.clock is clock
            task_id = task_manager.create_task(lambda params, task: "ok")
            assert task_manager.wait(task_id, timeout=10)["timeout"] == 5.0


        def test_defaults(task_manager):
            assert task_manager.get_stats()["num_workers"] == 4
            assert not isinstance(task_manager.runtime.clock, ManualClock)


        @pytest.mark.task_manager(2)
        def test_positional(task_manager):
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_positional*", "*keyword arguments only*"])


def test_a_leaked_thread_is_an_error_at_teardown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, leak_release: threading.Event
) -> None:
    """A test that leaves a thread running passes its call but errors at teardown,
    naming the thread; a clean test beside it passes."""
    monkeypatch.setattr(storycore_tasks.pytest_plugin, "_LEAK_GRACE_SECONDS", 0.2)
    pytester.makepyfile(
        """
        import threading

        from tests.test_testing_kit import LEAK_RELEASE


        def test_leaky(task_manager):
            threading.Thread(
                target=LEAK_RELEASE.wait, args=(30,), name="leaky-thread", daemon=True
            ).start()


        def test_clean(task_manager):
            task_id = task_manager.create_task(lambda params, task: "ok")
            assert task_manager.wait(task_id, timeout=10)["result"] == "ok"
        """
    )
    result = pytester.runpytest()
    leak_release.set()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaky*",
            "*left resources behind*leaky-thread*",
        ]
    )
    assert "test_clean" not in "\n".join(line for line in result.outlines if "ERROR" in line)


def test_captured_lifecycle_waits_for_events(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest


        def test_events(task_manager, captured_lifecycle):
            task_id = task_manager.create_task(lambda params, task: "ok", user="ann")
            done = captured_lifecycle.wait_for("task.completed", task_id=task_id, timeout=10)
            assert done["task_id"] == task_id
            names = captured_lifecycle.of_task(task_id)
            # The registry's own events in order (the supervisor's interleave with them).
            registry = [n for n in names if n.startswith("task.")]
            assert registry == ["task.created", "task.started", "task.completed"]
            assert [e["task_id"] for e in captured_lifecycle.named("task.created")] == [task_id]
            other = task_manager.create_task(lambda params, task: "ok")
            picked = captured_lifecycle.wait_for(
                "task.completed", timeout=10, where=lambda e: e["task_id"] == other
            )
            assert picked["task_id"] == other
            with pytest.raises(TimeoutError, match="no 'task.never' event"):
                captured_lifecycle.wait_for("task.never", timeout=0.05)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_the_first_process_isolated_test_of_a_session_is_not_a_leak(
    pytester: pytest.Pytester,
) -> None:
    """In a fresh interpreter, a test whose task_manager runs one process-isolated task
    and shuts down cleanly must pass; the leak check blames the resource tracker."""
    pytester.makepyfile(
        test_first_process="""
        import os

        import pytest


        def getpid(params, task):
            return os.getpid()


        @pytest.mark.task_manager(num_workers=1, isolation="process")
        def test_one_process_task(task_manager):
            task_id = task_manager.create_task(getpid)
            assert task_manager.wait(task_id, timeout=30)["result"] != os.getpid()
        """
    )
    pytester.makeconftest(
        """
        import storycore_tasks.pytest_plugin

        storycore_tasks.pytest_plugin._LEAK_GRACE_SECONDS = 0.5  # fail fast
        """
    )
    result = pytester.runpytest_subprocess()
    assert "left resources behind" not in result.stdout.str()
    result.assert_outcomes(passed=1)


# -- LifecycleCapture directly ----------------------------------------------------------------


def test_events_from_many_threads_are_all_captured_in_order() -> None:
    """8 threads x 200 events at once: all 1600 captured, each thread's in its order; a
    wait_for started before them wakes for the very last one."""
    threads_count, per_thread = 8, 200
    start = threading.Barrier(threads_count)

    def emit(number: int) -> None:
        log = structlog.get_logger("kit-test")
        start.wait(BOUND)
        for index in range(per_thread):
            log.info("tick", thread=number, n=index)

    with LifecycleCapture() as capture:
        seen: dict[str, Any] = {}

        def waiter() -> None:
            seen["last"] = capture.wait_for(
                "tick",
                timeout=BOUND,
                where=lambda e: e["thread"] == 7 and e["n"] == per_thread - 1,
            )

        waiting = threading.Thread(target=waiter)
        waiting.start()
        workers = [threading.Thread(target=emit, args=(k,)) for k in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(BOUND)
        waiting.join(BOUND)
        ticks = capture.named("tick")

    assert len(ticks) == threads_count * per_thread
    for number in range(threads_count):
        assert [e["n"] for e in ticks if e["thread"] == number] == list(range(per_thread))
    assert all(e["log_level"] == "info" for e in ticks)
    assert seen["last"]["thread"] == 7
    assert seen["last"]["n"] == per_thread - 1


def test_a_configured_structlog_is_restored_as_it_was() -> None:
    """Inside, events go to the capture (every level, debug included) and not to the
    configured processors; afterwards the configuration is the same as before and events
    go there again, not to the capture."""
    delivered: list[str] = []

    def keep(logger: Any, method: str, event_dict: Any) -> Any:
        delivered.append(event_dict["event"])
        raise structlog.DropEvent

    structlog.configure(
        processors=[keep],
        wrapper_class=structlog.make_filtering_bound_logger(30),  # warnings and up
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    before = structlog.get_config()
    log = structlog.get_logger("kit-test")
    with LifecycleCapture() as capture:
        log.debug("inside")
    log.warning("outside")

    assert [e["event"] for e in capture.events] == ["inside"]
    assert capture.events[0]["log_level"] == "debug"
    assert delivered == ["outside"]
    assert structlog.is_configured()
    assert structlog.get_config() == before


def test_an_unconfigured_structlog_is_left_unconfigured() -> None:
    """Also when the block raises."""
    structlog.reset_defaults()
    assert not structlog.is_configured()
    with LifecycleCapture() as capture:
        assert structlog.is_configured()
        structlog.get_logger().info("inside")
    assert not structlog.is_configured()
    assert [e["event"] for e in capture.events] == ["inside"]

    with pytest.raises(RuntimeError, match="boom"), LifecycleCapture():
        raise RuntimeError("boom")
    assert not structlog.is_configured()


def test_wait_for_names_what_it_saw_when_it_times_out() -> None:
    with LifecycleCapture() as capture:
        structlog.get_logger().info("task.created", task_id="t1")
        with pytest.raises(TimeoutError, match=r"no 'task.completed' event of t1") as raised:
            capture.wait_for("task.completed", task_id="t1", timeout=0.01)
    assert "task.created" in str(raised.value)
    assert capture.of_task("t1") == ["task.created"]
    assert capture.named("task.created", task_id="t2") == []


# -- advance, settle, re-exports -------------------------------------------------------------


def test_advance_needs_a_manual_clock(make_manager: MakeManager) -> None:
    manager = make_manager(num_workers=1)
    with pytest.raises(TypeError, match="ManualClock"):
        advance(manager, 1.0)


def test_advance_and_settle_make_due_work_visible(make_manager: MakeManager) -> None:
    """A task delayed by 60 s is pending until advance() reaches it; advance returns
    after the start is recorded, and settle() after the rest is."""
    clock = kit.ManualClock()
    manager = make_manager(num_workers=1, clock=clock)
    release = threading.Event()
    task_id = manager.create_task(lambda params, task: release.wait(BOUND), delay=60.0)
    advance(manager, 59.0)
    assert manager.get_task_status(task_id)["status"] == "pending"  # type: ignore[index]
    advance(manager, 1.0)
    assert manager.get_task_status(task_id)["status"] == "running"  # type: ignore[index]
    release.set()
    assert manager.wait(task_id, timeout=BOUND)["status"] == "completed"
    kit.settle(manager)
    assert manager.get_stats()["running"] == 0


def test_the_kit_re_exports_the_library_helpers() -> None:
    assert kit.ManualClock is actors.ManualClock
    assert kit.FaultPlan is actors.FaultPlan
    assert kit.assert_no_leaks is actors.testing.assert_no_leaks
    assert kit.ResourceSnapshot is actors.testing.ResourceSnapshot
    assert set(kit.__all__) >= {"advance", "settle", "LifecycleCapture", "ManualClock"}
