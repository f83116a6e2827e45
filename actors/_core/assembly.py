"""A runtime's parts, built and started in their order, and the order they stop in.

``TaskRuntime`` is a facade: this module is where its parts are made and connected (the
store opened and recovered before any thread starts, then the timers, the notifier, the
registry, the execution back-ends and the supervisor, then the recovered tasks queued),
so the facade reads as its public methods and the wiring reads in one place, top to
bottom. The teardown's steps are here too: they stop the same parts, in reverse.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from actors._core.admission import AdmissionGate
from actors._core.board import TaskBoard
from actors._core.messages import (
    AbandonUnfinished,
    AwaitOperation,
    ConnectSupervisor,
    GetSnapshot,
    InjectFault,
    ResolveDependencies,
    ResourcesChanged,
    Shutdown,
    SubmitBatch,
)
from actors._core.notifier import NotifierActor, Subscriptions
from actors._core.pooled import Dispatcher
from actors._core.queries import RegistryQueries, ask
from actors._core.registry import RegistryActor
from actors._core.resource_slots import HOST_ISOLATIONS, Holding, ResourceSlots
from actors._core.restarts import SelfHealing
from actors._core.settings import RuntimeSettings
from actors._core.stats import StatsReader
from actors._core.submission import SpecMaker
from actors._core.supervisor import SupervisorActor
from actors._core.table import TaskTable
from actors._core.teardown import Step
from actors._core.timers import TimerService
from actors._core.waiters import Waiters
from actors._enums import Isolation
from actors._errors import RayUnavailableError
from actors._execution.api import AnyOperation
from actors._execution.async_backend import AsyncBackend
from actors._execution.backend import ExecutionBackend
from actors._execution.faults import FaultPlan
from actors._execution.process_backend import ProcessBackend
from actors._execution.ray_backend import RayBackend
from actors._execution.thread_backend import ThreadBackend
from actors._execution.threadpool import ThreadPool
from actors._operations import NamedOperation, OperationRegistry
from actors._policies import CircuitBreakers
from actors._records import TaskRecord, TaskSpec
from actors._resources import Resources
from actors._storage.recovery import open_and_recover

__all__ = ["RuntimeParts", "assemble"]

NO_RAY_BACKEND = (
    "isolation='ray' runs operations on a Ray cluster, and this manager has no Ray "
    "back-end: pass ray=RayBackend(address='local') (a private local cluster) or "
    "ray=RayBackend(address='host:port') (a running cluster) to the manager"
)

_runtime_ids = itertools.count(1)


@dataclass(slots=True, kw_only=True, eq=False)
class RuntimeParts:
    """Everything one runtime is made of, started (see :func:`assemble`)."""

    settings: RuntimeSettings
    ray: RayBackend | None
    # The host's resources: the supervisor's ledger (its only writer), read by status
    # reads and by process attempts (their GPU indices) without a message.
    slots: ResourceSlots[TaskSpec]
    operations: OperationRegistry
    breakers: CircuitBreakers
    specs: SpecMaker
    faults: FaultPlan  # empty unless a test injects faults
    healing: SelfHealing
    table: TaskTable
    admission: AdmissionGate
    submit_lock: threading.Lock  # keeps Register/Submit in the same order
    seq: Iterator[int]  # the next task's seq (after the recovered ones)
    timers: TimerService
    dispatcher: Dispatcher
    op_pool: ThreadPool
    listening: threading.Event  # set while anyone is subscribed
    notifier: pykka.ActorRef[Any]
    subscriptions: Subscriptions
    board: TaskBoard  # what status reads see, without a message
    waiters: Waiters  # callers blocked on a task's end (they add their own)
    registry: pykka.ActorRef[Any]
    queries: RegistryQueries
    processes: ProcessBackend
    loop: AsyncBackend
    backends: dict[Isolation, ExecutionBackend]
    supervisor: pykka.ActorRef[Any]
    stats: StatsReader

    def fail_registry(
        self, error: Exception, message_type: type | tuple[type, ...] | None, task_id: str | None
    ) -> None:
        """The fault plan's hook into the registry (``faults.fail_registry(...)``)."""
        if message_type is GetSnapshot:
            # Before the tell, so the next status read goes where the fault waits for it.
            self.board.detour()
        self.registry.tell(InjectFault(error, message_type, task_id))

    def drain(self, cancel_pending: bool) -> threading.Event:
        """Ask the supervisor to stop admitting and to drain (run or cancel what is
        pending); the event is set once every operation has returned."""
        try:
            drained: threading.Event = ask(
                self.supervisor, Shutdown(cancel_pending), "supervisor", self.settings.ask_timeout
            )
        except pykka.ActorDeadError:
            # The supervisor failed: nothing will run or end any more; the registry
            # ends what is unfinished, the teardown does the rest.
            with contextlib.suppress(pykka.ActorDeadError):
                ask(
                    self.registry,
                    AbandonUnfinished("supervisor_failed"),
                    "registry",
                    self.settings.ask_timeout,
                )
            drained = threading.Event()
            drained.set()
        return drained

    def teardown_steps(self) -> Sequence[Step]:
        """The parts in the order they stop, once the supervisor has drained."""
        timeout = self.settings.ask_timeout

        def actors() -> None:
            self.supervisor.stop(block=True, timeout=timeout)
            self.registry.stop(block=True, timeout=timeout)
            # After the registry: every event it sent reaches its subscribers first.
            self.notifier.stop(block=True, timeout=timeout)

        def threads() -> None:
            self.timers.stop(wait=True)
            # Normally nothing runs any more. After a supervisor failure operations may:
            # children go first (an operation in one returns when it dies), then the
            # operation threads (each still reports to its worker actor), then the
            # worker actors' mailboxes.
            for backend in self.backends.values():
                backend.shutdown()
            self.op_pool.shutdown(wait=True)
            self.dispatcher.shutdown(wait=True)
            self.settings.store.close()

        return [
            ("actors", actors),
            ("subscribers", self.subscriptions.stop_all),
            ("threads", threads),
        ]

    def queue_recovered(self, records: Sequence[TaskRecord]) -> None:
        """Queue recovered pending tasks (under the submit lock), in one message. They
        keep their seq, so each runs before every newer task of its priority. Those
        with dependencies go through the registry, which resolves them again."""
        if not records:
            return
        specs = []
        for record in records:
            entry = self.operations.resolve(record.operation_name)
            spec = record.to_spec(entry.function)
            self.admission.enter()
            if spec.options.depends_on:
                self.registry.tell(ResolveDependencies(spec))
            else:
                specs.append(spec)
        if specs:
            self.supervisor.tell(SubmitBatch(tuple(specs)))


