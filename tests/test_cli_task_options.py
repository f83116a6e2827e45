"""The CLI's submit flags come from the task options' one declaration
(``actors.TaskOptions``): every option it offers is a flag, typed and checked by the
option's own check, and reaches the service as the HTTP API takes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from actors._options import options_of
from storycore_tasks import TaskManager
from storycore_tasks.cli import URL_ENV_VAR, main
from storycore_tasks.service.deps import ServiceConfig
from tests import service_ops
from tests.service_harness import RunningService, running_service

WAIT = 10.0


@pytest.fixture
def service(
    make_manager: Callable[..., TaskManager], monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningService]:
    manager = make_manager(operations=service_ops.OPERATIONS)
    with running_service(manager, ServiceConfig(tokens=None)) as running:
        monkeypatch.setenv(URL_ENV_VAR, running.url)
        yield running


def test_every_cli_option_is_a_submit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing lists the flags by hand: each option the declaration offers to the CLI
    shows in submit's help."""
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    shown = capsys.readouterr().out
    for declared in options_of(cli=True):
        assert "--" + declared.name.replace("_", "-") in shown
        assert declared.doc.split()[0] in shown


def test_submit_flags_reach_the_task(
    service: RunningService, capsys: pytest.CaptureFixture[str]
) -> None:
    """--priority, --delay, --timeout and repeated --depends-on reach the task as given."""
    assert main(["submit", "echo", "--params", '{"n": 1}']) == 0
    first = capsys.readouterr().out.strip()
    service.manager.wait(first, timeout=WAIT)
    argv = ["submit", "echo", "--priority", "high", "--delay", "3600", "--timeout", "7"]
    assert main([*argv, "--depends-on", first, "--depends-on", first]) == 0
    task_id = capsys.readouterr().out.strip()
    status = service.manager.get_task_status(task_id)
    assert status is not None
    assert (status["priority"], status["timeout"], status["status"]) == ("high", 7.0, "pending")
    assert status["depends_on"] == [first]
    assert status["scheduled_for"] is not None
    service.manager.cancel_task(task_id)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--timeout", "-1", "timeout must be > 0 seconds"),
        ("--delay", "1e12", "delay must be at most"),
        ("--memory-limit-mb", "0", "memory_limit_mb must be"),
        ("--timeout", "soon", "not a number"),
    ],
)
def test_a_bad_flag_value_is_refused_by_the_options_own_check(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["submit", "echo", flag, value])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
