"""``prelabel``: a prediction of the ML backend's current model version on every task that lacks one,
in chunks of tasks, by one of two bulk paths:

- ``import`` (default): the backend's ``/predict`` on the chunk, then one bulk import of its answers
  (``POST /api/projects/<id>/import/predictions``);
- ``action``: Label Studio's own ``retrieve_tasks_predictions`` action on the chunk's ids (Label Studio
  calls ``/predict`` and creates the predictions; many times slower per task, see docs/scale.md).

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
from typing import Any, Literal

from ls_companion.client import DEFAULT_PAGE_SIZE, LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.files import read_json, write_json_atomic
from ls_companion.prelabel.plan import INFLIGHT_GRACE, ChunkSizer, PrelabelState, prediction_rows, sort_tasks
from ls_companion.projectdata import project_dir
from ls_companion.records import Task
from ls_companion.selection.resolve import http_scorer
from ls_companion.selection.scoring import HttpScorer
from ls_companion.settings import Settings

Via = Literal["import", "action"]
VIAS = ("import", "action")
Send = Callable[[list[Task]], None]

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


def action_sender(client: LabelStudioClient, project_id: int) -> Send:
    return lambda tasks: client.retrieve_predictions(project_id, [t.id for t in tasks])


def import_sender(
    client: LabelStudioClient, project_id: int, backend: HttpScorer, label_config: str, model_version: str
) -> Send:
    def send(tasks: list[Task]) -> None:
        answers = backend.predict([{"id": t.id, "data": t.data} for t in tasks], label_config) or []
        rows = prediction_rows([t.id for t in tasks], answers, model_version)
        if rows:
            client.import_predictions(project_id, rows, chunk_size=len(rows))

    return send


class _Run:
    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        model_version: str,
        send: Send,
        with_data: bool,
        state_path: Path,
        sizer: ChunkSizer,
        on_progress: Callable[[int], None],
    ) -> None:
        self.client = client
        self.project_id = project_id
        self.send = send
        self.with_data = with_data
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

    def request(self, tasks: list[Task]) -> None:
        self._save([t.id for t in tasks])
        started = time.perf_counter()
        self.send(tasks)
        self.size = self.sizer.next(len(tasks), time.perf_counter() - started)
        self._save([])
        self.result.requested += len(tasks)
        self.result.requests += 1
        self.on_progress(len(tasks))

    def scan(self) -> None:
        """Page through the project by id, requesting full chunks as they fill, then the rest."""
        pending: list[Task] = []
        tasks = iter(
            self.client.list_tasks(
                self.project_id,
                data=self.with_data,
                annotations=False,
                predictions=True,
                prediction_results=False,
            )
        )
        while page := list(islice(tasks, DEFAULT_PAGE_SIZE)):
            pending = self._page(page, pending)
        while pending:
            chunk, pending = pending[: self.size], pending[self.size :]
            self.request(chunk)

    def _page(self, page: list[Task], pending: list[Task]) -> list[Task]:
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
    settings: Settings,
    client: LabelStudioClient,
    project_id: int,
    *,
    via: Via = "import",
    sizer: ChunkSizer | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    grace: float = INFLIGHT_GRACE,
) -> PrelabelResult:
    """Pre-label every task of the project that has no prediction of the backend's current version."""
    started = time.perf_counter()
    backend = client.connected_backend(project_id)
    if backend is None:
        raise InputError(f"project {project_id} has no ML backend: connect one (bootstrap's ml_backend.url)")
    if not backend.model_version:
        raise InputError(f"the ML backend of project {project_id} reports no model version")
    scorer = None
    if via == "import":
        scorer = http_scorer(settings, client, project_id, "backend")
        if scorer is None:  # "backend" mode raises first; this keeps the type checker informed
            raise InputError(f"project {project_id} has no ML backend URL")
        label_config = client.get_project(project_id).label_config
        send = import_sender(client, project_id, scorer, label_config, backend.model_version)
    else:
        send = action_sender(client, project_id)
    run = _Run(
        client,
        project_id,
        backend.model_version,
        send,
        via == "import",
        project_dir(settings.data_dir, project_id) / STATE_FILE,
        sizer or ChunkSizer(),
        on_progress,
    )
    try:
        run.wait_for_crashed_run(grace)
        run.scan()
    finally:
        if scorer is not None:
            scorer.close()
    run.result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "project %d: pre-labelled %d tasks in %d requests",
        project_id,
        run.result.requested,
        run.result.requests,
    )
    return run.result
