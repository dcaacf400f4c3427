"""Follow-up work a sync asks for: training after N new annotations, a top-up when a project runs low.

``run_sync`` only decides; a dispatcher carries it out. Inline mode runs the step in the same
process (a failure is reported in the sync's result and the step is asked for again next sync);
queued mode (``queues.QueueDispatcher``) enqueues a job on the ``train`` or ``select`` queue.

Training: LS forwards ``ml.train`` to the backend as START_TRAINING; this covers annotation webhooks
LS dropped (1 s timeout, no retries). A duplicate request is harmless: the backend debounces and skips
training on data it has already seen.

Top-ups: seam to the selection pipeline (issue 4): ``run_topup`` builds a ``SelectRequest`` and calls
``run_select``, which is idempotent and resumable (it never imports a source id twice and resumes an
unfinished round of the same request), so a top-up killed in the middle of its import is finished
by its retry.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Protocol

from ls_companion.client import LabelStudioClient
from ls_companion.errors import CompanionError
from ls_companion.files import read_json, write_json_atomic
from ls_companion.projectdata import project_dir
from ls_companion.records import Project
from ls_companion.settings import Settings
from ls_companion.sync.options import TopupOptions

log = logging.getLogger(__name__)
INTENT_FILE = "topup.json"


# -- training ----------------------------------------------------------------------------------------


def training_due(new_annotations: int, retrain_after: int) -> bool:
    """Whether the annotations counted since the last request call for another one (0 disables)."""
    return retrain_after > 0 and new_annotations >= retrain_after


def request_training(client: LabelStudioClient, project_id: int, backend_id: int) -> dict[str, Any]:
    """Ask LS to train ``backend_id``; returns what the status shows."""
    client.train(backend_id)
    return {"project_id": project_id, "backend_id": backend_id, "requested": True}


# -- top-ups -----------------------------------------------------------------------------------------


def unlabeled(project: Project) -> int:
    return max(0, project.task_number - project.finished_task_number)


def topup_size(project: Project, options: TopupOptions) -> int:
    """Tasks the next batch may hold: the batch size within what is left of the budget."""
    return max(0, min(options.batch, options.budget - project.task_number))


def topup_due(project: Project, options: TopupOptions) -> bool:
    return unlabeled(project) < options.below and topup_size(project, options) > 0


def _request(project_id: int, options: TopupOptions, size: int) -> Any:
    from ls_companion.selection.importer import SelectRequest

    return SelectRequest(
        project_id=project_id,
        pool=Path(options.pool),
        strategy=options.strategy,
        batch=size,
        seed=options.seed,
        id_column=options.id_column,
        gold=Path(options.gold) if options.gold else None,
        gold_rate=options.gold_rate,
        with_predictions=options.with_predictions,
        chunk_size=options.chunk_size,
    )


def run_topup(
    settings: Settings, client: LabelStudioClient, project_id: int, options: TopupOptions
) -> dict[str, Any]:
    """Import the next batch if the project needs one, or finish the one a crash interrupted.

    The batch size is written down (``topup.json``) before the import starts: the selection resumes
    a round by its request, and the request includes the size, which a partial import would change.
    """
    from ls_companion.selection.importer import run_select
    from ls_companion.selection.resolve import http_scorer
    from ls_companion.selection.rounds import last_round, read_project_state

    intent_path = project_dir(settings.data_dir, project_id) / INTENT_FILE
    intent = read_json(intent_path)
    if intent is None:
        project = client.get_project(project_id)
        if not topup_due(project, options):
            return {"project_id": project_id, "imported": 0, "skipped": "no top-up needed"}
        size = topup_size(project, options)
        write_json_atomic(intent_path, {"batch": size})
    else:
        size = int(intent["batch"])
    request = _request(project_id, options, size)
    last = last_round(read_project_state(client, project_id), request.key)
    unfinished = last is not None and len(last.members) < size
    if intent is not None and not unfinished:
        intent_path.unlink(missing_ok=True)  # the interrupted top-up had finished its import
        return {"project_id": project_id, "imported": 0, "skipped": "the interrupted top-up was complete"}
    scorer = http_scorer(settings, client, project_id, "auto")  # as `select` finds and configures it
    try:
        report = run_select(client, scorer, request, data_dir=settings.data_dir)
        if report.nothing_to_do and not unfinished:
            # The last round is complete and the model has not changed since: still, the queue is low.
            report = run_select(
                client, scorer, dataclasses.replace(request, new_round=True), data_dir=settings.data_dir
            )
    finally:
        if scorer is not None:
            scorer.close()
    intent_path.unlink(missing_ok=True)
    summary = report.to_json()
    summary.pop("items", None)
    return summary


# -- running them ------------------------------------------------------------------------------------


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
