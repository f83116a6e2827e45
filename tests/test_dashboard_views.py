"""The dashboard's views in headless Chromium against the real service: a task's detail
(by link, back button included), the list's filters, search, order and pages, the
cancel confirmation, the chart, stale rows while the service is gone, and the phone
layout. Screenshots go to $STORYCORE_TASKS_ARTIFACTS (else the test's tmp_path).

Every wait is Playwright's ``expect`` (or ``manager.wait``) with a timeout, never a sleep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import serve_in_thread
from tests.dashboard_harness import (
    CHROMIUM,
    PHONE,
    RELEASE_TIMEOUT,
    WAIT_MS,
    Stepper,
    auth,
    chromium,
    new_page,
    row,
    save_screenshot,
    sign_in,
)
from tests.service_harness import RunningService, running_service

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
expect = sync_api.expect

ADMIN_TOKEN = "views-admin-token"
ALICE_TOKEN = "views-alice-token"
BOB_TOKEN = "views-bob-token"
WAIT = 10.0
XSS_RESULT = "<img src=x onerror=window.__xss=3>"  # no quotes: JSON shows it as is
XSS_PARAM = "<script>window.__xss=4</script><b>bold</b>"
XSS_ERROR = '<img src=x onerror="window.__xss=5">'
PENDING_TASKS = 200  # hundreds of rows: the table pages them


def _fail(params: Mapping[str, Any], task: TaskContext) -> Any:
    raise ValueError(f"frame {params.get('scene')} is corrupt")


def _slow(params: Mapping[str, Any], task: TaskContext) -> Any:
    task.partial_result = {"frames_rendered": 9}
    task.wait_cancelled(RELEASE_TIMEOUT)  # until its timeout stops it
    return None


def _echo(params: Mapping[str, Any], task: TaskContext) -> Any:
    return {"echo": dict(params), "html": XSS_RESULT}


@pytest.fixture
def stepper() -> Iterator[Stepper]:
    steps = Stepper()
    yield steps
    steps.finish_all()  # no operation outlives the test


def _tokens() -> TokenStore:
    return TokenStore(
        [
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
            (hash_token(ALICE_TOKEN), Principal("alice", "user")),
            (hash_token(BOB_TOKEN), Principal("bob", "user")),
        ]
    )


def _manager(make_manager: Callable[..., TaskManager], stepper: Stepper) -> TaskManager:
    manager = make_manager(num_workers=4)
    manager.register_operation("demo.steps", stepper)
    manager.register_operation("demo.fail", _fail)
    manager.register_operation("demo.slow", _slow)
    manager.register_operation("demo.echo", _echo)
    manager.register_operation("demo.flaky", _echo)
    manager.register_operation("render.other", _echo)
    return manager


@pytest.fixture
def service(make_manager: Callable[..., TaskManager], stepper: Stepper) -> Iterator[RunningService]:
    with running_service(_manager(make_manager, stepper), ServiceConfig(tokens=_tokens())) as run:
        yield run


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(sync_api, tmp_path) as launched:
        yield launched


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """The pages' script errors: none may happen."""
    seen: list[str] = []
    yield seen
    assert seen == []


def _create(client: httpx.Client, token: str, operation: str, **body: Any) -> str:
    answer = client.post("/v1/tasks", json={"operation": operation, **body}, headers=auth(token))
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


def _shown_time(iso: str) -> str:
    """A status dict's time as the detail view shows it (UTC, to the second)."""
    return iso[:19].replace("T", " ") + " UTC"


def _json_of(locator: Any) -> Any:
    return json.loads(locator.text_content())


def _ids(page: Any) -> list[str]:
    return [r.get_attribute("data-task-id") for r in page.locator("#task-rows tr").all()]


