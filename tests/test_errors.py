"""Error codes, their HTTP mapping and remediation, and how facts and exceptions map to them."""

from __future__ import annotations

import json
from typing import Any

import pytest

import storycore_tasks
from actors import (
    ActorUnresponsiveError,
    Cancelled,
    Completed,
    QueueFullError,
    Raised,
    RuntimeClosedError,
    StopReason,
    TimedOut,
    UnknownTaskError,
)
from storycore_tasks.errors import (
    HTTP_STATUS_BY_CODE,
    REMEDIATION_BY_CODE,
    ErrorCodes,
    ErrorDetails,
    error_from_exception,
    error_from_outcome,
    http_status_for,
)

# -- the codes and their tables ------------------------------------------------------------


def test_the_error_codes_are_storycores() -> None:
    """ErrorCodes is exactly StoryCore's thirteen codes and STALLED (issue 20: a task that
    showed no sign of life for its heartbeat_timeout), each valued as its own name."""
    assert [code.value for code in ErrorCodes] == [
        "VALIDATION_ERROR",
        "NOT_FOUND",
        "CONFLICT",
        "TIMEOUT",
        "STALLED",
        "CANCELLED",
        "INTERNAL_ERROR",
        "SERVICE_UNAVAILABLE",
        "WORKER_CRASHED",
        "RESOURCE_EXHAUSTED",
        "INTERRUPTED",
        "RESULT_NOT_SERIALIZABLE",
        "DEPENDENCY_ERROR",
        "AUTHENTICATION_REQUIRED",
    ]
    assert [code.name for code in ErrorCodes] == [code.value for code in ErrorCodes]


def test_every_code_has_an_http_status() -> None:
    """HTTP_STATUS_BY_CODE maps every ErrorCodes member, and nothing else."""
    assert set(ErrorCodes) == set(HTTP_STATUS_BY_CODE)
    for code in ErrorCodes:
        assert HTTP_STATUS_BY_CODE[code] == http_status_for(code)


def test_the_http_statuses_are_the_documented_ones() -> None:
    """Each code answers its documented HTTP status."""
    assert dict(HTTP_STATUS_BY_CODE) == {
        ErrorCodes.VALIDATION_ERROR: 400,
        ErrorCodes.NOT_FOUND: 404,
        ErrorCodes.CONFLICT: 409,
        ErrorCodes.TIMEOUT: 504,
        ErrorCodes.STALLED: 504,
        ErrorCodes.CANCELLED: 409,
        ErrorCodes.INTERNAL_ERROR: 500,
        ErrorCodes.SERVICE_UNAVAILABLE: 503,
        ErrorCodes.WORKER_CRASHED: 502,
        ErrorCodes.RESOURCE_EXHAUSTED: 429,
        ErrorCodes.INTERRUPTED: 503,
        ErrorCodes.RESULT_NOT_SERIALIZABLE: 500,
        ErrorCodes.DEPENDENCY_ERROR: 424,
        ErrorCodes.AUTHENTICATION_REQUIRED: 401,
    }


def test_the_http_mapping_is_exported_and_read_only() -> None:
    """The package exports the one HTTP mapping, and callers cannot change it."""
    assert HTTP_STATUS_BY_CODE is storycore_tasks.HTTP_STATUS_BY_CODE
    with pytest.raises(TypeError):
        HTTP_STATUS_BY_CODE[ErrorCodes.NOT_FOUND] = 200  # type: ignore[index]
    assert HTTP_STATUS_BY_CODE[ErrorCodes.NOT_FOUND] == 404


@pytest.mark.parametrize("code", list(ErrorCodes))
def test_every_code_has_a_remediation(code: ErrorCodes) -> None:
    """Every code has a non-empty remediation text that ErrorDetails.of attaches."""
    remediation = REMEDIATION_BY_CODE[code]

    assert isinstance(remediation, str)
    assert remediation.strip() != ""
    assert remediation == ErrorDetails.of(code, "message").remediation


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("NOT_FOUND", 404),
        ("TIMEOUT", 504),
        ("NO_SUCH_CODE", 500),
        ("", 500),
        ("not_found", 500),
    ],
)
def test_http_status_for_a_string(code: str, expected: int) -> None:
    """http_status_for accepts a code's string; an unknown string answers 500."""
    assert expected == http_status_for(code)


# -- ErrorDetails --------------------------------------------------------------------------


