"""Redis and the rq queues: connecting (with a clear error), enqueueing with timeouts and retries,
and what ``status`` reads back (depths, failed jobs with a one-line reason, the cron schedules).

Queues: ``sync`` (``sync_project``, the cron's ``kick_sync``), ``select`` (top-ups), ``train``. A
``lsc:pending:<queue>:<project>`` key holds the id of a project's job waiting in a queue, so the same
work is not queued twice; the job removes it when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ls_companion.errors import QueueUnavailable
from ls_companion.sync.options import SyncOptions, TopupOptions, options_payload

SYNC, SELECT, TRAIN = "sync", "select", "train"
QUEUES = (SYNC, SELECT, TRAIN)
CONNECT_TIMEOUT = 3.0
#: Seconds a pending marker outlives its job at most (the job normally removes it when it starts).
PENDING_TTL = 6 * 3600
TRAIN_TIMEOUT = 300
KICK_TIMEOUT = 60
FAILURE_TTL = 7 * 24 * 3600
RESULT_TTL = 24 * 3600
#: Jobs are enqueued by name: the worker imports ``jobs``, which imports this module, not the reverse.
_JOBS = "ls_companion.sync.jobs."


def redact(url: str) -> str:
    """``url`` without its password, fit for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> Any:
    """A Redis connection that answered a PING, or ``QueueUnavailable`` with a one-line reason."""
    import redis

    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
        connection.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueueUnavailable(f"cannot reach Redis at {redact(url)} ({reason})") from None
    return connection


def lock_key(queue: str, project_id: int) -> str:
    return f"lsc:lock:{queue}:{project_id}"


def pending_key(queue: str, project_id: int) -> str:
    return f"lsc:pending:{queue}:{project_id}"


def clear_pending(connection: Any, queue: str, project_id: int, job_id: str) -> None:
    """Called by a job as it starts: the project has no job of this kind waiting any more."""
    key = pending_key(queue, project_id)
    if (connection.get(key) or b"").decode() == job_id:
        connection.delete(key)


def _waiting(connection: Any, job_id: str) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        status = Job.fetch(job_id, connection=connection).get_status()
    except NoSuchJobError:
        return False
    return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    queue: str
    already_pending: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "queue": self.queue, "already_pending": self.already_pending}


def _enqueue_once(
    connection: Any,
    queue_name: str,
    job: str,
    kwargs: dict[str, Any],
    options: SyncOptions,
    *,
    timeout: int,
    description: str,
) -> Enqueued:
    """Enqueue ``job`` (a function of ``jobs``) with the options' retries, unless this project already has
    a job of this kind waiting (then return that one)."""
    from rq import Queue, Retry

    key = pending_key(queue_name, kwargs["project_id"])
    current = connection.get(key)
    if current is not None and _waiting(connection, current.decode()):
        return Enqueued(current.decode(), queue_name, already_pending=True)
    retry = (
        Retry(max=options.job_retries, interval=list(options.retry_backoff)) if options.job_retries else None
    )
    queued = Queue(queue_name, connection=connection).enqueue(
        _JOBS + job,
        kwargs=kwargs,
        job_timeout=timeout,
        retry=retry,
        description=description,
        failure_ttl=FAILURE_TTL,
        result_ttl=RESULT_TTL,
    )
    connection.set(key, queued.id, ex=PENDING_TTL)
    return Enqueued(queued.id, queue_name)


def enqueue_sync(connection: Any, project_id: int, options: SyncOptions, *, full: bool = False) -> Enqueued:
    kwargs = {"project_id": project_id, "options": options_payload(options), "full": full}
    what = f"sync project {project_id}"
    return _enqueue_once(
        connection, SYNC, "sync_project", kwargs, options, timeout=options.job_timeout, description=what
    )


def enqueue_train(connection: Any, project_id: int, backend_id: int, options: SyncOptions) -> Enqueued:
    kwargs = {"project_id": project_id, "backend_id": backend_id}
    what = f"train the ML backend of project {project_id}"
    return _enqueue_once(
        connection, TRAIN, "train_project", kwargs, options, timeout=TRAIN_TIMEOUT, description=what
    )


def enqueue_topup(connection: Any, project_id: int, topup: TopupOptions, options: SyncOptions) -> Enqueued:
    kwargs = {"project_id": project_id, "topup": topup.model_dump(mode="json")}
    what = f"top up project {project_id}"
    return _enqueue_once(
        connection, SELECT, "topup_project", kwargs, options, timeout=options.job_timeout, description=what
    )


class QueueDispatcher:
    """Follow-ups of a queued sync become jobs on the ``train`` and ``select`` queues."""

    mode = "queued"

    def __init__(self, connection: Any, options: SyncOptions) -> None:
        self._connection = connection
        self._options = options

    def train(self, project_id: int, backend_id: int) -> dict[str, Any]:
        queued = enqueue_train(self._connection, project_id, backend_id, self._options)
        return {"project_id": project_id, "backend_id": backend_id, "requested": True, **queued.to_json()}

    def topup(self, project_id: int, options: TopupOptions) -> dict[str, Any]:
        queued = enqueue_topup(self._connection, project_id, options, self._options)
        return {"project_id": project_id, **queued.to_json()}


# -- what status shows ---------------------------------------------------------------------------------


def one_line_reason(exc_string: str | None) -> str:
    """The last line of a traceback, without the exception's module path."""
    lines = [line.strip() for line in (exc_string or "").splitlines() if line.strip()]
    if not lines:
        return "unknown reason"
    last = lines[-1]
    head, sep, rest = last.partition(": ")
    if sep and "." in head and " " not in head:
        last = f"{head.rsplit('.', 1)[-1]}: {rest}"
    return last


def queue_depths(connection: Any) -> dict[str, dict[str, int]]:
    from rq import Queue

    depths = {}
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        depths[name] = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
    return depths


def failed_jobs(connection: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest failed jobs of our queues, each with its project and a one-line reason."""
    from rq import Queue
    from rq.job import Job

    found = []
    for name in QUEUES:
        registry = Queue(name, connection=connection).failed_job_registry
        for job in Job.fetch_many(registry.get_job_ids(), connection=connection):
            if job is None:
                continue
            result = job.latest_result()
            found.append(
                {
                    "job_id": job.id,
                    "queue": name,
                    "function": (job.func_name or "").rsplit(".", 1)[-1],
                    "project_id": job.kwargs.get("project_id"),
                    "ended_at": job.ended_at.isoformat() if job.ended_at else None,
                    "reason": one_line_reason(result.exc_string if result is not None else None),
                }
            )
    found.sort(key=lambda j: j["ended_at"] or "", reverse=True)
    return found[:limit]


def scheduled_entries(connection: Any) -> list[dict[str, Any]]:
    """The entries of the cron schedulers alive in Redis (for ``status``)."""
    from rq.cron import CronScheduler

    found = []
    for scheduler in CronScheduler.all(connection):
        for job in scheduler.get_jobs():
            found.append(
                {
                    "scheduler": scheduler.name,
                    "name": job.name,
                    "every_seconds": job.interval,
                    "last_enqueued": job.latest_enqueue_time.isoformat() if job.latest_enqueue_time else None,
                    "next_enqueue": job.next_enqueue_time.isoformat() if job.next_enqueue_time else None,
                }
            )
    return found


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Redis failing half-way through a command becomes the same one-line error as at connect time."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueueUnavailable(f"Redis at {redact(url)} failed ({reason})") from None
