"""The dashboard page (``GET /``) in a real browser: Debian's Chromium, driven by
Playwright, against the real service on a loopback port.

Nothing is downloaded: Playwright drives ``/usr/bin/chromium`` (``.ci/run`` installs it
from Debian). Without it the module is skipped. Every wait is Playwright's ``expect`` with
a timeout (the page refreshes from the event stream, or by polling every 2 s when that
stream is not served), never a sleep.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.dashboard_harness import (
    CHROMIUM,
    RELEASE_TIMEOUT,
    WAIT_MS,
    Stepper,
    chromium,
    save_screenshot,
)
from tests.service_harness import RunningService, running_service

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
expect = sync_api.expect

ADMIN_TOKEN = "ops-admin-token"
ALICE_TOKEN = "alice-user-token"
BOB_TOKEN = "bob-user-token"
XSS_OPERATION = '<img src=x onerror="window.__xss=1">'
XSS_USER = "<b>mallory</b><script>window.__xss=2</script>"


def _xss_operation(params: Mapping[str, Any], task: TaskContext) -> str:
    return "done"


_xss_operation.__qualname__ = XSS_OPERATION


@pytest.fixture
def stepper() -> Iterator[Stepper]:
    steps = Stepper()
    yield steps
    steps.finish_all()  # no operation outlives the test


@pytest.fixture
def service(make_manager: Callable[..., TaskManager], stepper: Stepper) -> Iterator[RunningService]:
    manager = make_manager(num_workers=4)
    manager.register_operation("demo.steps", stepper)
    tokens = TokenStore(
        [
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
            (hash_token(ALICE_TOKEN), Principal("alice", "user")),
            (hash_token(BOB_TOKEN), Principal("bob", "user")),
        ]
    )
    with running_service(manager, ServiceConfig(tokens=tokens)) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Chromium, closed (and Playwright's driver stopped) at the end of the test."""
    with chromium(sync_api, tmp_path) as launched:
        yield launched


def _create(client: httpx.Client, token: str, **body: Any) -> str:
    answer = client.post(
        "/v1/tasks", json={"operation": "demo.steps", **body}, headers=_auth(token)
    )
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _open_dashboard(browser: Any, url: str, token: str, errors: list[str]) -> Any:
    page = browser.new_context().new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    expect(page.locator("#login")).to_be_visible(timeout=WAIT_MS)
    page.fill("#token-input", token)
    page.click("#token-submit")
    expect(page.locator("#tasks")).to_be_visible(timeout=WAIT_MS)
    return page


def _row(page: Any, task_id: str) -> Any:
    return page.locator(f'tr[data-task-id="{task_id}"]')


