"""THROWAWAY (scratch commit only): the 'label' option, declared with nothing else but
its migration and a docs line, works everywhere a task option goes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import SqliteStore, TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.cli import URL_ENV_VAR, main
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service

WAIT = 15.0
LABEL = "scène 3 ✓"


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return dict(params)


def test_label_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path, operations={"echo": echo}) as manager:
        # 1. TaskManager.create_task(label=...), the snapshot and the status dict
        by_python = manager.create_task("echo", {"n": 1}, label=LABEL)
        status = manager.wait(by_python, timeout=WAIT)
        snapshot = manager.runtime.snapshot(by_python)
        assert snapshot is not None
        print(
            "python: status label",
            repr(status["label"]),
            "snapshot.options.label",
            repr(snapshot.options.label),
        )
        assert status["label"] == snapshot.options.label == LABEL
        plain = manager.create_task("echo")
        assert manager.wait(plain, timeout=WAIT)["label"] is None

        with running_service(manager, ServiceConfig(tokens=None)) as running:
            # 2. POST /v1/tasks on a real server, and GET /v1/tasks/{id}
            created = httpx.post(
                f"{running.url}/v1/tasks",
                json={"operation": "echo", "params": {"n": 2}, "label": "by http"},
                timeout=WAIT,
            )
            assert created.status_code == 202, created.text
            by_http = created.json()["data"]["task_id"]
            manager.wait(by_http, timeout=WAIT)
            shown = httpx.get(f"{running.url}/v1/tasks/{by_http}", timeout=WAIT).json()
            print("http: GET /v1/tasks/{id} label", repr(shown["data"]["label"]))
            assert shown["data"]["label"] == "by http"
            bad = httpx.post(
                f"{running.url}/v1/tasks", json={"operation": "echo", "label": 5}, timeout=WAIT
            )
            print(
                "http: label=5 ->",
                bad.status_code,
                bad.json()["error"]["details"]["problems"][0]["location"],
            )
            assert bad.status_code == 400

            # 3. the CLI's --label flag
            monkeypatch.setenv(URL_ENV_VAR, running.url)
            with pytest.raises(SystemExit):
                main(["submit", "--help"])
            assert "--label" in capsys.readouterr().out
            assert main(["submit", "echo", "--label", "by cli"]) == 0
            by_cli = capsys.readouterr().out.strip()
            cli_status = manager.wait(by_cli, timeout=WAIT)
            print("cli: submit --label -> status label", repr(cli_status["label"]))
            assert cli_status["label"] == "by cli"
        before = {t: manager.get_task_status(t) for t in (by_python, by_http, by_cli, plain)}

    # 4. after reopening the SQLite file
    with TaskManager(num_workers=1, store=path, operations={"echo": echo}) as reopened:
        after = {t: reopened.get_task_status(t) for t in before}
        again = reopened.runtime.snapshot(by_python)
    assert again is not None
    print(
        "reopened: labels",
        {t[:8]: s["label"] for t, s in after.items() if s},
        "snapshot.options.label",
        repr(again.options.label),
    )
    assert after == before
    assert again.options.label == LABEL
    assert SqliteStore(path).location == str(path)