def test_error_details_to_dict_is_json_serialisable() -> None:
    """ErrorDetails.to_dict is plain JSON: code as its string, details as a dict."""
    error = ErrorDetails.of(ErrorCodes.NOT_FOUND, "Task x not found", task_id="x", tries=2)

    as_dict = error.to_dict()

    assert {
        "code": "NOT_FOUND",
        "message": "Task x not found",
        "details": {"task_id": "x", "tries": 2},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.NOT_FOUND],
    } == as_dict
    assert as_dict == json.loads(json.dumps(as_dict, allow_nan=False))
    assert type(as_dict["code"]) is str
    assert type(as_dict["details"]) is dict


def test_error_details_defaults_and_http_status() -> None:
    """A bare ErrorDetails has empty details and remediation; http_status follows the code."""
    error = ErrorDetails(ErrorCodes.CONFLICT, "already done")

    assert error.to_dict() == {
        "code": "CONFLICT",
        "message": "already done",
        "details": {},
        "remediation": "",
    }
    assert error.http_status == 409


# -- error_from_outcome --------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Completed(42), Completed(None), None])
def test_a_completed_or_unfinished_outcome_is_no_error(outcome: Any) -> None:
    """error_from_outcome answers None for a completed task and for one not yet ended."""
    assert error_from_outcome(outcome) is None


def test_raised_is_an_internal_error_naming_the_exception() -> None:
    """Raised maps to INTERNAL_ERROR with details.exception_type and the message."""
    outcome = Raised.from_exception(ValueError("bad frame"))

    error = error_from_outcome(outcome)

    assert error is not None
    assert {
        "code": "INTERNAL_ERROR",
        "message": "Operation raised ValueError: bad frame",
        "details": {"exception_type": "ValueError", "exception_message": "bad frame"},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.INTERNAL_ERROR],
    } == error.to_dict()
    assert error.http_status == 500


def test_raised_without_a_message_names_only_the_type() -> None:
    """Raised with an empty message says which exception type was raised, nothing more."""
    error = error_from_outcome(Raised("pkg.mod.Boom", "", "Traceback ..."))

    assert error is not None
    assert error.message == "Operation raised pkg.mod.Boom"
    assert dict(error.details) == {"exception_type": "pkg.mod.Boom", "exception_message": ""}


def test_timed_out_without_partial_result_has_no_partial_result_key() -> None:
    """TimedOut without a partial result maps to TIMEOUT with only timeout_seconds."""
    error = error_from_outcome(TimedOut(5.0))

    assert error is not None
    assert {
        "code": "TIMEOUT",
        "message": "Operation exceeded timeout of 5.0 seconds",
        "details": {"timeout_seconds": 5.0},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.TIMEOUT],
    } == error.to_dict()
    assert error.http_status == 504


def test_timed_out_with_partial_result_carries_it() -> None:
    """TimedOut with a partial result maps to TIMEOUT with details.partial_result."""
    outcome = TimedOut(5.0, partial_result={"frames": 3}, has_partial_result=True)

    error = error_from_outcome(outcome)

    assert error is not None
    assert error.message == "Operation exceeded timeout of 5.0 seconds"
    assert error.to_dict()["details"] == {"timeout_seconds": 5.0, "partial_result": {"frames": 3}}


def test_timed_out_with_a_none_partial_result_still_reports_it() -> None:
    """A partial result the operation set to None is present (has_partial_result decides)."""
    error = error_from_outcome(TimedOut(5.0, partial_result=None, has_partial_result=True))

    assert error is not None
    assert dict(error.details) == {"timeout_seconds": 5.0, "partial_result": None}


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (StopReason.CANCEL_REQUESTED, "Task was cancelled on request"),
        (StopReason.SHUTDOWN, "Task was cancelled because the task manager shut down"),
        (StopReason.TIMEOUT, "Task was cancelled by its timeout"),
    ],
)
def test_cancelled_maps_to_cancelled_with_its_reason(reason: StopReason, message: str) -> None:
    """Cancelled maps to CANCELLED with details.reason, for each StopReason."""
    error = error_from_outcome(Cancelled(reason))

    assert error is not None
    assert {
        "code": "CANCELLED",
        "message": message,
        "details": {"reason": reason.value},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.CANCELLED],
    } == error.to_dict()
    assert error.http_status == 409


def test_every_stop_reason_has_a_cancelled_message() -> None:
    """No StopReason makes error_from_outcome fail: each has its own message."""
    messages = {error_from_outcome(Cancelled(reason)).message for reason in StopReason}  # type: ignore[union-attr]

    assert len(StopReason) == len(messages)


