"""One running sync (or top-up) per project.

- A local lock file (``flock``) guards the project's store on this machine; the kernel drops it when
  the process dies, kill -9 included.
- With Redis, a lock key with an expiry, renewed by a thread while the job runs: a worker that dies
  stops renewing, and the key expires before rq hands the abandoned job to another worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ls_companion.errors import CompanionError

log = logging.getLogger(__name__)

LOCK_FILE = "sync.lock"
LOCK_TTL = 30  # seconds; renewed every third of it
POLL = 0.25


class SyncBusy(CompanionError):
    """Another sync of the same project holds its lock."""


class LockLost(CompanionError):
    """The Redis lock expired while we ran (the process stalled): our results must not be committed."""


@contextmanager
def local_lock(folder: Path, *, what: str, wait: float) -> Iterator[None]:
    """Hold ``folder/sync.lock`` exclusively, waiting up to ``wait`` seconds for it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(f"another {what} is running (lock {folder / LOCK_FILE})") from None
                time.sleep(POLL)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class RedisLock:
    """A renewed Redis lock; ``held()`` says whether it was never lost."""

    def __init__(self, connection: Any, key: str, *, ttl: int = LOCK_TTL) -> None:
        self._lock = connection.lock(key, timeout=ttl, thread_local=False)
        self._ttl = ttl
        self._stop = threading.Event()
        self._lost = False
        self._thread: threading.Thread | None = None

    def acquire(self, wait: float) -> bool:
        if not self._lock.acquire(blocking=True, blocking_timeout=wait):
            return False
        self._thread = threading.Thread(target=self._renew, name="lsc-lock-renewal", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self._stop.wait(self._ttl / 3):
            try:
                self._lock.reacquire()
            except LockError:
                self._lost = True
                log.error("lost the lock %s: another worker may be running the same job", self._lock.name)
                return
            except RedisError as exc:  # a blip: try again at the next tick, the key still has time
                log.warning("could not renew the lock %s (%s)", self._lock.name, exc)

    def held(self) -> bool:
        return not self._lost

    def release(self) -> None:
        from redis.exceptions import LockError

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(LockError):  # expired or taken over: nothing of ours to release
            self._lock.release()


@contextmanager
def redis_lock(connection: Any, key: str, *, what: str, wait: float) -> Iterator[RedisLock]:
    lock = RedisLock(connection, key)
    if not lock.acquire(wait):
        raise SyncBusy(f"another {what} is running (Redis lock {key})")
    try:
        yield lock
    finally:
        lock.release()