def test_dashboard_in_chromium(
    service: RunningService, stepper: Stepper, browser: Any, tmp_path: Path
) -> None:
    errors: list[str] = []
    url = service.url
    with httpx.Client(base_url=url, timeout=10) as client:
        # The page itself needs no token, and says so to no crawler or frame.
        page_answer = client.get("/")
        assert page_answer.status_code == 200
        assert "text/html" in page_answer.headers["content-type"]
        assert "script-src 'self'" in page_answer.headers["content-security-policy"]
        assert client.get("/static/dashboard.js").status_code == 200
        assert client.get("/static/nothing.js").status_code == 404

        # A wrong token is refused on the sign-in form.
        page = browser.new_context().new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/")
        page.fill("#token-input", "not-a-token")
        page.click("#token-submit")
        expect(page.locator("#login-error")).to_contain_text("not valid", timeout=WAIT_MS)
        expect(page.locator("#tasks")).to_be_hidden()
        page.context.close()

        admin = _open_dashboard(browser, url, ADMIN_TOKEN, errors)
        # Live from the event stream where the service has one; else polling every 2 s.
        streams = "/v1/events" in client.get("/openapi.json").json()["paths"]
        expect(admin.locator("#connection")).to_have_text(
            "live" if streams else "polling every 2 s", timeout=WAIT_MS
        )

        # Tasks submitted over HTTP appear, with their owner; a delayed one stays pending.
        first = _create(client, ALICE_TOKEN)
        second = _create(client, BOB_TOKEN)
        waiting = _create(client, ALICE_TOKEN, delay=600)
        evil = service.manager.create_task(_xss_operation, user=XSS_USER)
        for task_id, owner in [(first, "alice"), (second, "bob"), (waiting, "alice")]:
            row = _row(admin, task_id)
            expect(row).to_be_visible(timeout=WAIT_MS)
            expect(row.locator("[data-field=owner]")).to_have_text(owner)
            expect(row.locator("[data-field=operation]")).to_have_text("demo.steps")
            expect(row.locator("[data-field=id]")).to_have_text(task_id[:8])
        expect(_row(admin, waiting).locator("[data-field=state]")).to_have_text("pending")

        # Progress moves the bar as the operation reports it.
        stepper.wait_started(first)
        stepper.wait_started(second)
        first_row = _row(admin, first)
        bar = first_row.locator("progress[data-field=progress]")
        expect(first_row.locator("[data-field=state]")).to_have_text("running", timeout=WAIT_MS)
        stepper.advance(first, 0.25)
        expect(bar).to_have_attribute("aria-valuenow", "25", timeout=WAIT_MS)
        stepper.advance(first, 0.6)
        expect(bar).to_have_attribute("aria-valuenow", "60", timeout=WAIT_MS)
        assert bar.evaluate("el => el.value") == pytest.approx(0.6)

        # Cancel, from the page, a running task (after saying yes to the confirmation).
        first_row.locator("button[data-action=cancel]").click()
        expect(admin.locator("#confirm")).to_be_visible(timeout=WAIT_MS)
        admin.click("#confirm-ok")
        expect(admin.locator("#confirm")).to_be_hidden(timeout=WAIT_MS)
        expect(first_row.locator("[data-field=state]")).to_have_text("cancelled", timeout=WAIT_MS)
        expect(first_row.locator("button[data-action=cancel]")).to_be_hidden()
        assert service.manager.wait(first, timeout=10)["status"] == "cancelled"

        # Another one runs to the end.
        stepper.advance(second, 1.0)
        second_row = _row(admin, second)
        expect(second_row.locator("[data-field=state]")).to_have_text("completed", timeout=WAIT_MS)
        expect(second_row.locator("[data-field=progress]")).to_have_attribute(
            "aria-valuenow", "100"
        )

        # Task data is text, never markup.
        evil_row = _row(admin, evil)
        expect(evil_row.locator("[data-field=state]")).to_have_text("completed", timeout=WAIT_MS)
        expect(evil_row.locator("[data-field=operation]")).to_contain_text(XSS_OPERATION)
        expect(evil_row.locator("[data-field=owner]")).to_have_text(XSS_USER)
        assert admin.locator("#task-rows img, #task-rows script, #task-rows b").count() == 0
        assert admin.evaluate("window.__xss") is None

        # The state filters.
        rows = admin.locator("#task-rows tr[data-task-id]:visible")
        expected = {
            "completed": {second, evil},
            "cancelled": {first},
            "pending": {waiting},
            "running": set(),
            "all": {first, second, waiting, evil},
        }
        for state, ids in expected.items():
            admin.click(f"#state-filters [data-filter={state}]")
            expect(admin.locator(f"[data-filter={state}] .count")).to_have_text(str(len(ids)))
            expect(rows).to_have_count(len(ids))
            assert {r.get_attribute("data-task-id") for r in rows.all()} == ids, state
        expect(admin.locator("#task-count")).to_have_text("4 tasks")

        save_screenshot(admin, tmp_path, "dashboard.png")

        # An owner sees only their own tasks, live too.
        alice = _open_dashboard(browser, url, ALICE_TOKEN, errors)
        expect(_row(alice, first)).to_be_visible(timeout=WAIT_MS)
        alice_rows = alice.locator("#task-rows tr[data-task-id]")
        expect(alice_rows).to_have_count(2)
        assert {r.get_attribute("data-task-id") for r in alice_rows.all()} == {first, waiting}
        later_bob = _create(client, BOB_TOKEN, delay=600)
        later_alice = _create(client, ALICE_TOKEN, delay=600)
        expect(_row(alice, later_alice)).to_be_visible(timeout=WAIT_MS)
        expect(_row(admin, later_bob)).to_be_visible(timeout=WAIT_MS)
        expect(alice_rows).to_have_count(3)
        expect(_row(alice, later_bob)).to_have_count(0)
        expect(alice.locator("[data-field=owner]")).to_have_text(["alice"] * 3)

        # Signed in: a reload keeps the token of this tab.
        alice.reload()
        expect(_row(alice, later_alice)).to_be_visible(timeout=WAIT_MS)
        expect(alice.locator("#login")).to_be_hidden()

    assert errors == []


def test_dashboard_without_auth(
    make_manager: Callable[..., TaskManager], stepper: Stepper, browser: Any
) -> None:
    """With --no-auth (no token store) the page asks for no token and shows every task."""
    manager = make_manager(num_workers=1)
    manager.register_operation("demo.steps", stepper)
    errors: list[str] = []
    with running_service(manager, ServiceConfig(tokens=None)) as running:
        task_id = manager.create_task("demo.steps", user="carol")
        stepper.wait_started(task_id)
        page = browser.new_context().new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(running.url + "/")
        expect(page.locator("#who")).to_have_text("authentication off", timeout=WAIT_MS)
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#sign-out")).to_be_hidden()
        row = _row(page, task_id)
        expect(row.locator("[data-field=owner]")).to_have_text("carol", timeout=WAIT_MS)
        stepper.advance(task_id, 0.5)
        expect(row.locator("[data-field=progress]")).to_have_attribute(
            "aria-valuenow", "50", timeout=WAIT_MS
        )
        stepper.advance(task_id, 1.0)
        expect(row.locator("[data-field=state]")).to_have_text("completed", timeout=WAIT_MS)
        page.context.close()
    assert errors == []


