"""How big each scenario runs: the full sizes of issue 7 and the small ``--quick`` ones."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True, slots=True)
class Sizes:
    """Counts for every scenario; recorded in ``latest.json`` with the results."""

    # B1 throughput
    throughput_tasks: int
    throughput_rounds: int
    throughput_workers: int
    # B2 get_task_status latency
    status_finished_tasks: int
    status_idle_calls: int
    status_busy_calls: int
    status_warmup_calls: int
    # B3 timeout precision
    timeout_tasks: int
    timeout_workers: int
    # B4 cancel latency
    cancel_pending_tasks: int
    cancel_running_samples: int
    cancel_running_workers: int
    cancel_forced_samples: int
    # B5 hard stops
    hard_stops: int
    hard_stop_workers: int
    # B8 durability
    durability_tasks: int
    durability_workers: int
    durability_submitters: int
    durability_rounds: int
    # B9 process-mode overhead
    process_overhead_tasks: int
    process_overhead_rounds: int
    # B6 memory per record
    memory_records: int
    memory_batch: int
    # B7 scaling
    scaling_levels: tuple[int, ...]
    scaling_batch: int
    scaling_status_calls: int
    scaling_rounds: int
    scaling_populate_batch: int
    scaling_population_budget_seconds: float
    # B10 the HTTP service's overhead
    service_status_calls: int
    service_warmup_calls: int
    service_create_tasks: int
    service_event_tasks: int
    service_rounds: int
    # B11 a cold child start
    child_start_samples: int
    child_start_rounds: int
    # --peers (issue 17): the peer rows of B1, B2, B8 and B9
    peer_tasks: int
    peer_rounds: int
    peer_status_calls: int
    peer_durable_tasks: int
    peer_process_tasks: int
    peer_cold_starts: int
    # B12 the HTTP service under concurrency
    http_clients: int
    http_requests: int
    http_rounds: int
    # B13 coroutine operations
    async_sleep_tasks: int
    async_sleep_seconds: float
    async_thread_tasks: int
    async_status_tasks: int
    async_status_calls: int
    async_overhead_tasks: int
    async_overhead_rounds: int
    # B14 isolation="ray" (opt-in: --only B14)
    ray_tasks: int
    ray_rounds: int
    ray_cancel_samples: int
    ray_start_samples: int


FULL = Sizes(
    throughput_tasks=20_000,
    throughput_rounds=5,
    throughput_workers=4,
    status_finished_tasks=1_000,
    status_idle_calls=10_000,
    status_busy_calls=300,
    status_warmup_calls=100,
    timeout_tasks=500,
    timeout_workers=50,
    cancel_pending_tasks=1_000,
    cancel_running_samples=200,
    cancel_running_workers=4,
    cancel_forced_samples=20,
    hard_stops=100,
    hard_stop_workers=5,
    durability_tasks=20_000,
    durability_workers=4,
    durability_submitters=4,
    durability_rounds=3,
    process_overhead_tasks=2_000,
    process_overhead_rounds=5,
    memory_records=50_000,
    memory_batch=1_000,
    scaling_levels=(1_000, 10_000, 100_000, 1_000_000),
    scaling_batch=2_000,
    scaling_status_calls=5_000,
    scaling_rounds=5,
    scaling_populate_batch=10_000,
    scaling_population_budget_seconds=600.0,
    service_status_calls=2_000,
    service_warmup_calls=50,
    service_create_tasks=1_000,
    service_event_tasks=200,
    service_rounds=3,
    child_start_samples=10,
    child_start_rounds=5,
    peer_tasks=5_000,
    peer_rounds=3,
    peer_status_calls=200,
    peer_durable_tasks=5_000,
    peer_process_tasks=5_000,
    peer_cold_starts=5,
    http_clients=32,
    http_requests=5_000,
    http_rounds=3,
    async_sleep_tasks=10_000,
    async_sleep_seconds=1.0,
    async_thread_tasks=40,
    async_status_tasks=10_000,
    async_status_calls=2_000,
    async_overhead_tasks=10_000,
    async_overhead_rounds=5,
    ray_tasks=1_200,
    ray_rounds=5,
    ray_cancel_samples=10,
    ray_start_samples=200,
)

QUICK = Sizes(
    throughput_tasks=2_000,
    throughput_rounds=1,
    throughput_workers=4,
    status_finished_tasks=200,
    status_idle_calls=1_000,
    status_busy_calls=50,
    status_warmup_calls=20,
    timeout_tasks=100,
    timeout_workers=50,
    cancel_pending_tasks=200,
    cancel_running_samples=20,
    cancel_running_workers=4,
    cancel_forced_samples=5,
    hard_stops=10,
    hard_stop_workers=5,
    durability_tasks=1_000,
    durability_workers=4,
    durability_submitters=4,
    durability_rounds=1,
    process_overhead_tasks=200,
    process_overhead_rounds=2,
    memory_records=2_000,
    memory_batch=1_000,
    scaling_levels=(1_000, 4_000),
    scaling_batch=1_000,
    scaling_status_calls=500,
    scaling_rounds=1,
    scaling_populate_batch=10_000,
    scaling_population_budget_seconds=60.0,
    service_status_calls=30,
    service_warmup_calls=5,
    service_create_tasks=30,
    service_event_tasks=5,
    service_rounds=1,
    child_start_samples=2,
    child_start_rounds=1,
    peer_tasks=200,
    peer_rounds=1,
    peer_status_calls=10,
    peer_durable_tasks=200,
    peer_process_tasks=100,
    peer_cold_starts=1,
    http_clients=8,
    http_requests=200,
    http_rounds=1,
    async_sleep_tasks=1_000,
    async_sleep_seconds=0.2,
    async_thread_tasks=8,
    async_status_tasks=1_000,
    async_status_calls=200,
    async_overhead_tasks=1_000,
    async_overhead_rounds=1,
    ray_tasks=300,
    ray_rounds=1,
    ray_cancel_samples=1,
    ray_start_samples=20,
)