def check_ray(ray: RayBackend | None, isolation: Isolation) -> None:
    """A Ray back-end is a :class:`RayBackend`, and a Ray default needs one."""
    if ray is not None and not isinstance(ray, RayBackend):
        raise TypeError(
            f"ray must be a RayBackend (RayBackend(address='local') or a cluster's "
            f"address), got {type(ray).__name__}"
        )
    if isolation is Isolation.RAY and ray is None:
        raise RayUnavailableError(NO_RAY_BACKEND, no_backend=True)


def assemble(
    settings: RuntimeSettings,
    *,
    owner: object,
    ray: RayBackend | None,
    operations: Mapping[str, AnyOperation | NamedOperation] | None,
    name: str,
    give_up: Callable[[str], None],
    closed: Callable[[], bool],
) -> RuntimeParts:
    """Build and start the parts of ``owner`` (the runtime), in their order.

    ``operations`` are registered before the store is recovered; ``give_up`` is called
    when the runtime's own parts failed too often (it must stop the runtime from a
    thread of its own); ``closed`` says whether the runtime is shut down.
    """
    slots: ResourceSlots[TaskSpec] = ResourceSlots(settings.resources)
    check_ray(ray, settings.isolation)
    clock, store, ask_timeout = settings.clock, settings.store, settings.ask_timeout
    breakers = CircuitBreakers(settings.operation_limits)
    registered = OperationRegistry()
    specs = SpecMaker(
        operations=registered,
        clock=clock,
        durable=store.durable,
        isolation=settings.isolation,
        limits=(settings.memory_limit_mb, settings.cpu_time_limit),
        retry=settings.retry,
        resource_checks=dict.fromkeys(HOST_ISOLATIONS, slots.check),
        ray_check=ray.check if ray is not None else None,
    )
    faults = FaultPlan()
    healing = SelfHealing(
        max_restarts=settings.max_restarts,
        window=settings.restart_window,
        clock=clock,
        give_up=give_up,
    )
    if operations is not None:
        registered.register_all(operations)
    prefix = f"{name}-{next(_runtime_ids)}"
    if ray is not None:
        ray.attach(owner, f"{prefix}-ray")  # one runtime per back-end

    table = TaskTable()
    admission = AdmissionGate(settings.max_pending)
    # Before any thread starts: a bad store fails cleanly. What it recovers is queued
    # once the actors run (those awaiting their operation's registration apart).
    recovered = open_and_recover(store, table, registered, clock)

    timers = TimerService(
        clock,
        name=f"{prefix}-timers",
        on_restart=lambda error: healing.restarted("timers", error),
    )
    dispatcher = Dispatcher(1, name=f"{prefix}-dispatch")
    op_pool = ThreadPool(settings.concurrency, name=f"{prefix}-op")
    timers.start()
    listening = threading.Event()
    notifier = NotifierActor.start(listening)
    subscriptions = Subscriptions(notifier, ask_timeout)
    board = TaskBoard(table)
    waiters = Waiters()  # the registry wakes them; callers add their own (no message)
    registry = RegistryActor.start(
        table, clock, store, notifier, listening, healing, board, waiters
    )
    queries = RegistryQueries(registry, table, board, waiters, ask_timeout, closed)
    # What a task holds of the host's resources, or waits for, is told to the registry
    # as the supervisor's ledger changes: it publishes it with the rest of the task's
    # state, so every status read has one path.
    slots.listen(_resources_teller(registry))
    # Where operations run. Child processes start on first use (or at once, below,
    # when process isolation is the default), so a thread-only runtime never pays.
    processes = ProcessBackend(
        op_pool,
        registry,
        max_tasks_per_child=settings.max_tasks_per_child,
        name=f"{prefix}-child",
        gpus_of=slots.gpus_of,
    )
    # Coroutine operations: an event loop of its own, started by its first task.
    loop = AsyncBackend(
        registry, name=f"{prefix}-async", start_timeout=ask_timeout, gpus_of=slots.gpus_of
    )
    backends: dict[Isolation, ExecutionBackend] = {
        Isolation.THREAD: ThreadBackend(op_pool, registry, slots.gpus_of),
        Isolation.PROCESS: processes,
        Isolation.ASYNC: loop,
    }
    if ray is not None:
        ray.use_registry(registry)
        backends[Isolation.RAY] = ray
    supervisor = SupervisorActor.start(
        capacity=settings.concurrency,
        async_capacity=settings.async_concurrency,
        ray_capacity=ray.max_in_flight if ray is not None else 0,
        registry=registry,
        timers=timers,
        backends=backends,
        dispatcher=dispatcher,
        clock=clock,
        admission=admission,
        max_task_age=settings.max_task_age,
        cleanup_interval=settings.cleanup_interval,
        stop_grace=settings.stop_grace,
        durable=store.durable,
        start_timeout=ask_timeout,
        breakers=breakers,
        faults=faults,
        on_fatal=lambda error: healing.fatal(
            "supervisor", error, "is not restarted (its state has no other copy)"
        ),
        resources=slots,
    )
    registry.tell(ConnectSupervisor(supervisor))
    parts = RuntimeParts(
        settings=settings,
        ray=ray,
        slots=slots,
        operations=registered,
        breakers=breakers,
        specs=specs,
        faults=faults,
        healing=healing,
        table=table,
        admission=admission,
        submit_lock=threading.Lock(),
        seq=itertools.count(recovered.next_seq),
        timers=timers,
        dispatcher=dispatcher,
        op_pool=op_pool,
        listening=listening,
        notifier=notifier,
        subscriptions=subscriptions,
        board=board,
        waiters=waiters,
        registry=registry,
        queries=queries,
        processes=processes,
        loop=loop,
        backends=backends,
        supervisor=supervisor,
        stats=StatsReader(
            capacity=settings.concurrency,
            async_capacity=settings.async_concurrency,
            timers=timers.statistics,
            processes=processes.statistics,
            store=store.statistics,
            operations=lambda: breakers.snapshot(clock.monotonic()),
            restarts=healing.snapshot,
            injected_faults=lambda: faults.injected_total,
            loop=loop.statistics,
        ),
    )
    faults.attach(
        parts.fail_registry,
        timers.inject_fault,
        lambda error: supervisor.tell(InjectFault(error)),
    )
    with parts.submit_lock:
        if recovered.awaiting:
            supervisor.tell(AwaitOperation(tuple(recovered.awaiting)))
        parts.queue_recovered(recovered.to_queue)
    if settings.isolation is Isolation.PROCESS:
        processes.prewarm(settings.concurrency)
    return parts


def _resources_teller(
    registry: pykka.ActorRef[Any],
) -> Callable[[str, Holding | None, Resources | None], None]:
    """The ledger's listener (on the supervisor's thread): each change of what a task
    holds or waits for, told to the registry in the order it was made."""

    def tell(task_id: str, holding: Holding | None, waiting: Resources | None) -> None:
        held, gpus = (None, ()) if holding is None else (holding.resources, holding.gpus)
        with contextlib.suppress(pykka.ActorDeadError):  # a late release at shutdown
            registry.tell(ResourcesChanged(task_id, held, gpus, waiting))

    return tell
