"""``prelabel``: ask the project's ML backend for a prediction of its current model version on every
task that lacks one, through Label Studio's own bulk path (the ``retrieve_tasks_predictions`` action)
on chunks of task ids.

Nothing is remembered between runs but the request in flight (``DATA_DIR/projects/<id>/prelabel.json``):
what is done is read back from Label Studio, so a rerun after Ctrl-C or a crash does the rest and a
rerun after a complete run asks for nothing. Label Studio finishes a request whose client died; a
rerun first waits for that request's tasks, and deletes any second prediction of the same version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from ls_companion.client import DEFAULT_PAGE_SIZE, LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.files import read_json, write_json_atomic
from ls_companion.prelabel.plan import INFLIGHT_GRACE, ChunkSizer, PrelabelState, sort_tasks
from ls_companion.records import Task
from ls_companion.sync.state import project_dir
from ls_companion.sync.train_step import connected_backend

log = logging.getLogger(__name__)
STATE_FILE = "prelabel.json"
POLL_SECONDS = 2.0


@dataclass
class PrelabelResult:
    project_id: int
    model_version: str
    tasks: int = 0
    already: int = 0
    requested: int = 0
    requests: int = 0
    duplicates_removed: int = 0
    waited_for_crashed_run: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Run:
    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        model_version: str,
        state_path: Path,
        sizer: ChunkSizer,
        on_progress: Callable[[int], None],
    ) -> None:
        self.client = client
        self.project_id = project_id
        self.version = model_version
        self.state_path = state_path
        self.sizer = sizer
        self.on_progress = on_progress
        self.size = sizer.first
        self.result = PrelabelResult(project_id, model_version)

    def _save(self, inflight: list[int]) -> None:
        state = PrelabelState(self.version, inflight, time.time())
        write_json_atomic(self.state_path, state.to_json())

    def wait_for_crashed_run(self, grace: float) -> None:
        state = PrelabelState.from_json(read_json(self.state_path))
        while state.must_wait(self.version, time.time(), grace):
            self.result.waited_for_crashed_run = True
            tasks = self.client.list_tasks(
                self.project_id,
                data=False,
                annotations=False,
                predictions=True,
                prediction_results=False,
                task_ids=state.inflight,
            )
            if not sort_tasks(tasks, self.version).missing:
                return
            time.sleep(POLL_SECONDS)

    def request(self, ids: list[int]) -> None:
        self._save(ids)
        started = time.perf_counter()
        self.client.retrieve_predictions(self.project_id, ids)
        self.size = self.sizer.next(len(ids), time.perf_counter() - started)
        self._save([])
        self.result.requested += len(ids)
        self.result.requests += 1
        self.on_progress(len(ids))

    def scan(self) -> None:
        """Page through the project by id, requesting full chunks as they fill, then the rest."""
        pending: list[int] = []
        tasks = iter(
            self.client.list_tasks(
                self.project_id, data=False, annotations=False, predictions=True, prediction_results=False
            )
        )
        while page := list(islice(tasks, DEFAULT_PAGE_SIZE)):
            pending = self._page(page, pending)
        while pending:
            chunk, pending = pending[: self.size], pending[self.size :]
            self.request(chunk)

    def _page(self, page: list[Task], pending: list[int]) -> list[int]:
        verdicts = sort_tasks(page, self.version)
        self.result.tasks += len(page)
        self.result.already += verdicts.done
        self.on_progress(verdicts.done)
        for prediction_id in verdicts.extra_predictions:
            self.client.delete_prediction(prediction_id)
        self.result.duplicates_removed += len(verdicts.extra_predictions)
        pending = pending + verdicts.missing
        while len(pending) >= self.size:
            chunk, pending = pending[: self.size], pending[self.size :]
            self.request(chunk)
        return pending


def run_prelabel(
    client: LabelStudioClient,
    data_dir: Path,
    project_id: int,
    *,
    sizer: ChunkSizer | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    grace: float = INFLIGHT_GRACE,
) -> PrelabelResult:
    """Pre-label every task of the project that has no prediction of the backend's current version."""
    started = time.perf_counter()
    backend = connected_backend(client, project_id)
    if backend is None:
        raise InputError(f"project {project_id} has no ML backend: connect one (bootstrap's ml_backend.url)")
    if not backend.model_version:
        raise InputError(f"the ML backend of project {project_id} reports no model version")
    run = _Run(
        client,
        project_id,
        backend.model_version,
        project_dir(data_dir, project_id) / STATE_FILE,
        sizer or ChunkSizer(),
        on_progress,
    )
    run.wait_for_crashed_run(grace)
    run.scan()
    run.result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "project %d: pre-labelled %d tasks in %d requests",
        project_id,
        run.result.requested,
        run.result.requests,
    )
    return run.result
