"""B10: what the HTTP service adds to a call, against the same call in process.

One ``TaskManager(num_workers=4)`` with a named no-op operation, served by
``create_app(manager, ServiceConfig(tokens=None))`` (no authentication) with
``serve_in_thread`` (``storycore-tasks serve``'s uvicorn settings: uvicorn's default loop
and HTTP protocol) on a free loopback port. The client is one ``httpx.Client`` (keep-alive, so
every request after the first reuses one connection; proxies from the environment
ignored). The in-process baseline calls the same manager, so both contenders pay for
what the service keeps subscribed to it (the event log and the metrics). Each part's
two contenders alternate (:func:`benchmarks.harness.alternate`) for several rounds, and
the figures are the medians over the rounds; the ratio is the median of the per-round
ratios.

- Status: ``GET /v1/tasks/{id}`` of one completed task, each call timed on its own
  (the response decoded, since a caller wants the dict), against
  ``manager.get_task_status(id)``; p50 and p99 per round. A few untimed calls first.
- Create: ``POST /v1/tasks`` of the named no-op, one request after another, timed from
  the first request until the manager's lifetime counters show every one of them ended,
  against ``manager.create_task`` of the same name; tasks per second.
- Event delivery: per task, ``POST /v1/tasks`` then ``GET /v1/tasks/{id}/events`` read
  until its ``completed`` event, timed from before the POST; against ``create_task``
  then ``manager.wait``. A no-op usually ends before its stream opens, so what this
  measures is mostly the two requests and the replay of the task's events, as a client
  that follows a task it just created sees it.

The server is stopped (its thread joined; its lifespan closes the event log and the
metrics) before the manager is shut down.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from benchmarks.harness import alternate, median, percentile, wait_all_done
from benchmarks.report import Part
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import serve_in_thread

__all__ = ["run"]

OPERATION = "bench.noop"
WORKERS = 4
START_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0


def _noop(params: Any, task: Any) -> None:
    return None


@contextmanager
def _serving(manager: TaskManager) -> Iterator[tuple[str, dict[str, Any]]]:
    """Serve the manager over HTTP until the block ends; yields the base URL and what
    uvicorn runs on. The manager is not shut down here."""
    app = create_app(manager, ServiceConfig(tokens=None))
    with serve_in_thread(app, start_timeout=START_TIMEOUT_SECONDS) as served:
        config = served.server.config
        yield (
            served.url,
            {
                "http": getattr(config.http_protocol_class, "__name__", str(config.http)),
                "loop": _loop_name(str(config.loop)),
            },
        )


def _loop_name(configured: str) -> str:
    """The event loop uvicorn runs: "auto" is uvloop where it is installed."""
    if configured != "auto":
        return configured
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _ended(manager: TaskManager) -> int:
    lifetime = manager.get_stats()["lifetime_stats"]
    return int(lifetime["total_completed"] + lifetime["total_failed"] + lifetime["total_cancelled"])


def _http_create(client: httpx.Client) -> str:
    response = client.post("/v1/tasks", json={"operation": OPERATION})
    if response.status_code != 202:
        raise AssertionError(f"POST /v1/tasks answered {response.status_code}: {response.text}")
    task_id: str = response.json()["data"]["task_id"]
    return task_id


# -- part 1: get_task_status ---------------------------------------------------------------


def _status_pair(
    manager: TaskManager, client: httpx.Client, task_id: str, calls: int, warmup: int, rounds: int
) -> dict[str, list[dict[str, float]]]:
    """Per round and contender: p50 and p99 in seconds."""
    path = f"/v1/tasks/{task_id}"
    per_round: dict[str, list[dict[str, float]]] = {"http": [], "in_process": []}

    def http_call() -> float:
        start = time.perf_counter()
        response = client.get(path)
        body = response.json()
        elapsed = time.perf_counter() - start
        if response.status_code != 200 or body["data"]["status"] != "completed":
            raise AssertionError(f"GET {path} answered {response.status_code}: {body}")
        return elapsed

    def local_call() -> float:
        start = time.perf_counter()
        status = manager.get_task_status(task_id)
        elapsed = time.perf_counter() - start
        if status is None or status["status"] != "completed":
            raise AssertionError(f"get_task_status({task_id}) gave {status}")
        return elapsed

    def timed(name: str, call: Any) -> Any:
        def run() -> float:
            for _ in range(warmup):
                call()
            samples = [call() for _ in range(calls)]
            figures = {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}
            per_round[name].append(figures)
            return figures["p50"]

        return run

    alternate(
        {"http": timed("http", http_call), "in_process": timed("in_process", local_call)}, rounds
    )
    return per_round


# -- part 2: create throughput -------------------------------------------------------------


def _create_pair(
    manager: TaskManager, client: httpx.Client, count: int, rounds: int
) -> dict[str, list[float]]:
    """Per round and contender: tasks per second."""

    def run(create: Any) -> Any:
        def once() -> float:
            before = _ended(manager)
            start = time.perf_counter()
            last_id = ""
            for _ in range(count):
                last_id = create()
            wait_all_done(manager, last_id, terminal=before + count)
            elapsed = time.perf_counter() - start
            return count / elapsed

        return once

    return alternate(
        {
            "http": run(lambda: _http_create(client)),
            "in_process": run(lambda: manager.create_task(OPERATION)),
        },
        rounds,
    )


# -- part 3: event delivery ----------------------------------------------------------------


def _until_completed(client: httpx.Client, task_id: str) -> tuple[float, list[str]]:
    """Open the task's event stream and read it until the ``completed`` event has fully
    arrived (its time), then to its end (so the connection goes back to the pool);
    returns that time and the kinds of events the stream carried."""
    kinds: list[str] = []
    arrived: float | None = None
    kind: str | None = None
    with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(
                f"the event stream answered {response.status_code}: {response.text}"
            )
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line == "" and kind is not None:
                kinds.append(kind)
                if kind == "completed" and arrived is None:
                    arrived = time.perf_counter()
                kind = None
    if arrived is None:
        raise AssertionError(f"the stream of {task_id} ended without completed: {kinds}")
    return arrived, kinds


def _events_pair(
    manager: TaskManager, client: httpx.Client, count: int, rounds: int
) -> dict[str, Any]:
    """Per round and contender: p50 and p99 in seconds; and the kinds each stream
    carried, counted."""
    per_round: dict[str, list[dict[str, float]]] = {"http": [], "in_process": []}
    streams: dict[str, int] = {}

    def http_once() -> float:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            task_id = _http_create(client)
            arrived, kinds = _until_completed(client, task_id)
            samples.append(arrived - start)
            key = ",".join(kinds)
            streams[key] = streams.get(key, 0) + 1
        figures = {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}
        per_round["http"].append(figures)
        return figures["p50"]

    def local_once() -> float:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            task_id = manager.create_task(OPERATION)
            status = manager.wait(task_id, timeout=REQUEST_TIMEOUT_SECONDS)
            samples.append(time.perf_counter() - start)
            if status["status"] != "completed":
                raise AssertionError(f"task {task_id} ended {status['status']}")
        figures = {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}
        per_round["in_process"].append(figures)
        return figures["p50"]

    alternate({"http": http_once, "in_process": local_once}, rounds)
    return {**per_round, "streams": streams}


# -- the scenario ------------------------------------------------------------------------


def _medians(per_round: list[dict[str, float]], scale: float, digits: int) -> dict[str, float]:
    return {
        name: round(median([r[name] for r in per_round]) * scale, digits) for name in ("p50", "p99")
    }


def _ratios(http: list[float], local: list[float]) -> list[float]:
    return [h / b for h, b in zip(http, local, strict=True)]


def run(sizes: Sizes) -> list[Part]:
    rounds = sizes.service_rounds
    status_calls, warmup = sizes.service_status_calls, sizes.service_warmup_calls
    creates, streams = sizes.service_create_tasks, sizes.service_event_tasks
    # Left in reverse: the client closed, the server stopped, then the manager shut down.
    with (
        TaskManager(num_workers=WORKERS, operations={OPERATION: _noop}) as manager,
        _serving(manager) as (url, server),
        httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False) as client,
    ):
        finished = manager.create_task(OPERATION)
        if manager.wait(finished, timeout=REQUEST_TIMEOUT_SECONDS)["status"] != "completed":
            raise AssertionError("the finished task did not complete")
        status = _status_pair(manager, client, finished, status_calls, warmup, rounds)
        create = _create_pair(manager, client, creates, rounds)
        delivery = _events_pair(manager, client, streams, rounds)
    config: dict[str, Any] = {
        "workers": WORKERS,
        "rounds": rounds,
        "auth": "off",
        "client": "one httpx.Client (keep-alive)",
        **server,
    }

    status_ratios = _ratios(
        [r["p50"] for r in status["http"]], [r["p50"] for r in status["in_process"]]
    )
    http_us, local_us = _medians(status["http"], 1e6, 1), _medians(status["in_process"], 1e6, 1)
    create_ratios = _ratios(create["http"], create["in_process"])
    http_rate, local_rate = median(create["http"]), median(create["in_process"])
    event_ratios = _ratios(
        [r["p50"] for r in delivery["http"]], [r["p50"] for r in delivery["in_process"]]
    )
    http_ms, local_ms = _medians(delivery["http"], 1e3, 3), _medians(delivery["in_process"], 1e3, 3)
    of_rounds = f"median of {rounds}"
    return [
        Part(
            scenario="HTTP service: GET /v1/tasks/{id} of a completed task "
            "(no auth, one keep-alive client)",
            status="measured",
            mode="thread",
            measured=f"p50 {http_us['p50']:,.0f} µs, p99 {http_us['p99']:,.0f} µs "
            f"({status_calls:,} calls per round, {of_rounds})",
            baseline=f"in-process get_task_status: p50 {local_us['p50']:,.0f} µs, "
            f"p99 {local_us['p99']:,.0f} µs",
            ratios={"p50": round(median(status_ratios), 3)},
            figures={
                "latency_us": http_us,
                "per_round_us": [_medians([r], 1e6, 1) for r in status["http"]],
                "ratio_per_round": [round(x, 3) for x in status_ratios],
            },
            baseline_figures={
                "latency_us": local_us,
                "per_round_us": [_medians([r], 1e6, 1) for r in status["in_process"]],
            },
            config={**config, "calls": status_calls, "warmup_calls": warmup},
            target="report",
            result="report",
        ),
        Part(
            scenario=f"HTTP service: POST /v1/tasks of {creates:,} no-op named tasks, "
            "one after another, until all ended",
            status="measured",
            mode="thread",
            measured=f"{http_rate:,.0f} tasks/s ({of_rounds})",
            baseline=f"in-process create_task: {local_rate:,.0f} tasks/s",
            ratios={"throughput": round(median(create_ratios), 4)},
            figures={
                "tasks_per_second_per_round": [round(x) for x in create["http"]],
                "ratio_per_round": [round(x, 4) for x in create_ratios],
            },
            baseline_figures={
                "tasks_per_second_per_round": [round(x) for x in create["in_process"]],
            },
            config={**config, "tasks": creates},
            target="report",
            result="report",
        ),
        Part(
            scenario="HTTP service: POST /v1/tasks, then GET /v1/tasks/{id}/events "
            "until its completed event (no-op task)",
            status="measured",
            mode="thread",
            measured=f"p50 {http_ms['p50']:,.2f} ms, p99 {http_ms['p99']:,.2f} ms "
            f"({streams:,} tasks per round, {of_rounds})",
            baseline=f"in-process create_task + wait: p50 {local_ms['p50']:,.2f} ms, "
            f"p99 {local_ms['p99']:,.2f} ms",
            ratios={"p50": round(median(event_ratios), 3)},
            figures={
                "latency_ms": http_ms,
                "per_round_ms": [_medians([r], 1e3, 3) for r in delivery["http"]],
                "ratio_per_round": [round(x, 3) for x in event_ratios],
                "stream_event_kinds": delivery["streams"],
            },
            baseline_figures={
                "latency_ms": local_ms,
                "per_round_ms": [_medians([r], 1e3, 3) for r in delivery["in_process"]],
            },
            config={**config, "tasks": streams},
            target="report",
            result="report",
        ),
    ]