def _fits_width(page: Any, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide at a {width} px viewport"


def test_task_detail_explains_what_happened(
    service: RunningService, browser: Any, errors: list[str], tmp_path: Path
) -> None:
    """A task's detail view (#/tasks/<id>, from a row or a link, the back button included)
    shows its error code, message and remedy, result, partial result, params, timings,
    attempts with each one's error, injected faults, owner and isolation, exactly as the
    API gives them, and every value as text."""
    url, manager = service.url, service.manager
    retry = {"max_attempts": 2, "backoff": 0, "jitter": False}
    manager.faults.raise_error(ValueError("flaky frame"), operation="demo.flaky", times=1)
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        failed = _create(client, ALICE_TOKEN, "demo.fail", params={"scene": 3})
        timed_out = _create(client, ALICE_TOKEN, "demo.slow", timeout=0.3)
        echoed = _create(client, ALICE_TOKEN, "demo.echo", params={"title": XSS_PARAM})
        evil_error = _create(client, ALICE_TOKEN, "demo.fail", params={"scene": XSS_ERROR})
        retried = _create(client, BOB_TOKEN, "demo.flaky", params={"n": 1}, retry=retry)
        tasks = [failed, timed_out, echoed, evil_error, retried]
        for task_id in tasks:
            manager.wait(task_id, timeout=WAIT)
        status = {
            task_id: client.get(f"/v1/tasks/{task_id}", headers=auth(ADMIN_TOKEN)).json()["data"]
            for task_id in tasks
        }

    page = sign_in(new_page(browser, errors), url + "/", ADMIN_TOKEN, expect)
    expect(page.locator("#who")).to_have_text("signed in as ops (admin)")

    # The table: the error code next to the state, where there is one.
    expect(row(page, failed).locator("[data-field=state]")).to_have_text("failed", timeout=WAIT_MS)
    expect(row(page, failed).locator("[data-field=error-code]")).to_have_text("INTERNAL_ERROR")
    expect(row(page, timed_out).locator("[data-field=error-code]")).to_have_text("TIMEOUT")
    expect(row(page, echoed).locator("[data-field=error-code]")).to_be_hidden()

    # A click on the row opens its detail, at its own address.
    row(page, failed).locator("[data-field=operation]").click()
    expect(page).to_have_url(f"{url}/#/tasks/{failed}")
    expect(page.locator("#tasks")).to_be_hidden()
    body = page.locator("#detail-body")
    error = status[failed]["error"]
    error_box = body.locator("[data-section=error]")
    expect(page.locator("#detail-id")).to_have_text(failed)
    expect(page.locator("#detail-state")).to_have_text("failed")
    expect(page.locator("#detail-code")).to_have_text("INTERNAL_ERROR")
    expect(error_box.locator("[data-field=error-code]")).to_have_text("INTERNAL_ERROR")
    expect(error_box.locator("[data-field=error-message]")).to_have_text(error["message"])
    expect(error_box.locator("[data-field=error-remedy]")).to_have_text(error["remediation"])
    assert "frame 3 is corrupt" in error["message"]
    assert _json_of(error_box.locator("[data-field=error-details]")) == error["details"]
    assert _json_of(body.locator("[data-field=params]")) == {"scene": 3}
    expect(body.locator("[data-field=owner]")).to_have_text("alice")
    expect(body.locator("[data-field=operation]")).to_have_text("demo.fail")
    expect(body.locator("[data-field=isolation]")).to_contain_text("thread")
    expect(body.locator("[data-field=priority]")).to_have_text("normal")
    timing = status[failed]
    expect(body.locator("[data-field=created-at]")).to_have_text(_shown_time(timing["created_at"]))
    expect(body.locator("[data-field=started-at]")).to_have_text(_shown_time(timing["started_at"]))
    expect(body.locator("[data-field=ended-at]")).to_have_text(_shown_time(timing["ended_at"]))
    for field in ("waited", "ran", "total"):
        expect(body.locator(f"[data-field={field}]")).to_have_text(re.compile(r"^\d+(\.\d+)? m?s$"))
    expect(body.locator("[data-field=attempts] li")).to_have_text(
        [f"failed: INTERNAL_ERROR: {error['message']}"]
    )
    expect(page.locator("#detail-cancel")).to_be_hidden()  # it has ended
    assert body.locator("[data-section=result], [data-section=faults]").count() == 0
    save_screenshot(page, tmp_path, "detail-failed.png")

    # The detail is rebuilt only when its own task changes: text selected in it (to be
    # copied) stays selected while other tasks come and go.
    message = error_box.locator("[data-field=error-message]")
    message.select_text()
    another = manager.create_task("demo.echo", user="alice")
    manager.wait(another, timeout=WAIT)
    expect(page.locator("#task-count")).to_have_text(f"{len(tasks) + 1} tasks", timeout=WAIT_MS)
    assert page.evaluate("String(window.getSelection())") == error["message"]

    # The back button returns to the list; forward opens the task again.
    page.go_back()
    expect(page.locator("#tasks")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#detail")).to_be_hidden()
    page.go_forward()
    expect(page.locator("#detail-id")).to_have_text(failed, timeout=WAIT_MS)

    # A link opens the detail in a new tab too, after the sign-in: a timeout says so,
    # with the partial result it kept.
    linked = sign_in(new_page(browser, errors), f"{url}/#/tasks/{timed_out}", ADMIN_TOKEN, expect)
    expect(linked.locator("#detail-code")).to_have_text("TIMEOUT", timeout=WAIT_MS)
    body = linked.locator("#detail-body")
    timeout_error = status[timed_out]["error"]
    expect(body.locator("[data-field=error-remedy]")).to_have_text(timeout_error["remediation"])
    assert _json_of(body.locator("[data-field=partial-result]")) == {"frames_rendered": 9}
    expect(body.locator("[data-field=timeout]")).to_have_text("300 ms")
    expect(body.locator("[data-field=params]")).to_have_text("(none)")
    save_screenshot(linked, tmp_path, "detail-timeout.png")

    # A retried task: each attempt and how it ended, the injected fault named.
    linked.goto(f"{url}/#/tasks/{retried}")
    expect(linked.locator("#detail-state")).to_have_text("completed", timeout=WAIT_MS)
    first_attempt = status[retried]["attempt_errors"][0]
    fault = status[retried]["injected_faults"][0]["fault"]
    expect(body.locator("[data-field=attempts] li")).to_have_text(
        [
            f"failed: {first_attempt['code']}: {first_attempt['message']}"
            f" (injected fault: {fault})",
            "completed",
        ]
    )
    expect(body.locator("[data-field=injected-faults] li")).to_have_text([f"attempt 1: {fault}"])
    assert _json_of(body.locator("[data-field=result]")) == status[retried]["result"]
    expect(body.locator("[data-field=owner]")).to_have_text("bob")

    # User data is text, never markup: a result, a param and an error message.
    linked.goto(f"{url}/#/tasks/{echoed}")
    expect(linked.locator("#detail-state")).to_have_text("completed", timeout=WAIT_MS)
    assert _json_of(body.locator("[data-field=result]")) == {
        "echo": {"title": XSS_PARAM},
        "html": XSS_RESULT,
    }
    expect(body.locator("[data-field=result]")).to_contain_text(XSS_RESULT)
    assert _json_of(body.locator("[data-field=params]")) == {"title": XSS_PARAM}
    linked.goto(f"{url}/#/tasks/{evil_error}")
    expect(body.locator("[data-field=error-message]")).to_contain_text(XSS_ERROR, timeout=WAIT_MS)
    save_screenshot(linked, tmp_path, "detail-markup-as-text.png")
    for shown in (page, linked):
        assert shown.locator("main img, main script, main b").count() == 0
        assert shown.evaluate("window.__xss") is None

    # A task that is not there, or is another user's, is said to be not here.
    linked.goto(f"{url}/#/tasks/00000000-0000-4000-8000-000000000000")
    expect(linked.locator("#detail-missing")).to_contain_text("No task", timeout=WAIT_MS)
    alice = sign_in(new_page(browser, errors), f"{url}/#/tasks/{retried}", ALICE_TOKEN, expect)
    expect(alice.locator("#detail-missing")).to_contain_text("another user", timeout=WAIT_MS)
    expect(alice.locator("#who")).to_have_text("signed in as alice (user)")
    alice.click("#detail-back")
    expect(row(alice, failed)).to_be_visible(timeout=WAIT_MS)
    expect(row(alice, retried)).to_have_count(0)


def test_list_counts_finds_orders_pages_and_confirms(
    service: RunningService, stepper: Stepper, browser: Any, errors: list[str], tmp_path: Path
) -> None:
    """Hundreds of tasks, created while the page is open: counts per state are the
    filters, a search finds a task by id, operation or owner, running tasks come first
    (oldest as they are), the rows come in pages of 50, a cancel needs a confirmation, and
    the chart counts what ended."""
    manager = service.manager
    running = [manager.create_task("demo.steps", user="alice") for _ in range(2)]
    for task_id in running:
        stepper.wait_started(task_id)
    done = manager.create_task("demo.echo", user="bob")
    manager.wait(done, timeout=WAIT)
    page = sign_in(new_page(browser, errors), service.url + "/", ADMIN_TOKEN, expect)
    expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
    expect(page.locator("#task-count")).to_have_text("3 tasks", timeout=WAIT_MS)

    # Hundreds created at once arrive live (one reload of the list, not a request each).
    pending = [
        manager.create_task("demo.steps", {"n": n}, user="alice", delay=600)
        for n in range(PENDING_TASKS)
    ]
    other = manager.create_task("render.other", user="carol", delay=600)
    total = len(running) + 1 + PENDING_TASKS + 1
    expect(page.locator("#task-count")).to_have_text(f"{total} tasks", timeout=WAIT_MS)
    counts = {"all": total, "running": 2, "pending": PENDING_TASKS + 1, "completed": 1}
    for state, count in {**counts, "failed": 0, "cancelled": 0}.items():
        expect(page.locator(f"[data-filter={state}] .count")).to_have_text(str(count))

    # Running first by default (though the oldest), then pending newest first; 50 a page.
    rows = page.locator("#task-rows tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#page-info")).to_have_text(f"1\u201350 of {total}")
    shown = _ids(page)
    assert set(shown[:2]) == set(running)
    assert shown[2:5] == [other, pending[-1], pending[-2]]
    page.click("#page-next")
    expect(page.locator("#page-info")).to_have_text(f"51\u2013100 of {total}")
    expect(rows).to_have_count(50)
    assert not set(_ids(page)) & set(shown)
    for first in range(100, total, 50):
        page.click("#page-next")
        last = min(first + 50, total)
        expect(page.locator("#page-info")).to_have_text(f"{first + 1}\u2013{last} of {total}")
        expect(rows).to_have_count(last - first)
    expect(page.locator("#page-next")).to_be_disabled()
    expect(page.locator("#page-prev")).to_be_enabled()

    # Other orders start again at the first page.
    page.select_option("#sort", "oldest")
    expect(page.locator("#page-info")).to_have_text(f"1\u201350 of {total}")
    expect(rows.first).to_have_attribute("data-task-id", running[0])
    page.select_option("#sort", "newest")
    expect(rows.first).to_have_attribute("data-task-id", other)
    page.select_option("#sort", "active")

    # Search by operation, by id prefix, by owner; the counts follow the search.
    page.fill("#search", "render.oth")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", other)
    expect(page.locator("#task-count")).to_have_text(f"1 of {total} tasks")
    expect(page.locator("[data-filter=pending] .count")).to_have_text("1")
    expect(page.locator("#pager")).to_be_hidden()
    page.fill("#search", pending[7][:8])
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", pending[7])
    page.fill("#search", "BOB")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", done)
    page.fill("#search", "no such thing")
    expect(page.locator("#empty")).to_have_text("No task matches.")
    page.fill("#search", "")
    expect(rows).to_have_count(50)

    # A state's count is its filter.
    page.click("[data-filter=running]")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-filter=running]")).to_have_attribute("aria-pressed", "true")
    save_screenshot(page, tmp_path, "list-running.png")

    # Cancel asks first: "Keep it" (or Escape) sends nothing, "Cancel task" cancels.
    row(page, running[0]).locator("button[data-action=cancel]").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(f"{running[0][:8]} (demo.steps)")
    expect(page.locator("#confirm-keep")).to_be_focused()
    save_screenshot(page, tmp_path, "cancel-confirmation.png")
    page.click("#confirm-keep")
    expect(dialog).to_be_hidden()
    row(page, running[0]).locator("button[data-action=cancel]").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    row(page, running[1]).locator("button[data-action=cancel]").click()
    page.click("#confirm-ok")
    assert manager.wait(running[1], timeout=WAIT)["status"] == "cancelled"
    expect(page.locator("[data-filter=cancelled] .count")).to_have_text("1", timeout=WAIT_MS)
    expect(rows).to_have_count(1)  # the running filter no longer shows it
    status = manager.get_task_status(running[0])
    assert status is not None
    assert status["status"] == "running"  # kept: no cancel was sent

    # The chart: what ended in the last minutes (from the event stream and the
    # statuses), and the running and pending counts over time.
    chart = page.locator("#chart")
    expect(chart.locator("rect[data-kind=cancelled]")).to_have_count(1, timeout=WAIT_MS)
    expect(chart.locator("rect[data-kind=completed]")).to_have_count(1)
    expect(chart.locator("polyline[data-series=running]")).to_have_count(1)
    expect(page.locator("#chart-summary")).to_contain_text(
        "1 completed, 0 failed, 1 cancelled", timeout=WAIT_MS
    )
    expect(page.locator("#chart-summary")).to_contain_text(
        f"now 1 running, {PENDING_TASKS + 1} pending", timeout=WAIT_MS
    )
    page.click("[data-filter=all]")
    expect(rows).to_have_count(50)
    save_screenshot(page, tmp_path, "list-desktop.png")

    # At phone width: no sideways scrolling, the list and a detail are usable.
    phone_page = new_page(browser, errors, viewport=PHONE)
    phone = sign_in(phone_page, service.url + "/", ADMIN_TOKEN, expect)
    expect(phone.locator("#task-rows tr")).to_have_count(50, timeout=WAIT_MS)
    expect(row(phone, running[0]).locator("button[data-action=cancel]")).to_be_visible()
    _fits_width(phone, PHONE["width"])
    save_screenshot(phone, tmp_path, "phone-list.png", full_page=False)
    phone.click("[data-filter=completed]")
    row(phone, done).locator("[data-field=id] a").click()
    expect(phone.locator("#detail-state")).to_have_text("completed", timeout=WAIT_MS)
    _fits_width(phone, PHONE["width"])
    save_screenshot(phone, tmp_path, "phone-detail.png")


