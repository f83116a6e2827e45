"""The dashboard page (``GET /``) in a real browser: Debian's Chromium, driven by
Playwright, against the real service on a loopback port.

Nothing is downloaded: Playwright drives ``/usr/bin/chromium`` (``.ci/run`` installs it
from Debian). Without it the module is skipped. Every wait is Playwright's ``expect`` with
a timeout (the page refreshes from the event stream, or by polling every 2 s when that
stream is not served), never a sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.dashboard_harness import CHROMIUM, WAIT_MS, Stepper, chromium, save_screenshot
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
def browser() -> Iterator[Any]:
    """Chromium, closed (and Playwright's driver stopped) at the end of the test."""
    with chromium(sync_api) as launched:
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
