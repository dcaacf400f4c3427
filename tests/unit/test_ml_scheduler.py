"""The thread scheduler's debounce: every N events, T seconds after the first, or at once when forced."""

from __future__ import annotations

import threading
import time
from typing import Any

from ml_backend.scheduler import Credentials, DebouncePolicy, ThreadScheduler


class Recorder:
    def __init__(self, pause: float = 0.0) -> None:
        self.runs: list[tuple[int, float]] = []
        self.pause = pause
        self.lock = threading.Lock()

    def __call__(
        self, project_id: int, credentials: Credentials | None, covered_after: float
    ) -> dict[str, Any]:
        time.sleep(self.pause)
        with self.lock:
            self.runs.append((project_id, time.monotonic()))
        return {"status": "published"}


def test_due_time_policy() -> None:
    policy = DebouncePolicy(every_n=3, seconds=10.0)
    assert policy.due_at(1, 100.0, False) == 110.0
    assert policy.due_at(3, 100.0, False) == 100.0
    assert policy.due_at(1, 100.0, True) == 100.0


def test_n_events_train_at_once_and_fewer_wait_for_the_debounce() -> None:
    recorder = Recorder()
    scheduler = ThreadScheduler(recorder, DebouncePolicy(every_n=3, seconds=0.6))
    started = time.monotonic()
    for _ in range(3):
        scheduler.notify(1)
    scheduler.notify(2)
    assert scheduler.wait_idle(5)
    runs = dict(recorder.runs)
    assert runs[1] - started < 0.4  # three events: due now
    assert runs[2] - started >= 0.6  # one event: after the debounce window
    assert scheduler.last_outcomes == {1: {"status": "published"}, 2: {"status": "published"}}


def test_events_during_a_run_give_exactly_one_more_run_and_force_skips_the_wait() -> None:
    recorder = Recorder(pause=0.3)
    scheduler = ThreadScheduler(recorder, DebouncePolicy(every_n=100, seconds=30.0))
    scheduler.notify(1, force=True)  # START_TRAINING
    time.sleep(0.1)
    assert scheduler.status()["running"] == 1
    for _ in range(5):
        scheduler.notify(1, force=True)
    assert scheduler.wait_idle(5)
    assert [p for p, _ in recorder.runs] == [1, 1]


def test_a_crashing_run_does_not_stop_the_loop() -> None:
    calls: list[int] = []

    def run(project_id: int, credentials: Credentials | None, covered_after: float) -> dict[str, Any]:
        calls.append(project_id)
        if project_id == 1:
            raise RuntimeError("boom")
        return {"status": "published"}

    scheduler = ThreadScheduler(run, DebouncePolicy(every_n=1, seconds=0))
    scheduler.notify(1)
    assert scheduler.wait_idle(5)
    scheduler.notify(2)
    assert scheduler.wait_idle(5)
    assert calls == [1, 2] and scheduler.last_outcomes[1]["status"] == "failed"