class LongWork:
    """An operation that checkpoints and beats, says it did, then waits until the test
    lets its task go."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._all_go = False  # once release_all: every "go", later ones too, is set

    def event(self, task_id: str, name: str) -> threading.Event:
        """The task's "reported" or "go" event."""
        with self._lock:
            event = self._events.setdefault((task_id, name), threading.Event())
            if name == "go" and self._all_go:
                event.set()
            return event

    def release_all(self) -> None:
        with self._lock:
            self._all_go = True
            for (_, name), event in self._events.items():
                if name == "go":
                    event.set()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        task.checkpoint({"frame": 7})
        task.heartbeat()
        self.event(task.task_id, "reported").set()
        if not self.event(task.task_id, "go").wait(RELEASE_TIMEOUT):
            raise TimeoutError("the test never let this task go")
        return {"gpus": list(task.gpu_indices)}


def _shown_time(iso: str) -> str:
    """A status dict's time as the detail view shows it (UTC, to the second)."""
    return iso[:19].replace("T", " ") + " UTC"


def test_the_detail_shows_long_work_and_resources(
    make_manager: Callable[..., TaskManager], browser: Any, tmp_path: Path
) -> None:
    """A task's detail shows its last sign of life, its checkpoint and when it came, its
    heartbeat timeout, what it asks for and holds and its GPU indices; a task waiting
    for the GPUs shows what it waits for, then what it holds once it runs."""
    op = LongWork()
    manager = make_manager(num_workers=2, resources={"gpu": 2, "vram_gb": 80})
    manager.register_operation("render", op)
    errors: list[str] = []
    try:
        with running_service(manager, ServiceConfig(tokens=None)) as running:
            holder = manager.create_task(
                "render", resources={"gpu": 2, "vram_gb": 24}, heartbeat_timeout=600
            )
            assert op.event(holder, "reported").wait(RELEASE_TIMEOUT)
            waiter = manager.create_task("render", resources={"gpu": 1})
            assert wait_until(
                lambda: (
                    (manager.get_task_status(holder) or {}).get("last_heartbeat_at") is not None
                ),
                timeout=RELEASE_TIMEOUT,
            )
            status = manager.get_task_status(holder)
            assert status is not None
            page = browser.new_context().new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{running.url}/#/tasks/{holder}")
            body = page.locator("#detail-body")
            expect(page.locator("#detail-state")).to_have_text("running", timeout=WAIT_MS)
            field = body.locator
            expect(field("[data-field=resources]")).to_have_text("gpu: 2, vram_gb: 24")
            expect(field("[data-field=resources-held]")).to_have_text("gpu: 2, vram_gb: 24")
            expect(field("[data-field=gpu-indices]")).to_have_text("0, 1")
            expect(field("[data-field=waiting-for]")).to_have_count(0)
            expect(field("[data-field=heartbeat-timeout]")).to_have_text("10m 0s")
            expect(field("[data-field=last-heartbeat-at]")).to_have_text(
                _shown_time(status["last_heartbeat_at"])
            )
            expect(field("[data-field=checkpointed-at]")).to_have_text(
                _shown_time(status["checkpointed_at"])
            )
            assert json.loads(field("[data-field=checkpoint]").text_content()) == {"frame": 7}
            expect(field("[data-field=placement-node]")).to_have_count(0)  # not on Ray
            save_screenshot(page, tmp_path, "detail-resources.png")

            page.goto(f"{running.url}/#/tasks/{waiter}")
            expect(page.locator("#detail-id")).to_have_text(waiter, timeout=WAIT_MS)
            expect(page.locator("#detail-state")).to_have_text("pending", timeout=WAIT_MS)
            expect(field("[data-field=waiting-for]")).to_have_text("gpu: 1", timeout=WAIT_MS)
            expect(field("[data-field=resources-held]")).to_have_count(0)
            expect(field("[data-field=checkpoint]")).to_have_count(0)  # none yet

            op.event(holder, "go").set()  # the holder ends; the waiter takes GPU 0
            assert manager.wait(holder, timeout=RELEASE_TIMEOUT)["status"] == "completed"
            expect(page.locator("#detail-state")).to_have_text("running", timeout=WAIT_MS)
            expect(field("[data-field=resources-held]")).to_have_text("gpu: 1", timeout=WAIT_MS)
            expect(field("[data-field=gpu-indices]")).to_have_text("0")
            expect(field("[data-field=waiting-for]")).to_have_count(0)
            op.event(waiter, "go").set()
            assert manager.wait(waiter, timeout=RELEASE_TIMEOUT)["result"] == {"gpus": [0]}
            page.context.close()
    finally:
        op.release_all()  # a failed test must not leave an operation blocked
    assert errors == []
