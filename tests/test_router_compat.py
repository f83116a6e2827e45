"""StoryCore compatibility of the router's task endpoints: an id that names no task is
NOT_FOUND, whatever its shape, as StoryCore's own router and tests expect."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from storycore_tasks import APIRouter, TaskManager, register_task_endpoints
from storycore_tasks.errors import REMEDIATION_BY_CODE, ErrorCodes

MakeManager = Callable[..., TaskManager]
STATUS = "storycore.task.status"
CANCEL = "storycore.task.cancel"


def _router(manager: TaskManager) -> APIRouter:
    router = APIRouter()
    register_task_endpoints(router, manager)
    return router


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("non-existent-id", id="storycore-tests-id"),
        pytest.param("abc", id="not-a-uuid"),
        pytest.param("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", id="uuid-shaped-not-hex"),
        pytest.param("12345678123456781234567812345678----", id="36-chars-hyphens-misplaced"),
        pytest.param(str(uuid.uuid4()), id="well-formed-unknown"),
    ],
)
@pytest.mark.parametrize(("path", "method"), [(STATUS, "GET"), (CANCEL, "POST")])
def test_an_id_that_names_no_task_is_not_found(
    make_manager: MakeManager, path: str, method: str, task_id: str
) -> None:
    """status and cancel answer a non-empty string that names no task with NOT_FOUND
    (404), malformed or not (a malformed one was VALIDATION_ERROR before)."""
    router = _router(make_manager(num_workers=1))

    response = router.route_request(path, method, {"task_id": task_id})

    assert response.http_status == 404
    assert response.error is not None
    assert {
        "code": "NOT_FOUND",
        "message": f"Task {task_id} not found",
        "details": {"task_id": task_id},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.NOT_FOUND],
    } == response.error.to_dict()


def test_a_huge_malformed_id_is_cut_in_the_answer(make_manager: MakeManager) -> None:
    """A malformed id is shown cut to 64 characters: the answer does not echo a huge input."""
    router = _router(make_manager(num_workers=1))

    response = router.route_request(STATUS, "GET", {"task_id": "x" * 10_000})

    assert response.error is not None
    assert response.error.code is ErrorCodes.NOT_FOUND
    assert response.error.details == {"task_id": "x" * 64}


@pytest.mark.parametrize("params", [{}, {"task_id": ""}, {"task_id": "  "}, {"task_id": 5}])
@pytest.mark.parametrize(("path", "method"), [(STATUS, "GET"), (CANCEL, "POST")])
def test_a_missing_empty_or_non_string_id_stays_a_validation_error(
    make_manager: MakeManager, path: str, method: str, params: dict[str, object]
) -> None:
    """No id at all, an empty or blank one, or one that is not a string is still a
    VALIDATION_ERROR (400): the request is malformed, not the id unknown."""
    router = _router(make_manager(num_workers=1))

    response = router.route_request(path, method, params)

    assert response.http_status == 400
    assert response.error is not None
    assert response.error.code is ErrorCodes.VALIDATION_ERROR
