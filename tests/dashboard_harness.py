"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright (no
browser download), an operation whose progress the test sets, the sign-in, and the
screenshots saved as artifacts."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actors import TaskContext

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS_ENV = "STORYCORE_TASKS_ARTIFACTS"
"""Where screenshots go (a folder); unset, each test's own ``tmp_path``."""
WAIT_MS = 10_000  # a poll is every 2 s: this is five of them
RELEASE_TIMEOUT = 30.0  # an operation never blocks longer than this
PHONE = {"width": 390, "height": 844}


class Stepper:
    """An operation whose progress the test sets: ``advance(task_id, fraction)`` moves
    that task to ``fraction`` (1.0 completes it). It stops when cancelled."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._targets: dict[str, float] = {}
        self._started: dict[str, threading.Event] = {}

    def _event(self, task_id: str) -> threading.Event:
        with self._changed:
            return self._started.setdefault(task_id, threading.Event())

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self._event(task.task_id).set()
        progress = 0.0
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while time.monotonic() < deadline:
            with self._changed:
                # Wakes at once on advance(); looks at is_cancelled() every 20 ms.
                if self._targets.get(task.task_id, 0.0) == progress:
                    self._changed.wait(timeout=0.02)
                target = self._targets.get(task.task_id, 0.0)
            if task.is_cancelled():
                return {"stopped_at": progress}
            if target != progress:
                progress = target
                task.update_progress(progress)
            if progress >= 1.0:
                return {"steps": "done"}
        raise TimeoutError("the test never finished this task")

    def advance(self, task_id: str, fraction: float) -> None:
        with self._changed:
            self._targets[task_id] = fraction
            self._changed.notify_all()

    def wait_started(self, task_id: str, timeout: float = 10.0) -> None:
        assert self._event(task_id).wait(timeout), f"task {task_id} never started"

    def finish_all(self) -> None:
        with self._changed:
            for task_id in self._started:
                self._targets[task_id] = 1.0
            self._changed.notify_all()


@contextmanager
def chromium(sync_api: Any, folder: Path) -> Iterator[Any]:
    """Chromium, closed (and Playwright's driver stopped) when the block ends. Its
    profile, crash reports and dconf cache go under ``folder`` (the test's own), never
    under $HOME."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(folder / "xdg-config"),
        "XDG_CACHE_HOME": str(folder / "xdg-cache"),
    }
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_page(browser: Any, errors: list[str], **context: Any) -> Any:
    """A page in a fresh context (its own sessionStorage) whose script errors land in
    ``errors``."""
    page = browser.new_context(**context).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def sign_in(page: Any, url: str, token: str, expect: Any) -> Any:
    """Open the dashboard at ``url`` (``/`` or a ``/#/...`` link) and sign in with
    ``token``."""
    page.goto(url)
    expect(page.locator("#login")).to_be_visible(timeout=WAIT_MS)
    page.fill("#token-input", token)
    page.click("#token-submit")
    expect(page.locator("#login")).to_be_hidden(timeout=WAIT_MS)
    return page


def row(page: Any, task_id: str) -> Any:
    return page.locator(f'tr[data-task-id="{task_id}"]')


def save_screenshot(page: Any, tmp_path: Path, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot ``name`` (the whole page, or what the viewport shows) under
    $STORYCORE_TASKS_ARTIFACTS (else the test's ``tmp_path``) and say where."""
    artifacts = os.environ.get(ARTIFACTS_ENV)
    folder = Path(artifacts) if artifacts else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    page.screenshot(path=str(shot), full_page=full_page)
    print(f"dashboard screenshot: {shot}")
    return shot
