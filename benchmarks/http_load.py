"""B12: the HTTP service under concurrency, against a bare FastAPI JSON route served by
the same uvicorn set-up in the same run (issue 17; B11 was taken by the cold child start).

Two servers in this process, each with ``serve_in_thread`` (``storycore-tasks serve``'s
uvicorn settings) on a free loopback port: the service
(``create_app(manager, ServiceConfig(tokens=None))`` around ``TaskManager(num_workers=4)``
with a named no-op operation), and a bare FastAPI app whose two routes are plain sync
handlers, as the service's are (FastAPI runs both in its thread pool): ``GET /bare``
answers a stored status-sized JSON dict, ``POST /bare`` validates a body of the create
request's shape and answers 202 with a small JSON dict, touching nothing else.

The load comes from :mod:`benchmarks.load_client` in its own process: ``http_clients``
keep-alive connections (opened before the clock starts), each sending its next request
once its previous response has arrived, ``http_requests`` requests in all. Four
contenders alternate round by round (the order rotating):

- status: ``GET /v1/tasks/{id}`` of one completed task, against ``GET /bare``;
- create: ``POST /v1/tasks`` of the named no-op, against ``POST /bare``. The created tasks
  are waited for (untimed) before the next contender runs.

Each contender's figures for a round are requests/s (requests / the client's seconds
from the first request to the last response) and the p99 of the per-request latency;
the ratio of a round is ours / the bare route of that round, the reported one their
median. Every response must carry the expected status code (200, or 202 for the
creates), or the round fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from benchmarks.harness import alternate, median, percentile
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import serve_in_thread

__all__ = ["STATUS_TARGET_RATIO", "TARGET_CREATE_RATIO", "TARGET_P99_MS", "bare_app", "run"]

OPERATION = "bench.noop"
WORKERS = 4
STATUS_TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
TARGET_CREATE_RATIO = 0.25
START_TIMEOUT_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 300.0
DRAIN_TIMEOUT_SECONDS = 120.0

STATUS, BARE_GET, CREATE, BARE_POST = "status", "bare GET", "create", "bare POST"


def _noop(params: Any, task: Any) -> None:
    return None


class _BareCreate(BaseModel):
    operation: str
    params: dict[str, Any] = {}


def bare_app(status_body: dict[str, Any]) -> FastAPI:
    """The baseline: a FastAPI app with a GET answering ``status_body`` and a POST
    validating a create-shaped body, both sync handlers doing nothing else."""
    app = FastAPI()

    @app.get("/bare")
    def bare_get() -> JSONResponse:
        return JSONResponse(status_body)

    @app.post("/bare", status_code=202)
    def bare_post(body: _BareCreate) -> JSONResponse:
        return JSONResponse({"status": "ok", "data": {"accepted": body.operation}}, 202)

    return app


@contextmanager
def _served(app: Any) -> Iterator[int]:
    with serve_in_thread(app, start_timeout=START_TIMEOUT_SECONDS) as served:
        port = urlsplit(served.url).port
        if port is None:
            raise AssertionError(f"no port in {served.url}")
        yield port


def _load(
    port: int, method: str, path: str, body: str, clients: int, requests: int
) -> dict[str, Any]:
    """Run the load generator in its own process; its figures."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.load_client",
            "--port",
            str(port),
            "--method",
            method,
            "--path",
            path,
            "--body",
            body,
            "--clients",
            str(clients),
            "--requests",
            str(requests),
        ],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the load generator failed ({done.returncode}): {done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def _ended(manager: TaskManager) -> int:
    lifetime = manager.get_stats()["lifetime_stats"]
    return int(lifetime["total_completed"] + lifetime["total_failed"] + lifetime["total_cancelled"])


def run(sizes: Sizes) -> list[Part]:
    clients, requests, rounds = sizes.http_clients, sizes.http_requests, sizes.http_rounds
    per_round: dict[str, list[dict[str, float]]] = {
        name: [] for name in (STATUS, BARE_GET, CREATE, BARE_POST)
    }
    create_body = json.dumps({"operation": OPERATION})
    with TaskManager(num_workers=WORKERS, operations={OPERATION: _noop}) as manager:
        finished = manager.create_task(OPERATION)
        status = manager.wait(finished, timeout=DRAIN_TIMEOUT_SECONDS)
        if status["status"] != "completed":
            raise AssertionError(f"the task read by the status requests ended {status}")
        stored = {"status": "ok", "data": status, "error": None, "metadata": {}}
        with (
            _served(create_app(manager, ServiceConfig(tokens=None))) as ours,
            _served(bare_app(stored)) as bare,
        ):

            def contender(
                name: str, port: int, method: str, path: str, body: str, expect: int
            ) -> Callable[[], float]:
                def once() -> float:
                    before = _ended(manager)
                    figures = _load(port, method, path, body, clients, requests)
                    if figures["statuses"] != {str(expect): requests}:
                        raise AssertionError(f"{name}: answers {figures['statuses']}")
                    if name == CREATE:  # the created tasks end before the next contender
                        deadline = time.perf_counter() + DRAIN_TIMEOUT_SECONDS
                        while _ended(manager) < before + requests:
                            if time.perf_counter() > deadline:
                                raise TimeoutError("the created tasks did not all end")
                            time.sleep(0.01)
                    rate = requests / figures["seconds"]
                    per_round[name].append(
                        {"rate": rate, "p99": percentile(figures["latencies"], 99)}
                    )
                    return rate

                return once

            alternate(
                {
                    STATUS: contender(STATUS, ours, "GET", f"/v1/tasks/{finished}", "", 200),
                    BARE_GET: contender(BARE_GET, bare, "GET", "/bare", "", 200),
                    CREATE: contender(CREATE, ours, "POST", "/v1/tasks", create_body, 202),
                    BARE_POST: contender(BARE_POST, bare, "POST", "/bare", create_body, 202),
                },
                rounds,
            )
    config = {
        "clients": clients,
        "requests_per_round": requests,
        "rounds": rounds,
        "workers": WORKERS,
        "auth": "off",
        "client": "benchmarks.load_client (asyncio, keep-alive, its own process)",
    }
    return [
        _part(
            f"HTTP service under {clients} concurrent keep-alive clients: GET /v1/tasks/{{id}} "
            "of a completed task",
            per_round[STATUS],
            per_round[BARE_GET],
            "bare FastAPI GET route",
            f"≥ {STATUS_TARGET_RATIO} x the bare route's requests/s, p99 ≤ {TARGET_P99_MS:g} ms",
            lambda ratio, p99: ratio >= STATUS_TARGET_RATIO and p99 <= TARGET_P99_MS,
            config,
        ),
        _part(
            f"HTTP service under {clients} concurrent keep-alive clients: POST /v1/tasks of a "
            "named no-op",
            per_round[CREATE],
            per_round[BARE_POST],
            "bare FastAPI POST route (validates the same body)",
            f"≥ {TARGET_CREATE_RATIO} x the bare route's requests/s",
            lambda ratio, p99: ratio >= TARGET_CREATE_RATIO,
            config,
        ),
    ]


def _part(
    scenario: str,
    ours: list[dict[str, float]],
    bare: list[dict[str, float]],
    bare_name: str,
    target: str,
    met: Callable[[float, float], bool],
    config: dict[str, Any],
) -> Part:
    ratios = [o["rate"] / b["rate"] for o, b in zip(ours, bare, strict=True)]
    ratio = median(ratios)
    rate, p99 = median([r["rate"] for r in ours]), median([r["p99"] for r in ours]) * 1e3
    bare_rate, bare_p99 = median([r["rate"] for r in bare]), median([r["p99"] for r in bare]) * 1e3
    return Part(
        scenario=scenario,
        status="measured",
        mode="thread",
        measured=f"{rate:,.0f} requests/s, p99 {p99:,.1f} ms (median of {len(ours)})",
        baseline=f"{bare_name}: {bare_rate:,.0f} requests/s, p99 {bare_p99:,.1f} ms",
        ratios={"requests/s": round(ratio, 4), "p99": round(p99 / bare_p99, 3)},
        figures={
            "requests_per_second_per_round": [round(r["rate"]) for r in ours],
            "p99_ms_per_round": [round(r["p99"] * 1e3, 2) for r in ours],
            "ratio_per_round": [round(x, 4) for x in ratios],
            "median_requests_per_second": round(rate),
            "median_p99_ms": round(p99, 2),
        },
        baseline_figures={
            "requests_per_second_per_round": [round(r["rate"]) for r in bare],
            "p99_ms_per_round": [round(r["p99"] * 1e3, 2) for r in bare],
        },
        config=config,
        target=target,
        result=verdict(met(ratio, p99)),
    )
