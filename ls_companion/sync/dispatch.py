"""Follow-up work a sync asks for (training, a top-up), run at once or queued.

``run_sync`` only decides; a dispatcher carries it out. Inline mode runs the step in the same
process (a failure is reported in the sync's result and the step is asked for again next sync);
queued mode (``queues.QueueDispatcher``) enqueues a job on the ``train`` or ``select`` queue.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ls_companion.client import LabelStudioClient
from ls_companion.errors import CompanionError
from ls_companion.settings import Settings
from ls_companion.sync.options import TopupOptions
from ls_companion.sync.topup_step import run_topup
from ls_companion.sync.train_step import request_training

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    mode: str

    def train(self, project_id: int, backend_id: int) -> dict[str, Any]: ...

    def topup(self, project_id: int, options: TopupOptions) -> dict[str, Any]: ...


class InlineDispatcher:
    mode = "inline"

    def __init__(self, settings: Settings, client: LabelStudioClient) -> None:
        self._settings = settings
        self._client = client

    def train(self, project_id: int, backend_id: int) -> dict[str, Any]:
        try:
            return request_training(self._client, project_id, backend_id)
        except CompanionError as exc:
            log.warning("project %d: training request failed: %s", project_id, exc)
            return {"project_id": project_id, "backend_id": backend_id, "requested": False, "error": str(exc)}

    def topup(self, project_id: int, options: TopupOptions) -> dict[str, Any]:
        try:
            return run_topup(self._settings, self._client, project_id, options)
        except CompanionError as exc:
            log.warning("project %d: top-up failed: %s", project_id, exc)
            return {"project_id": project_id, "imported": 0, "error": str(exc)}