# -- error_from_exception ------------------------------------------------------------------


def test_queue_full_is_service_unavailable() -> None:
    """QueueFullError maps to SERVICE_UNAVAILABLE (503) with details.max_pending."""
    exc = QueueFullError(10)

    error = error_from_exception(exc)

    assert {
        "code": "SERVICE_UNAVAILABLE",
        "message": str(exc),
        "details": {"max_pending": 10},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.SERVICE_UNAVAILABLE],
    } == error.to_dict()
    assert error.http_status == 503


def test_runtime_closed_is_service_unavailable() -> None:
    """RuntimeClosedError maps to SERVICE_UNAVAILABLE (503) with its message."""
    error = error_from_exception(RuntimeClosedError("the task manager was shut down"))

    assert {
        "code": "SERVICE_UNAVAILABLE",
        "message": "the task manager was shut down",
        "details": {},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.SERVICE_UNAVAILABLE],
    } == error.to_dict()


def test_an_unresponsive_actor_is_service_unavailable() -> None:
    """ActorUnresponsiveError (a TimeoutError) maps to SERVICE_UNAVAILABLE, not INTERNAL_ERROR."""
    exc = ActorUnresponsiveError("registry", "GetStats", 30.0)

    error = error_from_exception(exc)

    assert ErrorCodes.SERVICE_UNAVAILABLE is error.code
    assert str(exc) == error.message


def test_unknown_task_is_not_found() -> None:
    """UnknownTaskError maps to NOT_FOUND (404) with details.task_id."""
    exc = UnknownTaskError("abc")

    error = error_from_exception(exc)

    assert {
        "code": "NOT_FOUND",
        "message": str(exc),
        "details": {"task_id": "abc"},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.NOT_FOUND],
    } == error.to_dict()
    assert error.http_status == 404


@pytest.mark.parametrize(
    "exc",
    [TypeError("params must be a mapping"), ValueError("timeout must be > 0 seconds, got -1")],
    ids=["TypeError", "ValueError"],
)
def test_type_and_value_errors_are_validation_errors(exc: Exception) -> None:
    """TypeError and ValueError from an entry point map to VALIDATION_ERROR (400)."""
    error = error_from_exception(exc)

    assert {
        "code": "VALIDATION_ERROR",
        "message": str(exc),
        "details": {},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.VALIDATION_ERROR],
    } == error.to_dict()
    assert error.http_status == 400


@pytest.mark.parametrize(
    ("exc", "expected_type", "expected_message"),
    [
        (RuntimeError("kaput"), "RuntimeError", "RuntimeError: kaput"),
        (KeyError("x"), "KeyError", "KeyError: 'x'"),
        (
            ZeroDivisionError("division by zero"),
            "ZeroDivisionError",
            "ZeroDivisionError: division by zero",
        ),
    ],
)
def test_any_other_exception_is_an_internal_error(
    exc: Exception, expected_type: str, expected_message: str
) -> None:
    """An exception with no specific mapping is INTERNAL_ERROR (500) naming its type."""
    error = error_from_exception(exc)

    assert {
        "code": "INTERNAL_ERROR",
        "message": expected_message,
        "details": {"exception_type": expected_type},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.INTERNAL_ERROR],
    } == error.to_dict()
    assert error.http_status == 500


def test_every_mapped_error_is_json_serialisable() -> None:
    """Whatever the source, the ErrorDetails dict survives a strict json round trip."""
    errors = [
        error_from_exception(QueueFullError(1)),
        error_from_exception(UnknownTaskError("x")),
        error_from_exception(RuntimeError("x")),
        error_from_outcome(Raised.from_exception(OSError("disk"))),
        error_from_outcome(TimedOut(1.5, partial_result=[1, "a"], has_partial_result=True)),
        error_from_outcome(Cancelled(StopReason.SHUTDOWN)),
    ]

    for error in errors:
        assert error is not None
        as_dict = error.to_dict()
        assert as_dict == json.loads(json.dumps(as_dict, allow_nan=False))


