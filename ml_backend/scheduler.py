"""Debounced background training: the webhook records an event and returns at once.

A project trains when ``TRAIN_EVERY_N_ANNOTATIONS`` events are pending, or ``TRAIN_DEBOUNCE_SECONDS``
after its first pending event, or at once on START_TRAINING, whichever comes first. Two runners:

- ``ThreadScheduler`` (no Redis): one background thread per process. It runs each training in a child
  process, because python-crfsuite holds the GIL for up to ~0.6 s at a time while it trains, which
  would stall the predictions this process serves. Several gunicorn workers each count their own
  events; the per-project lock and the "already trained on these events" check in the trainer keep
  them from training twice on the same data.
- ``RqScheduler`` (``REDIS_URL``): pending counts live in Redis, training runs as an rq job in
  ``ml-backend worker``; a delayed job covers the debounce window (the worker runs rq's scheduler).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from ml_backend.settings import BackendSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where and as whom the trainer reads Label Studio."""

    url: str
    token: str = field(repr=False)


def pick_credentials(settings: BackendSettings, hint: Credentials | None) -> tuple[str | None, str | None]:
    """LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY first, else what Label Studio sent in /setup."""
    url = settings.label_studio_url or (hint.url if hint else None)
    key = settings.label_studio_api_key.get_secret_value() if settings.label_studio_api_key else None
    return url, key or (hint.token if hint else None)


@dataclass(frozen=True, slots=True)
class DebouncePolicy:
    every_n: int
    seconds: float

    def due_at(self, count: int, first_at: float, force: bool) -> float:
        return first_at if force or count >= self.every_n else first_at + self.seconds


@dataclass(slots=True)
class _Pending:
    count: int
    first_at: float
    last_at: float
    force: bool
    credentials: Credentials | None


class TrainingScheduler(Protocol):
    def notify(
        self, project_id: int, *, events: int = 1, force: bool = False, credentials: Credentials | None = None
    ) -> None: ...

    def status(self) -> dict[str, Any]: ...


#: (project id, credentials, wall time of the newest event covered) -> outcome dict
RunTraining = Callable[[int, Credentials | None, float], dict[str, Any]]


class ThreadScheduler:
    """In-process debounce with one lazily started daemon thread (so it never crosses a fork)."""

    def __init__(
        self, run: RunTraining, policy: DebouncePolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._run = run
        self._policy = policy
        self._clock = clock
        self._pending: dict[int, _Pending] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running: int | None = None
        self.last_outcomes: dict[int, dict[str, Any]] = {}

    def notify(
        self, project_id: int, *, events: int = 1, force: bool = False, credentials: Credentials | None = None
    ) -> None:
        now = self._clock()
        with self._cond:
            pending = self._pending.get(project_id)
            if pending is None:
                pending = self._pending[project_id] = _Pending(0, now, now, False, None)
            pending.count += events
            pending.last_at = now
            pending.force = pending.force or force
            pending.credentials = credentials or pending.credentials
            self._ensure_thread()
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "mode": "thread",
                "running": self._running,
                "pending": {str(p): v.count for p, v in self._pending.items()},
            }

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending or running (tests, the one-shot CLI)."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._pending or self._running is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="ml-backend-trainer", daemon=True)
            self._thread.start()

    def _next_due(self) -> tuple[int | None, float]:
        best: tuple[int | None, float] = (None, float("inf"))
        for project_id, p in self._pending.items():
            due = self._policy.due_at(p.count, p.first_at, p.force)
            if due < best[1]:
                best = (project_id, due)
        return best

    def _loop(self) -> None:
        while True:
            with self._cond:
                project_id, due = self._next_due()
                wait = due - self._clock()
                if project_id is None or wait > 0:
                    self._cond.wait(None if project_id is None else wait)
                    continue
                pending = self._pending.pop(project_id)
                self._running = project_id
            covered = time.time() - (self._clock() - pending.last_at)  # wall time of the newest event
            try:
                outcome = self._run(project_id, pending.credentials, covered)
            except Exception as exc:  # the loop must survive anything a training does
                log.exception("project %s: training crashed", project_id)
                outcome = {"status": "failed", "detail": type(exc).__name__}
            with self._cond:
                self.last_outcomes[project_id] = outcome
                self._running = None
                self._cond.notify_all()


#: By name: ``jobs`` imports the trainer, which imports this module, so this one must not import ``jobs``.
TRAIN_JOB = "ml_backend.jobs.train_job"


class RqScheduler:
    """Pending counts in Redis; training as rq jobs (``ml_backend.jobs.train_job``)."""

    def __init__(self, redis_url: str, queue_name: str, policy: DebouncePolicy) -> None:
        import redis
        from rq import Queue

        self._redis = redis.Redis.from_url(redis_url)
        self._queue = Queue(queue_name, connection=self._redis)
        self._policy = policy

    def notify(
        self, project_id: int, *, events: int = 1, force: bool = False, credentials: Credentials | None = None
    ) -> None:
        # Credentials from /setup are not put into Redis: the worker uses its own LABEL_STUDIO_API_KEY.
        now = time.time()
        key = pending_key(project_id)
        with self._redis.pipeline() as pipe:
            pipe.hincrby(key, "count", events)
            pipe.hsetnx(key, "first_at", now)
            pipe.hset(key, "last_at", now)
            if force:
                pipe.hset(key, "force", 1)
            pipe.hgetall(key)
            state = pipe.execute()[-1]
        count = int(state.get(b"count", 0))
        first_at = float(state.get(b"first_at", now))
        due = self._policy.due_at(count, first_at, bool(state.get(b"force")))
        delay = max(0.0, due - now)
        slot = "now" if delay == 0 else "later"
        # One queued job per project and slot; the job clears its slot when it starts.
        if self._redis.set(slot_key(project_id, slot), 1, nx=True, ex=int(self._policy.seconds) + 3600):
            if delay == 0:
                self._queue.enqueue(TRAIN_JOB, project_id, job_timeout=3600)
            else:
                self._queue.enqueue_in(timedelta(seconds=delay), TRAIN_JOB, project_id, job_timeout=3600)

    def status(self) -> dict[str, Any]:
        return {"mode": "rq", "queue": self._queue.name, "queued_jobs": self._queue.count}


def pending_key(project_id: int) -> str:
    return f"ml-backend:pending:{project_id}"


def slot_key(project_id: int, slot: str) -> str:
    return f"ml-backend:slot:{project_id}:{slot}"
