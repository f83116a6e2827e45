"""The message protocol between the actors. Every message is a small frozen dataclass,
in the module of the actor that receives it (``to_registry``, ``to_supervisor``,
``to_worker``; ``injection`` is the test kit's, which both handle).

Who sends what:

* facade -> Registry: ``Register``, ``RegisterDependent``, ``ResolveDependencies``,
  ``ConnectSupervisor``, ``Flush``, queries (``GetSnapshot``, ``ListTasks``,
  ``ListPage``, ``GetStats``, ``GetGroup``, ``Watch``), ``Cleanup``
* facade -> Supervisor: ``Submit``, ``SubmitBatch`` (recovered tasks), ``AwaitOperation``
  and ``OperationRegistered`` (recovered tasks of an operation not registered yet),
  ``Cancel``, ``AddSchedule``, ``CancelSchedule``, ``GetSchedules``, ``GetSupervisorStats``,
  ``Shutdown``
* Supervisor -> Registry: ``MarkRunning``, ``Finish``, ``RetryScheduled``, ``Cleanup``
* Registry -> Supervisor: ``Submit``, ``SubmitBlocked``, ``DependenciesMet``,
  ``DropBlocked`` (tasks with dependencies, which the registry resolves)
* Supervisor -> Worker: ``Stop``, then ``Interrupt`` after the stop grace, then ``Kill``
* Worker (from its back-end's threads) -> Supervisor: ``AttemptStarted`` (a back-end
  whose start is not its hand-over: process isolation), ``WorkerFinished``
* the operation's context -> Registry: ``ProgressReady`` (coalesced: at most one in
  flight per task)
* facade -> Registry: ``Reopen`` (``resume_task``), which forwards the task to the supervisor
* TimerService -> Supervisor: ``DeadlinePassed``, ``HeartbeatDue``, ``EscalateStop``,
  ``CleanupDue``, ``StartDue``, ``CooldownOver``, ``ScheduleTick``
* a test -> Registry, Supervisor: ``InjectFault`` (the fault-injection kit; see
  actors._core.restarts)
* facade -> Registry: ``AbandonUnfinished`` (the supervisor failed)
"""

from __future__ import annotations

from actors._core.messages.injection import (
    InjectFault,
)
from actors._core.messages.to_registry import (
    COMMIT_BEFORE_ANSWER,
    READ_ONLY,
    READS_RECORDS,
    REGISTRY_MESSAGES,
    TASK_CHANGES,
    AbandonUnfinished,
    Cleanup,
    ConnectSupervisor,
    Finish,
    Flush,
    GetGroup,
    GetSnapshot,
    GetStats,
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
    TaskPage,
    Watch,
)
from actors._core.messages.to_supervisor import (
    SUPERVISOR_MESSAGES,
    AddSchedule,
    AttemptStarted,
    AwaitOperation,
    Cancel,
    CancelSchedule,
    CleanupDue,
    CooldownOver,
    DeadlinePassed,
    DependenciesMet,
    DispatchDue,
    DropBlocked,
    EscalateStop,
    GetSchedules,
    GetSupervisorStats,
    HeartbeatDue,
    OperationRegistered,
    ScheduleTick,
    Shutdown,
    StartDue,
    Submit,
    SubmitBatch,
    SubmitBlocked,
    SupervisorMessage,
    WorkerFinished,
)
from actors._core.messages.to_worker import (
    WORKER_MESSAGES,
    Interrupt,
    Kill,
    Stop,
    WorkerMessage,
)

__all__ = [
    "COMMIT_BEFORE_ANSWER",
    "READS_RECORDS",
    "READ_ONLY",
    "REGISTRY_MESSAGES",
    "SUPERVISOR_MESSAGES",
    "TASK_CHANGES",
    "WORKER_MESSAGES",
    "AbandonUnfinished",
    "AddSchedule",
    "AttemptStarted",
    "AwaitOperation",
    "Cancel",
    "CancelSchedule",
    "Cleanup",
    "CleanupDue",
    "ConnectSupervisor",
    "CooldownOver",
    "DeadlinePassed",
    "DependenciesMet",
    "DispatchDue",
    "DropBlocked",
    "EscalateStop",
    "Finish",
    "Flush",
    "GetGroup",
    "GetSchedules",
    "GetSnapshot",
    "GetStats",
    "GetSupervisorStats",
    "HeartbeatDue",
    "InjectFault",
    "Interrupt",
    "Kill",
    "ListPage",
    "ListTasks",
    "MarkRunning",
    "OperationRegistered",
    "ProgressReady",
    "Register",
    "RegisterDependent",
    "RegistryMessage",
    "Reopen",
    "ResolveDependencies",
    "ResourcesChanged",
    "RetryScheduled",
    "ScheduleTick",
    "Shutdown",
    "StartDue",
    "Stop",
    "Submit",
    "SubmitBatch",
    "SubmitBlocked",
    "SupervisorMessage",
    "TaskPage",
    "Watch",
    "WorkerFinished",
    "WorkerMessage",
]