def test_a_crashed_child_maps_to_worker_crashed() -> None:
    """Crashed facts become WORKER_CRASHED with exit_code / signal details."""
    import signal

    from actors import Crashed

    killed = error_from_outcome(Crashed(exit_code=None, signal=int(signal.SIGSEGV)))
    assert killed is not None
    assert killed.code is ErrorCodes.WORKER_CRASHED
    assert dict(killed.details) == {
        "exit_code": None,
        "signal": int(signal.SIGSEGV),
        "signal_name": "SIGSEGV",
    }
    assert killed.message == "The worker process running the operation was killed by SIGSEGV"
    exited = error_from_outcome(Crashed(exit_code=3, signal=None))
    assert exited is not None
    assert exited.message == "The worker process running the operation exited with code 3"
    assert dict(exited.details)["exit_code"] == 3


def test_a_resource_limit_maps_to_resource_exhausted() -> None:
    """ResourceExhausted facts become RESOURCE_EXHAUSTED naming the limit and its value."""
    from actors import ResourceExhausted

    error = error_from_outcome(ResourceExhausted("memory_limit_mb", 300.0, "MemoryError"))
    assert error is not None
    assert error.code is ErrorCodes.RESOURCE_EXHAUSTED
    assert dict(error.details) == {
        "limit": "memory_limit_mb",
        "value": 300.0,
        "reason": "MemoryError",
    }
    assert error.message == "Operation exceeded its memory_limit_mb of 300 MB"


def test_an_interrupted_task_maps_to_interrupted_with_when_and_which_attempt() -> None:
    """Interrupted facts (a durable store reopened after a crash) become INTERRUPTED with
    the attempt and both moments as ISO timestamps; the message says whether it ran."""
    from actors import Interrupted

    ran = error_from_outcome(
        Interrupted(was_running=True, attempt=2, last_seen_at=0.0, recovered_at=60.5)
    )
    assert ran is not None
    assert ran.code is ErrorCodes.INTERRUPTED
    assert ran.http_status == 503
    assert dict(ran.details) == {
        "cause": "process_stopped",
        "was_running": True,
        "attempt": 2,
        "last_seen_at": "1970-01-01T00:00:00+00:00",
        "recovered_at": "1970-01-01T00:01:00.500000+00:00",
    }
    assert "while attempt 2 ran" in ran.message
    never = error_from_outcome(
        Interrupted(was_running=False, attempt=0, last_seen_at=0.0, recovered_at=1.0)
    )
    assert never is not None
    assert "before it ran" in never.message
    assert "retry_on_interrupt=True" in never.remediation


def test_a_result_the_store_cannot_keep_maps_to_result_not_serializable() -> None:
    """ResultNotStorable facts become RESULT_NOT_SERIALIZABLE naming the result's type."""
    from actors import ResultNotStorable

    error = error_from_outcome(ResultNotStorable("Frame", "Object of type Frame is not JSON"))
    assert error is not None
    assert error.code is ErrorCodes.RESULT_NOT_SERIALIZABLE
    assert dict(error.details) == {"result_type": "Frame"}
    assert "Frame" in error.message
    assert "not JSON" in error.message


def test_a_store_error_is_service_unavailable_naming_the_file() -> None:
    """A StoreError (locked, unreadable, failed write) is SERVICE_UNAVAILABLE with the
    file in details.location."""
    from actors import StoreLockedError

    error = error_from_exception(StoreLockedError("/data/tasks.db", "locked by another"))
    assert error.code is ErrorCodes.SERVICE_UNAVAILABLE
    assert dict(error.details) == {"location": "/data/tasks.db"}
    assert error.message == "locked by another"


def test_a_failed_dependency_maps_to_dependency_error_naming_it() -> None:
    """DependencyFailed facts become DEPENDENCY_ERROR (424) naming the dependency and how
    it ended."""
    from actors import DependencyFailed

    error = error_from_outcome(DependencyFailed("dep-1", "failed"))
    assert error is not None
    assert error.code is ErrorCodes.DEPENDENCY_ERROR
    assert error.http_status == 424
    assert dict(error.details) == {"dependency_id": "dep-1", "dependency_status": "failed"}
    assert error.message == "Task was cancelled because its dependency dep-1 failed"


def test_an_open_circuit_breaker_is_service_unavailable_with_retry_after() -> None:
    """OperationUnavailableError is SERVICE_UNAVAILABLE with the operation and retry_after."""
    from actors import OperationUnavailableError

    error = error_from_exception(OperationUnavailableError("render", 4.25))
    assert error.code is ErrorCodes.SERVICE_UNAVAILABLE
    assert dict(error.details) == {"operation": "render", "retry_after": 4.25}
    assert "Retry after 4.2 s" in error.message or "Retry after 4.3 s" in error.message
