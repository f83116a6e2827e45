"""The registry actor: the single writer of every task record.

It owns a :class:`TaskTable`; every state change arrives here as a message, and every
query is answered from here. It logs each lifecycle transition once, with the task id
bound, and wakes the callers waiting on a task when it becomes terminal. It never runs
user code.

With a durable store it is also the store's only writer, and commits in groups: the
records changed since the last commit are written in one transaction when the mailbox
runs dry, when a batch is full, and always before anything leaves this actor (a query's
answer, a submitter's acknowledgement, a waiter's wake-up, a worker's permission to
start). So whatever a caller has seen survives a crash of the process.

Because it sees every terminal transition in order, it also resolves dependencies (it
forwards a dependent task to the supervisor once they completed, or cancels it when
one failed, down the chain), keeps the group index, and tells each lifecycle fact to
the notifier while anyone is subscribed.

It is a message handler over state objects, each tested on its own: the table
(:class:`TaskTable`), the release gate (:class:`ReleaseGate`: the board, the waiters and
the event outbox released in step with the group commit), the dependencies
(:class:`DependencyRouting`), the group index (:class:`GroupIndex`), each step's log
line and event (:class:`LifecycleReport`) and a test's fault traps (:class:`FaultTraps`);
the rules for what a record may keep (``storable``) and for resuming (``resumption``)
are functions beside them.
What stays here is the order of things: which state a message changes, and that nothing
leaves before the commit that covers it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, assert_never

import pykka

from actors._clock import Clock
from actors._core.board import TaskBoard
from actors._core.dependency_routing import DependencyRouting
from actors._core.groups import GroupIndex
from actors._core.lifecycle_report import LifecycleReport
from actors._core.messages import (
    COMMIT_BEFORE_ANSWER,
    READ_ONLY,
    READS_RECORDS,
    REGISTRY_MESSAGES,
    TASK_CHANGES,
    AbandonUnfinished,
    Cancel,
    Cleanup,
    ConnectSupervisor,
    Finish,
    Flush,
    GetGroup,
    GetSnapshot,
    GetStats,
    InjectFault,
    ListPage,
    ListTasks,
    MarkRunning,
    ProgressReady,
    Register,
    RegisterDependent,
    RegistryMessage,
    Reopen,
    ResolveDependencies,
    ResourcesChanged,
    RetryScheduled,
    Submit,
    TaskPage,
    Watch,
)
from actors._core.outbox import EventOutbox
from actors._core.release import ReleaseGate
from actors._core.restarts import CountingInbox, RestartingActor, SelfHealing
from actors._core.resumption import why_not_resumable
from actors._core.storable import checked_checkpoint, checked_partial, storable_outcome
from actors._core.table import FinishResult, TaskTable
from actors._core.traps import FaultTraps, task_of
from actors._core.waiters import TerminalWaiter, Waiters
from actors._enums import TaskStatus
from actors._errors import (
    ActorRestartedError,
    NotResumableError,
    QueryFailedError,
)
from actors._outcome import (
    Cancelled,
    Interrupted,
    Outcome,
    Raised,
    StopReason,
)
from actors._records import TaskRecord, TaskSnapshot, TaskSpec
from actors._storage.store import CommitTicket, Store
from actors.logs import library_logger

__all__ = ["RegistryActor"]

_log = library_logger("actors.registry")


class RegistryActor(RestartingActor):
    use_daemon_thread = True  # see SupervisorActor: a forgotten shutdown must not hang exit

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # See SupervisorActor; counted, so the board knows when it is behind the mailbox.
        return CountingInbox()

    def __init__(
        self,
        table: TaskTable,
        clock: Clock,
        store: Store | None = None,
        notifier: pykka.ActorRef[Any] | None = None,
        listening: threading.Event | None = None,
        healing: SelfHealing | None = None,
        board: TaskBoard | None = None,
        waiters: Waiters | None = None,
    ) -> None:
        super().__init__()
        self._healing = healing
        self._traps = FaultTraps()  # a test's injected faults
        self._table = table
        self._clock = clock
        # Callers blocked on a task's end (they may add their own: see Waiters).
        self._waiters = Waiters() if waiters is None else waiters
        # What callers read without a message (see TaskBoard): each change is published
        # here before anything about it leaves this actor; with a durable store, once
        # it is committed.
        self._board = TaskBoard(table) if board is None else board
        self._board.reset(table.iter_status(None))  # loaded from the store: committed
        inbox = self.actor_inbox
        assert isinstance(inbox, CountingInbox)
        self._board.follow(inbox)
        # Subscriptions: the notifier gets every lifecycle fact while ``listening`` is set.
        durable = store is not None and store.durable
        outbox = EventOutbox(notifier, listening, durable=durable)
        # Everything above leaves through the gate: with a durable store, only after
        # the commit that covers it (see ReleaseGate).
        self._gate = ReleaseGate(store, self._board, self._waiters, outbox)
        self._durable = durable
        # Each step's log line and subscribers' event.
        self._report = LifecycleReport(outbox)
        # A change, as the gate takes it; with the memory store that is the board's
        # publish, called directly (three times a task).
        self._changed = self._board.publish if not durable else self._gate.changed
        self._ticket = self._gate.ticket
        # Dependencies: who waits on whom. The supervisor is where resolved tasks go.
        self._supervisor: pykka.ActorRef[Any] | None = None
        self._dependencies = DependencyRouting(table.get, self._tell_supervisor)
        # Groups: member ids by group id (rebuilt from the records after a restart).
        self._groups = GroupIndex(table.iter_status(None))

    def on_receive(self, message: Any) -> Any:
        try:
            if self._traps.armed or not isinstance(message, REGISTRY_MESSAGES):
                answer = self._handle(message)
            else:
                # REGISTRY_MESSAGES holds RegistryMessage's members (see messages.py).
                answer = self._dispatch(message)  # type: ignore[arg-type]
        except Exception as exc:
            if not isinstance(message, READ_ONLY):
                raise  # a change failed: RestartingActor restarts this actor
            # A query changed nothing, so nothing is rebuilt and no restart is counted:
            # its asker alone gets the error. What is due to be committed still is.
            self._after(message, None)
            raise QueryFailedError("registry", type(message).__name__, exc) from exc
        if not self._durable:  # the hot path: the gate is open, only waiters may wait
            if self._waiters.held:
                self._gate.release()
            return answer
        return self._after(message, answer)

    def _after(self, message: Any, answer: Any) -> Any:
        """Commit (or wake waiters) when this message calls for it (see
        ReleaseGate.settle); returns the answer as it may leave."""
        if not self._durable:
            if self._waiters.held:
                self._gate.release()
            return answer
        return self._gate.settle(
            answer,
            query=isinstance(message, COMMIT_BEFORE_ANSWER),
            reads_records=isinstance(message, READS_RECORDS),
            inbox_empty=self.actor_inbox.empty(),
        )

    def _handle(self, message: Any) -> Any:
        if self._traps.armed:
            try:
                self._traps.spring(message)
            except BaseException:
                if isinstance(message, GetSnapshot):
                    self._board.end_detour()  # the status-query fault met its read
                raise
        if isinstance(message, REGISTRY_MESSAGES):
            return self._dispatch(message)  # type: ignore[arg-type]
        return super().on_receive(message)

    def _dispatch(self, message: RegistryMessage) -> Any:
        # Exhaustive: mypy fails the assert_never below when a RegistryMessage has no
        # case. Ordered by frequency on the hot path (class patterns are tried in order).
        match message:
            case ProgressReady():
                return self._on_progress(message)
            case Register(spec=spec, ticket=ticket):
                self._on_register(spec, ticket)
                return None
            case MarkRunning():
                return self._on_mark_running(message)
            case ResourcesChanged():
                self._on_resources_changed(message)
                return None
            case Finish():
                return self._on_finish(message)
            case RetryScheduled():
                return self._on_retry(message)
            case GetSnapshot(task_id=task_id):
                found = self._table.get(task_id)
                return None if found is None else found.snapshot()
            case Watch():
                return self._on_watch(message)
            case ListTasks(status=status, limit=limit, user=user):
                return [r.snapshot() for r in self._table.list(status, limit, user)]
            case ListPage(status=status, after=after, limit=page_limit, user=user):
                page = self._table.page(status, after, page_limit, user)
                return TaskPage([r.snapshot() for r in page.records], page.next_after)
            case GetStats():
                return self._table.stats()
            case RegisterDependent():
                return self._on_register_dependent(message)
            case ResolveDependencies(spec=spec):
                self._resolve(spec)
                return None
            case GetGroup(group_id=group_id):
                return self._on_get_group(group_id)
            case ConnectSupervisor(supervisor=supervisor):
                self._supervisor = supervisor  # type: ignore[assignment]
                return None
            case InjectFault():
                self._traps.arm(message)
                return None
            case AbandonUnfinished(cause=cause):
                return self._abandon_unfinished(cause)
            case Flush(ticket=ticket):
                self._ticket(ticket)
                return None
            case Reopen():
                return self._on_reopen(message)
            case Cleanup(cutoff=cutoff):
                return self._on_cleanup(cutoff)
            case _:
                assert_never(message)

    def _on_mark_running(self, message: MarkRunning) -> None:
        started = self._table.mark_running(
            message.task_id, message.at, message.injected_fault, message.placement
        )
        if started is not None:
            self._changed(started)  # published before subscribers hear of it
            self._report.started(started, message.injected_fault)
        elif self._ended(message.task_id):
            # Ended here while the supervisor was starting it (the registry ended it
            # on a restart before its Submit reached the supervisor): stop it there.
            self._tell_supervisor(Cancel(message.task_id))
            if message.ticket is not None:
                message.ticket.done(
                    RuntimeError("the task had already ended: the registry ended it")
                )
            return
        if message.ticket is not None:
            self._ticket(message.ticket)

    def _on_resources_changed(self, message: ResourcesChanged) -> None:
        """What a task holds of the host's resources, or waits for, changed in the
        supervisor's ledger: published at once. Not a durable fact, so nothing is
        committed for it; a record whose latest change awaits its commit shows it when
        that commit publishes the record."""
        record = self._table.set_resources(
            message.task_id, message.held, message.gpu_indices, message.waiting_for
        )
        if record is not None and not self._board.is_held(record.task_id):
            self._board.publish(record)

    def _on_cleanup(self, cutoff: float) -> int:
        removed = self._table.pop_ended_before(cutoff)
        if removed:
            _log.info("tasks.cleaned_up", count=len(removed))
            self._groups.remove(removed)
            self._gate.deleted(removed)
        return len(removed)

    def _on_register(self, spec: TaskSpec, ticket: CommitTicket | None) -> None:
        record = self._table.add(spec)
        self._changed(record)
        self._waiters.registered(record.task_id)  # in the table: waits look it up
        self._report.created(record)
        self._groups.add(record)
        if ticket is not None:
            self._ticket(ticket)

    # -- restarts ---------------------------------------------------------------------------

    def _ended(self, task_id: str) -> bool:
        record = self._table.get(task_id)
        return record is not None and record.status.is_terminal

    def on_restart(self, error: Exception, message: Any) -> BaseException:
        """``message`` made this actor fail with ``error``: rebuild everything from the
        records (the store's, when durable), end the task that message was about (its
        outcome can no longer be known for sure), and carry on with the mailbox."""
        task_id = task_of(message) if isinstance(message, TASK_CHANGES) else None
        if self._healing is not None:
            self._healing.restarted(
                "registry", error, failed_message=type(message).__name__, task_id=task_id
            )
        self._rebuild()
        ticket = getattr(message, "ticket", None)
        if task_id is not None:
            self._end_casualty(task_id, message, error)
        if isinstance(ticket, CommitTicket):
            if isinstance(message, MarkRunning):
                # The worker must not start an operation whose start was never recorded.
                ticket.done(ActorRestartedError("registry", "the task's start", error))
            else:
                self._ticket(ticket)
        self._gate.flush()
        return ActorRestartedError("registry", type(message).__name__, error)

    def _rebuild(self) -> None:
        """Everything but the records is derived: rebuild it. With a durable store the
        records are first committed, then read back from it. (The table changes a
        record's fields only after the index updates that can fail, by plain
        assignments: a failure leaves a record as it was or fully changed, never half
        so. What it can leave wrong is derived state.)"""
        self._board.detour()  # the table is half rebuilt meanwhile: reads ask this actor
        try:
            self._rebuild_table()
        finally:
            self._board.end_detour()

    def _rebuild_table(self) -> None:
        state = self._gate.reload()
        if state is not None:
            self._table.reset(state.records, state.retired)
        else:
            self._table.rebuild()
        self._board.reset(self._table.iter_status(None), self._gate.unreadable())
        self._groups.rebuild(self._table.iter_status(None))
        pending = list(self._table.iter_status(TaskStatus.PENDING))
        now = self._clock.time()
        for task_id, failure in self._dependencies.rederive(pending):
            self._finish(task_id, failure, now)
        self._waiters.settle(self._table.get)

    def _abandon_unfinished(self, cause: str) -> int:
        """The supervisor failed: no unfinished task will run or end by itself. Each
        ends Interrupted (with a durable store they stay pending instead: the next
        runtime that opens it recovers them). Returns how many ended."""
        if self._durable:
            return 0
        now = self._clock.time()
        unfinished = [
            *self._table.iter_status(TaskStatus.PENDING),
            *self._table.iter_status(TaskStatus.RUNNING),
        ]
        for record in unfinished:
            self._finish(record.task_id, _interrupted(record, now, cause), now)
        if unfinished:
            _log.warning("tasks.abandoned", count=len(unfinished), cause=cause)
        return len(unfinished)

    def _end_casualty(self, task_id: str, message: Any, error: Exception) -> None:
        """End the task whose message failed, and tell the supervisor to drop it."""
        record = self._table.get(task_id)
        spec = getattr(message, "spec", None)
        if record is None and isinstance(spec, TaskSpec):
            self._on_register(spec, None)  # so its creator finds it, and why it ended
            record = self._table.get(task_id)
        if record is None or record.status.is_terminal:
            return
        _log.error(
            "task.lost_to_registry_failure",
            task_id=task_id,
            failed_message=type(message).__name__,
            error=repr(error),
        )
        now = self._clock.time()
        self._finish(task_id, _interrupted(record, now, "registry_restarted"), now)
        self._tell_supervisor(Cancel(task_id))  # stop it wherever it is (gone: ignored)

    def on_failure(self, *exc_info: Any) -> None:
        # Only when a rebuild itself failed (see RestartingActor): the runtime cannot go
        # on without its registry, and nobody may hang.
        if self._healing is not None:
            self._healing.fatal("registry", exc_info[1])
        with contextlib.suppress(Exception):
            self.on_stop()

    def on_stop(self) -> None:
        self._gate.flush()
        self._waiters.wake_all(self._table.get)  # nobody waits forever on a stopped registry

    def _on_progress(self, message: ProgressReady) -> None:
        progress, partial, has_partial = message.published.drain()
        alive, checkpoint_json, waiters = message.published.drain_signs()
        partial_json = None
        if has_partial:
            checked = checked_partial(message.task_id, partial, durable=self._durable)
            has_partial, partial, partial_json = checked  # not kept: the previous one stays
        checkpoint = None
        if checkpoint_json is not None:
            found = checked_checkpoint(message.task_id, checkpoint_json)
            if isinstance(found, ValueError):
                for waiter in waiters:
                    waiter(found)
                waiters = []  # answered: not kept
            else:
                checkpoint = found
        record = self._table.apply_progress(
            message.task_id,
            progress,
            partial,
            has_partial,
            self._clock.time(),
            alive=alive,
            checkpoint=checkpoint,
        )
        if record is None:
            if waiters:
                current = self._table.get(message.task_id)
                state = "gone" if current is None else current.status.value
                error = RuntimeError(
                    f"task {message.task_id} is no longer running ({state}): its checkpoint "
                    "was not kept"
                )
                for waiter in waiters:
                    waiter(error)
            return
        if self._durable and has_partial:
            record.partial_json = partial_json
        # A checkpoint is a durable fact its operation waits for: committed soon.
        self._gate.changed(record, urgent=checkpoint is not None)
        for waiter in waiters:
            self._gate.after_commit(record.task_id, waiter)
        if progress is not None:
            self._report.progress(record, progress)

    def _on_reopen(self, message: Reopen) -> TaskSpec | NotResumableError | None:
        """A new attempt of an ended task (``resume_task``), if it may have one: its spec
        (forwarded to the supervisor), or why not (None: no such task)."""
        record = self._table.get(message.task_id)
        if record is None:
            if message.ticket is not None:
                message.ticket.done()
            return None
        refusal = why_not_resumable(record, message.operation is not None)
        if refusal is not None:
            if message.ticket is not None:
                message.ticket.done()
            return refusal
        assert message.operation is not None
        reopened = self._table.reopen(message.task_id, message.at)
        assert reopened is not None  # checked above
        self._changed(reopened)
        if message.ticket is not None:
            self._ticket(message.ticket)
        self._report.resumed(reopened)
        spec = reopened.to_spec(message.operation)
        self._tell_supervisor(Submit(spec))
        return spec

    def _on_finish(self, message: Finish) -> None:
        outcome = message.outcome
        if isinstance(outcome, Cancelled) and outcome.reason is StopReason.CANCEL_REQUESTED:
            # Logged here, not by the supervisor, so it always follows task.created and
            # task.started in the log: this actor logs every step of a task, in order.
            current = self._table.get(message.task_id)
            if current is not None and not current.status.is_terminal:
                _log.info(
                    "task.cancel_requested", task_id=message.task_id, state=current.status.value
                )
        self._finish(message.task_id, outcome, message.at)

    def _finish(self, task_id: str, outcome: Outcome, at: float) -> None:
        """Record a terminal outcome, and then what follows from it for the tasks that
        depend on this one (and on those, down the chain)."""
        work = [(task_id, outcome)]
        while work:
            task_id, outcome = work.pop()
            record = self._finish_one(task_id, outcome, at)
            if record is not None and self._dependencies.has_dependents(record.task_id):
                work.extend(self._dependencies.ended(record))

    def _finish_one(self, task_id: str, outcome: Outcome, at: float) -> TaskRecord | None:
        """Record one task's outcome; returns its record if it became terminal now."""
        result_json = None
        durable = self._durable
        if durable:
            outcome, result_json = storable_outcome(task_id, outcome)
        result, record = self._table.finish(task_id, outcome, at)
        if record is None or result is FinishResult.IGNORED:
            return None
        if durable and record.has_result and result_json is not None:
            record.result_json = result_json
        self._changed(record)
        if result is FinishResult.LATE_RESULT:
            _log.info("task.late_result_kept", task_id=record.task_id, status=record.status.value)
            return None
        self._report.ended(record)
        self._dependencies.forget(record.task_id)
        self._waiters.ended(record)  # woken after this change is committed (memory: at once)
        return record

    # -- dependencies ----------------------------------------------------------------------

    def _on_register_dependent(self, message: RegisterDependent) -> tuple[str, list[str]]:
        spec = message.spec
        unknown = self._dependencies.unknown(spec)
        if unknown:
            if message.ticket is not None:
                message.ticket.done()
            return "unknown", unknown
        self._on_register(spec, message.ticket)
        return self._resolve(spec), []

    def _resolve(self, spec: TaskSpec) -> str:
        """A registered pending task with dependencies to the supervisor (see
        DependencyRouting.route); one that can never run ends here."""
        verdict, failure = self._dependencies.route(spec)
        if failure is not None:
            self._finish(spec.task_id, failure, self._clock.time())
        return verdict

    def _tell_supervisor(self, message: object) -> None:
        # After shutdown the supervisor is gone while tasks still finish (a drain's last
        # operations): what it would have been told no longer matters to anyone.
        supervisor = self._supervisor
        if supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(message)

    # -- groups --------------------------------------------------------------------------

    def _on_get_group(self, group_id: str) -> list[TaskSnapshot] | None:
        """The group's retained members' snapshots; None when it has none (never
        created, or retention removed them all)."""
        snapshots = []
        for task_id in self._groups.members(group_id):
            record = self._table.get(task_id)
            if record is not None:
                snapshots.append(record.snapshot())
        return snapshots or None

    def _on_retry(self, message: RetryScheduled) -> None:
        record = self._table.retry(message.task_id, message.outcome, message.at, message.next_at)
        if record is None:
            return
        outcome = message.outcome
        error = outcome.exception_type if isinstance(outcome, Raised) else type(outcome).__name__
        self._changed(record)  # published before subscribers hear of it
        self._report.retry_scheduled(record, message.next_at, error)

    def _on_watch(self, message: Watch) -> TerminalWaiter | None:
        record = self._table.get(message.task_id)
        if record is None:
            return None
        if not record.status.is_terminal:
            return self._waiters.watch(message.task_id)
        return self._gate.terminal_waiter(record)


def _interrupted(record: TaskRecord, now: float, cause: str) -> Interrupted:
    """The fact that ends an unfinished task the runtime can no longer run or watch."""
    return Interrupted(
        was_running=record.status is TaskStatus.RUNNING,
        attempt=record.attempt,
        last_seen_at=record.updated_at,
        recovered_at=now,
        cause=cause,
    )
