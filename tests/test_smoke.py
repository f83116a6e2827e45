"""A first end-to-end run through the public API."""

from storycore_tasks import TaskManager


def test_a_task_runs_to_completion(make_manager) -> None:
    """create_task answers with an id; wait returns the completed status with the result."""
    manager: TaskManager = make_manager(num_workers=2)
    task_id = manager.create_task(lambda params, task: params["x"] * 2, {"x": 21})
    status = manager.wait(task_id, timeout=10)
    assert status["status"] == "completed"
    assert status["result"] == 42
