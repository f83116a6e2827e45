"""isolation="ray": the Ray tests in a PID namespace of their own, and the errors
without Ray or without a Ray back-end.

Every test that touches Ray (imports ``ray``, builds a ``RayBackend`` of a real address,
starts a cluster) is in tests/ray_cluster/, which the normal session does not collect:
the first test below runs them in a nested ``unshare -fp --mount-proc`` pytest, so no Ray
process can outlive the run, ``ray``'s machine-wide lookups see no other cluster, and a
private ``RAY_TMPDIR``, token and ``HOME`` keep every file it writes under tmp_path. The
two others stay here because they never import ``ray`` (one checks that, the other hides
it from a subprocess), so they also run where the extra is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from actors import RayNotInstalledError, RayUnavailableError
from storycore_tasks import TaskManager

ROOT = Path(__file__).resolve().parent.parent


def _noop(params: object, task: object) -> str:
    return "ok"


@pytest.mark.timeout(700)
@pytest.mark.starts_first
def test_the_ray_cluster_suite_passes_in_its_own_pid_namespace(tmp_path: Path) -> None:
    """Runs tests/ray_cluster/ on a head and two nodes; it must pass and leave nothing."""
    if importlib.util.find_spec("ray") is None:  # found, not imported: ray stays out of here
        pytest.skip("the test extra pulls the ray extra; reinstall .[test]")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("the Ray cluster tests need root and unshare(1) for a PID namespace")
    home = tmp_path / "home"
    home.mkdir()
    # Short: Ray's socket paths under it must fit AF_UNIX's 107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="sct-ray-", dir="/tmp"))
    try:
        _run_nested(tmp_path, home, ray_tmp)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert list(home.iterdir()) == []  # nothing under $HOME (Ray's token file included)


def _run_nested(tmp_path: Path, home: Path, ray_tmp: Path) -> None:
    env = {
        **os.environ,
        "STORYCORE_RAY_NESTED": "1",
        "RAY_TMPDIR": str(ray_tmp),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "nested.log"
    command = [
        "unshare", "-fp", "--mount-proc",
        sys.executable, "-m", "pytest", "tests/ray_cluster",
        "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "timeout=120", "--durations=8",
        "-n", "0",  # in one process: the session's one cluster is the suite's whole fixture
    ]  # fmt: skip
    with log.open("wb") as out:  # a file, not a pipe: daemons would hold a pipe open
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, timeout=640, check=False,
        )  # fmt: skip
    text = log.read_text(errors="replace")
    failures = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR", "E   "))]
    assert done.returncode == 0, "\n".join(failures[:60]) + "\n...\n" + text[-3000:]
    summary = re.findall(r"(\d+) passed", text)
    assert summary, text[-3000:]
    assert int(summary[-1]) >= 10, text[-3000:]
    assert " skipped" not in text.splitlines()[-1], text[-3000:]


def test_isolation_ray_without_a_backend_is_refused() -> None:
    """isolation='ray' with no RayBackend: a typed error naming the fix (ray not imported)."""
    manager = TaskManager()
    try:
        with pytest.raises(RayUnavailableError, match=r"ray=RayBackend\(address='local'\)"):
            manager.create_task(_noop, isolation="ray")
    finally:
        manager.shutdown(wait=True)
    with pytest.raises(RayUnavailableError, match="no Ray back-end"):
        TaskManager(isolation="ray")
    assert "ray" not in sys.modules  # refused without looking for Ray


_WITHOUT_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _NoRay())
from storycore_tasks import RayBackend, RayNotInstalledError, TaskManager
def op(params, task):
    return "ran"
with TaskManager() as manager:
    assert manager.wait(manager.create_task(op), timeout=30)["result"] == "ran"
try:
    RayBackend(address="local")
except RayNotInstalledError as exc:
    print("REFUSED:", exc)
assert "ray" not in sys.modules
"""


def test_without_the_ray_extra_the_library_works_and_ray_is_refused() -> None:
    """Ray hidden from imports: thread tasks run; RayBackend names the extra."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RAY], capture_output=True, text=True, timeout=60,
        cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "REFUSED:" in done.stdout
    assert "pip install 'storycore-tasks[ray]'" in done.stdout
    assert issubclass(RayNotInstalledError, ImportError)


_DEMO_WITHOUT_RAY = (
    _WITHOUT_RAY.split("from storycore_tasks import")[0]
    + """
from storycore_tasks.cli import main
code = main(["demo", "--ray", "--memory"])
print("CODE", code)
assert "ray" not in sys.modules
"""
)


def test_demo_ray_without_the_extra_names_it() -> None:
    """Ray hidden from imports: demo --ray stops with one error line naming the extra."""
    done = subprocess.run(
        [sys.executable, "-c", _DEMO_WITHOUT_RAY], capture_output=True, text=True,
        timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "CODE 1" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "demo --ray needs Ray" in errors[0]
    assert "pip install 'storycore-tasks[ray]'" in errors[0]