def test_stale_rows_while_the_service_is_unreachable(
    make_manager: Callable[..., TaskManager],
    stepper: Stepper,
    browser: Any,
    errors: list[str],
    tmp_path: Path,
) -> None:
    """When the service goes away the page says so, marks every row stale and turns
    cancelling off (in the list, the detail and the confirmation); when it is back on
    its address the rows are live again and cancel works."""
    manager = _manager(make_manager, stepper)
    config = ServiceConfig(tokens=_tokens())
    task_id = manager.create_task("demo.steps", user="alice")
    stepper.wait_started(task_id)
    with serve_in_thread(create_app(manager, config)) as first:
        url = first.url
        page = sign_in(new_page(browser, errors), url + "/", ADMIN_TOKEN, expect)
        the_row = row(page, task_id)
        cancel = the_row.locator("button[data-action=cancel]")
        expect(cancel).to_be_enabled(timeout=WAIT_MS)
        expect(page.locator("#stale-banner")).to_be_hidden()
        expect(the_row).to_have_attribute("data-stale", "false")
        cancel.click()  # the confirmation is open when the service goes
        expect(page.locator("#confirm")).to_be_visible()
    # The server has stopped (its open event stream cut at its graceful timeout).
    expect(page.locator("#stale-banner")).to_contain_text("cannot be reached", timeout=WAIT_MS)
    expect(page.locator("#connection")).to_have_text("offline")
    expect(the_row).to_have_attribute("data-stale", "true")
    expect(the_row.locator("[data-field=state]")).to_have_text("running")  # as last seen
    expect(page.locator("#confirm-ok")).to_be_disabled()
    page.click("#confirm-keep")
    expect(cancel).to_be_disabled()
    save_screenshot(page, tmp_path, "stale.png")
    the_row.locator("[data-field=id] a").click()
    expect(page.locator("#detail-state")).to_have_text("running", timeout=WAIT_MS)
    expect(page.locator("#detail-cancel")).to_be_disabled()
    page.go_back()

    port = int(url.rsplit(":", 1)[1])
    with serve_in_thread(create_app(manager, config), port=port):
        expect(page.locator("#stale-banner")).to_be_hidden(timeout=WAIT_MS)
        expect(the_row).to_have_attribute("data-stale", "false")
        expect(cancel).to_be_enabled()
        cancel.click()
        page.click("#confirm-ok")
        assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
        expect(the_row.locator("[data-field=state]")).to_have_text("cancelled", timeout=WAIT_MS)
        page.context.close()
