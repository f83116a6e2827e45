"""Prometheus metrics of the service, at ``GET /metrics`` (bearer token required).

Counters and the duration histogram count what happened while this service ran (they
start at 0 with it), from a subscription to the manager's events:

* ``storycore_tasks_created_total``
* ``storycore_tasks_finished_total{status="completed|failed|cancelled"}``
* ``storycore_tasks_timeouts_total``: tasks that ended by their timeout
* ``storycore_tasks_crashes_total``: tasks whose worker crashed (``WORKER_CRASHED``)
* ``storycore_tasks_retries_total``: retries scheduled
* ``storycore_task_duration_seconds``: a histogram of ended tasks' durations (from
  the start of the last attempt, or from creation for a task that never started, to
  the end: the terminal event's ``duration_ms``)

Gauges are read from ``manager.get_stats()`` at each scrape:

* ``storycore_tasks{state="pending|running|completed|failed|cancelled"}``: retained
  tasks by state
* ``storycore_tasks_queue_depth``: tasks waiting for a worker
* ``storycore_tasks_running``: operations running now

and, once :meth:`ServiceMetrics.track_webhooks` is called, the webhook sender's
``storycore_webhooks_{delivered,retried,abandoned}_total`` and
``storycore_webhooks_pending``.

Everything lives in a registry of the service's own, never ``prometheus_client``'s
global one, so several services (or tests) in one process do not collide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors import TERMINAL_STATUSES, TaskEvent, TaskStatus
from actors.logs import library_logger
from storycore_tasks.manager import TaskManager
from storycore_tasks.service.auth import Principal
from storycore_tasks.service.deps import ERROR_RESPONSES, AuthenticatedFirst, principal

if TYPE_CHECKING:
    from storycore_tasks.service.webhooks import WebhookSender

__all__ = ["CONTENT_TYPE", "ServiceMetrics", "router"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: Prometheus's text format."""

_log = library_logger("storycore_tasks.service")

_DURATION_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    float("inf"),
)


class _ManagerCollector(Collector):
    """The manager's gauges, read at scrape time."""

    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self._manager.get_stats()
        except Exception as exc:  # a manager shutting down: no gauges this scrape
            _log.warning("metrics.stats_failed", error=f"{type(exc).__name__}: {exc}")
            return []
        return self._families(stats)

    @staticmethod
    def _families(stats: dict[str, Any]) -> list[Metric]:
        counts = stats.get("status_counts", {})
        tasks = GaugeMetricFamily("storycore_tasks", "Retained tasks by state", labels=["state"])
        depth = GaugeMetricFamily("storycore_tasks_queue_depth", "Tasks waiting for a worker")
        running = GaugeMetricFamily("storycore_tasks_running", "Operations running now")
        if stats:
            for state in TaskStatus:
                tasks.add_metric([state.value], float(counts.get(state.value, 0)))
            depth.add_metric([], float(stats.get("queue_size", 0)))
            running.add_metric([], float(stats.get("running", 0)))
        return [tasks, depth, running]


class _WebhookCollector(Collector):
    def __init__(self, sender: WebhookSender) -> None:
        self._sender = sender

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._sender.stats())

    @staticmethod
    def _families(stats: dict[str, int] | None) -> list[Metric]:
        families: list[Metric] = []
        for name, what in (
            ("delivered", "Webhook deliveries answered with a 2xx"),
            ("retried", "Webhook attempts that failed and were retried"),
            ("abandoned", "Webhook deliveries given up"),
        ):
            family = CounterMetricFamily(f"storycore_webhooks_{name}", what)
            if stats is not None:
                family.add_metric([], float(stats[name]))
            families.append(family)
        pending = GaugeMetricFamily("storycore_webhooks_pending", "Webhook deliveries not over")
        if stats is not None:
            pending.add_metric([], float(stats["pending"]))
        families.append(pending)
        return families


class ServiceMetrics:
    """The service's Prometheus registry, fed by a subscription to the manager."""

    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager
        self.registry = CollectorRegistry(auto_describe=True)
        self.created = Counter("storycore_tasks_created", "Tasks created", registry=self.registry)
        self.finished = Counter(
            "storycore_tasks_finished",
            "Tasks ended, by status",
            ["status"],
            registry=self.registry,
        )
        for status in sorted(TERMINAL_STATUSES):
            self.finished.labels(status=status.value)  # exported at 0 from the start
        self.timeouts = Counter(
            "storycore_tasks_timeouts", "Tasks that timed out", registry=self.registry
        )
        self.crashes = Counter(
            "storycore_tasks_crashes",
            "Tasks whose worker crashed (WORKER_CRASHED)",
            registry=self.registry,
        )
        self.retries = Counter(
            "storycore_tasks_retries", "Retries scheduled", registry=self.registry
        )
        self.duration = Histogram(
            "storycore_task_duration_seconds",
            "Duration of ended tasks (from start, or creation if never started, to end)",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ManagerCollector(manager))
        self._subscription: str | None = manager.subscribe(
            self._on_event, events=["created", "retry", "terminal"]
        )

    def _on_event(self, event: TaskEvent) -> None:
        """On the subscription's own thread (prometheus_client's metrics are
        thread-safe)."""
        kind = event.kind
        if kind == "created":
            self.created.inc()
        elif kind == "retry_scheduled":
            self.retries.inc()
        elif kind in TERMINAL_STATUSES:
            self.finished.labels(status=kind).inc()
            outcome = event.data.get("outcome")
            if outcome == "TimedOut":
                self.timeouts.inc()
            elif outcome == "Crashed":
                self.crashes.inc()
            duration_ms = event.data.get("duration_ms")
            if isinstance(duration_ms, int | float) and not isinstance(duration_ms, bool):
                self.duration.observe(max(0.0, duration_ms / 1000.0))

    def track_webhooks(self, sender: WebhookSender) -> None:
        """Export the webhook sender's counters too."""
        self.registry.register(_WebhookCollector(sender))

    def render(self) -> bytes:
        """The metrics in Prometheus's text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop listening."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                self._manager.unsubscribe(subscription)
            except Exception as exc:
                _log.warning("metrics.unsubscribe_failed", error=f"{type(exc).__name__}: {exc}")


class PrometheusTextResponse(Response):
    media_type = CONTENT_TYPE


def metrics_of(request: Request) -> ServiceMetrics:
    """The service's metrics (``app.state.service.metrics``)."""
    metrics: ServiceMetrics = request.app.state.service.metrics
    return metrics


router = APIRouter(route_class=AuthenticatedFirst)


@router.get(
    "/metrics",
    response_class=PrometheusTextResponse,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
        },
    },
    tags=["service"],
)
def prometheus_metrics(
    request: Request, who: Annotated[Principal, Depends(principal)]
) -> PrometheusTextResponse:
    """Prometheus metrics (send the bearer token: ``authorization`` in the scrape
    config)."""
    return PrometheusTextResponse(metrics_of(request).render())
