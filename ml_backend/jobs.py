"""The rq job that trains a project; ``ml-backend worker`` configures the trainer before it works."""

from __future__ import annotations

import logging
from typing import Any

from ml_backend.errors import ConfigurationError
from ml_backend.scheduler import pending_key, slot_key
from ml_backend.training import Trainer

log = logging.getLogger(__name__)

_trainer: Trainer | None = None


def configure(trainer: Trainer) -> None:
    """Called once by the worker's entry point: jobs carry a project id, never settings or tokens."""
    global _trainer
    _trainer = trainer


def train_job(project_id: int) -> dict[str, Any]:
    from rq import get_current_job

    if _trainer is None:
        raise ConfigurationError("the rq worker was not started with `ml-backend worker`")
    job = get_current_job()
    pending: dict[bytes, bytes] = {}
    if job is not None:
        redis = job.connection
        with redis.pipeline() as pipe:  # take the pending events and free both slots in one step
            pipe.hgetall(pending_key(project_id))
            pipe.delete(pending_key(project_id), slot_key(project_id, "now"), slot_key(project_id, "later"))
            pending = pipe.execute()[0]
        if not pending:
            return {"status": "skipped", "detail": "no pending events (another job trained on them)"}
    outcome = _trainer.train(project_id)
    log.info("project %s: training %s", project_id, outcome.get("status"))
    return outcome
