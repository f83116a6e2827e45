"""StartGate: a late start and a stop race on one lock; exactly one wins, and RUNNING is
recorded (under the gate) only when the start wins, over many rounds."""

from __future__ import annotations

import threading

from actors import StopReason
from actors._execution.start_gate import StartGate

ROUNDS = 2000


def _race_once() -> tuple[StartGate, list[str], dict[str, object]]:
    """One start and one stop, released together on two threads."""
    gate = StartGate()
    recorded: list[str] = []
    barrier = threading.Barrier(2)
    result: dict[str, object] = {}

    def start() -> None:
        barrier.wait()
        result["open"] = gate.open(lambda: recorded.append("running"))

    def stop() -> None:
        barrier.wait()
        result["stop"] = gate.stop(StopReason.CANCEL_REQUESTED)

    threads = [threading.Thread(target=start), threading.Thread(target=stop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    return gate, recorded, result


def test_the_start_or_the_stop_wins_never_both() -> None:
    """Over many rounds of a start and a stop racing on two threads, either RUNNING was
    recorded and the stop learns the attempt had started, or nothing was recorded and
    the start gets the stop's reason."""
    wins = {"start": 0, "stop": 0}
    for _ in range(ROUNDS):
        gate, recorded, result = _race_once()
        if result["open"] is None:
            assert (recorded, result["stop"], gate.started) == (["running"], False, True)
            wins["start"] += 1
        else:
            assert (recorded, result["stop"], result["open"], gate.started) == (
                [],
                True,
                StopReason.CANCEL_REQUESTED,
                False,
            )
            wins["stop"] += 1
    assert sum(wins.values()) == ROUNDS


def test_the_first_stop_reason_is_kept() -> None:
    """Two stops before the start: the start gets the first one's reason."""
    gate = StartGate()
    assert gate.stop(StopReason.CANCEL_REQUESTED) is True
    assert gate.stop(StopReason.SHUTDOWN) is True
    assert gate.open(lambda: None) is StopReason.CANCEL_REQUESTED


def test_a_stop_after_the_start_changes_nothing() -> None:
    """Once started, a stop is told so (the attempt is stopped by its levers instead)."""
    gate = StartGate()
    assert gate.open(lambda: None) is None
    assert gate.stop(StopReason.TIMEOUT) is False
    assert gate.started is True
