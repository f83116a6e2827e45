"""GET /metrics: Prometheus counters from the manager's events, gauges from its stats."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import RetryPolicy, TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.metrics import ServiceMetrics
from storycore_tasks.service.webhooks import WebhookSender
from tests.gates import Gate
from tests.service_harness import RunningService, running_service

TOKEN = "prometheus-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 10.0


def scrape(service: RunningService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    answer = httpx.get(f"{service.url}/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class FailsOnce:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the first attempt fails")
        return "second time lucky"


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release()


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager], gate: Gate) -> TaskManager:
    manager = make_manager(num_workers=1, stop_grace=0.5)
    manager.register_operation("test.ok", lambda params, task: "ok")
    manager.register_operation("test.fail", _fail)
    manager.register_operation("test.slow", _until_cancelled)
    manager.register_operation("test.crashy", lambda params, task: "never")
    manager.register_operation("test.flaky", FailsOnce())
    manager.register_operation("test.gate", gate)
    return manager


def _fail(params: Mapping[str, Any], task: TaskContext) -> Any:
    raise ValueError("it fails")


def _until_cancelled(params: Mapping[str, Any], task: TaskContext) -> Any:
    task.wait_cancelled(WAIT)
    return "stopped"


@pytest.fixture
def service(manager: TaskManager) -> Iterator[RunningService]:
    tokens = TokenStore([(hash_token(TOKEN), Principal("prometheus", "admin"))])
    with running_service(manager, ServiceConfig(tokens=tokens)) as running:
        yield running


def test_counters_count_what_happened_and_gauges_read_the_manager(
    service: RunningService, manager: TaskManager, gate: Gate
) -> None:
    manager.faults.crash(operation="test.crashy")
    ran = [
        manager.create_task("test.ok"),
        manager.create_task("test.ok"),
        manager.create_task("test.fail"),
        manager.create_task("test.slow", timeout=0.1),
        manager.create_task("test.crashy", isolation="thread"),
        manager.create_task("test.flaky", retry=RetryPolicy(max_attempts=2, backoff=0)),
    ]
    outcomes = {task_id: manager.wait(task_id, timeout=WAIT) for task_id in ran}
    never_ran = manager.create_task("test.ok", delay=3600)
    assert manager.cancel_task(never_ran)
    # One running (holding the only worker) and one waiting for it.
    held = manager.create_task("test.gate")
    gate.wait_entered()
    queued = manager.create_task("test.ok")

    assert [outcomes[t]["status"] for t in ran] == ["completed"] * 2 + ["failed"] * 3 + [
        "completed"
    ]
    assert outcomes[ran[3]]["error"]["code"] == "TIMEOUT"
    assert outcomes[ran[4]]["error"]["code"] == "WORKER_CRASHED"

    # The counters follow the events on a thread of their own: wait for the last one.
    def all_counted() -> bool:
        samples = scrape(service)
        return (
            sum(
                value(samples, "storycore_tasks_finished_total", status=s)
                for s in ("completed", "failed", "cancelled")
            )
            == 7
            and value(samples, "storycore_tasks_created_total") == 9
        )

    assert wait_until(all_counted, timeout=WAIT)
    samples = scrape(service)
    assert value(samples, "storycore_tasks_created_total") == 9
    assert value(samples, "storycore_tasks_finished_total", status="completed") == 3
    assert value(samples, "storycore_tasks_finished_total", status="failed") == 3
    assert value(samples, "storycore_tasks_finished_total", status="cancelled") == 1
    assert value(samples, "storycore_tasks_timeouts_total") == 1
    assert value(samples, "storycore_tasks_crashes_total") == 1
    assert value(samples, "storycore_tasks_retries_total") == 1
    # Every ended task has a duration (from its creation if it never started).
    assert value(samples, "storycore_task_duration_seconds_count") == 7
    assert value(samples, "storycore_task_duration_seconds_sum") > 0
    assert value(samples, "storycore_task_duration_seconds_bucket", le="+Inf") == 7

    stats = manager.get_stats()
    for state, count in stats["status_counts"].items():
        assert value(samples, "storycore_tasks", state=state) == count
    assert value(samples, "storycore_tasks", state="running") == 1
    assert value(samples, "storycore_tasks", state="pending") == 1
    assert value(samples, "storycore_tasks_running") == 1
    assert value(samples, "storycore_tasks_queue_depth") == 1

    gate.release()
    assert manager.wait(held, timeout=WAIT)["status"] == "completed"
    assert manager.wait(queued, timeout=WAIT)["status"] == "completed"
    assert wait_until(
        lambda: value(scrape(service), "storycore_tasks_finished_total", status="completed") == 5,
        timeout=WAIT,
    )
    samples = scrape(service)
    assert value(samples, "storycore_tasks_running") == 0
    assert value(samples, "storycore_tasks_queue_depth") == 0


def test_metrics_need_a_token(service: RunningService) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = httpx.get(f"{service.url}/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_openapi_document_gives_the_text_format(service: RunningService) -> None:
    document = httpx.get(f"{service.url}/openapi.json").json()
    ok = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/plain; version=0.0.4; charset=utf-8"]
    for path in ("/v1/tasks/{task_id}/events", "/v1/events"):
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"]


def test_each_service_has_its_own_registry(make_manager: Callable[..., TaskManager]) -> None:
    manager = make_manager(num_workers=1)
    first, second = ServiceMetrics(manager), ServiceMetrics(manager)
    try:
        task_id = manager.create_task(lambda params, task: None)
        manager.wait(task_id, timeout=WAIT)
        assert wait_until(
            lambda: b"storycore_tasks_created_total 1.0" in first.render(), timeout=WAIT
        )
        assert wait_until(
            lambda: b"storycore_tasks_created_total 1.0" in second.render(), timeout=WAIT
        )
    finally:
        first.close()
        second.close()


def test_webhook_counters_are_exported_once_tracked(
    make_manager: Callable[..., TaskManager],
) -> None:
    manager = make_manager(num_workers=1)
    metrics = ServiceMetrics(manager)
    sender = WebhookSender(manager, secret="s", allowed_hosts=None, retry_seconds=1.0, timeout=1.0)
    try:
        assert b"storycore_webhooks" not in metrics.render()
        metrics.track_webhooks(sender)
        text = metrics.render().decode()
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples["storycore_webhooks_delivered_total"] == 0
        assert samples["storycore_webhooks_abandoned_total"] == 0
        assert samples["storycore_webhooks_pending"] == 0
    finally:
        sender.close()
        metrics.close()
