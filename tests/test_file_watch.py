"""FileWatch (actors/_storage/file_watch.py) as plain state: what it says happened to the
file it opened, and when it compares the path, at exact times the test passes (the store
passes time.monotonic())."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors._storage.file_watch import PATH_CHECK_SECONDS, FileWatch


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.db"
    path.write_bytes(b"data")
    return path


def test_an_unchanged_file_is_never_reported(watched: Path) -> None:
    """While the file stays at its path, every check, path compared or not, finds nothing."""
    watch = FileWatch(watched)
    watch.start()
    try:
        assert [watch.check(now) for now in (0.0, 0.5, 1.0, 1.5, 2.0, 100.0)] == [None] * 6
    finally:
        watch.stop()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_file_is_reported_at_once(
    watched: Path, tmp_path: Path, how: str
) -> None:
    """Deleted, or replaced by a rename onto its path, the open file has no name left:
    the next check says so, whatever the time (the link count is looked at every time)."""
    watch = FileWatch(watched)
    watch.start()
    try:
        assert watch.check(0.0) is None  # the path compared now; next at 1.0
        if how == "deleted":
            watched.unlink()
        else:
            other = tmp_path / "other.db"
            other.write_bytes(b"")
            os.replace(other, watched)
        assert watch.check(0.25) == "deleted or replaced"
    finally:
        watch.stop()


def test_a_file_moved_away_is_found_when_the_path_is_next_compared(
    watched: Path, tmp_path: Path
) -> None:
    """A file renamed away keeps its link, so only the path comparison finds it: not
    before PATH_CHECK_SECONDS after the last comparison, and at exactly that time."""
    watch = FileWatch(watched)
    watch.start()
    try:
        assert watch.check(10.0) is None  # compared; the next comparison is at 11.0
        watched.rename(tmp_path / "moved.db")
        assert watch.check(10.0 + PATH_CHECK_SECONDS / 2) is None
        assert watch.check(10.0 + PATH_CHECK_SECONDS) == "moved away or deleted"
    finally:
        watch.stop()


def test_another_file_put_at_the_path_is_reported_as_a_replacement(
    watched: Path, tmp_path: Path
) -> None:
    """The file moved away (still linked) and another put at its path: the path's device
    and inode differ from the open file's."""
    watch = FileWatch(watched)
    watch.start()
    try:
        watched.rename(tmp_path / "moved.db")
        watched.write_bytes(b"another")
        assert watch.check(0.0) == "replaced by another file"
    finally:
        watch.stop()


def test_the_path_comparison_interval_is_the_one_given(watched: Path, tmp_path: Path) -> None:
    """path_check_seconds sets how long after a comparison the next one is made."""
    watch = FileWatch(watched, path_check_seconds=5.0)
    watch.start()
    try:
        assert watch.check(0.0) is None
        watched.rename(tmp_path / "moved.db")
        assert [watch.check(now) for now in (1.0, 4.999)] == [None, None]
        assert watch.check(5.0) == "moved away or deleted"
    finally:
        watch.stop()


def test_a_file_that_cannot_be_opened_is_not_watched(tmp_path: Path) -> None:
    """No file at the path when it starts: nothing is watched and no check reports."""
    watch = FileWatch(tmp_path / "missing.db")
    watch.start()
    assert not watch.watching
    assert watch.check(0.0) is None


def test_stop_closes_the_descriptor_and_ends_the_watch(watched: Path) -> None:
    """stop() closes the watch's own descriptor (a second start() does not leak the
    first), and a stopped watch reports nothing, even for a file deleted since."""
    before = _open_fds()
    watch = FileWatch(watched)
    assert not watch.watching
    watch.start()
    watch.start()
    assert watch.watching
    assert _open_fds() == before + 1
    watch.stop()
    assert not watch.watching
    assert _open_fds() == before
    watched.unlink()
    assert watch.check(0.0) is None
