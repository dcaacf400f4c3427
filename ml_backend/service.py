"""The backend's behaviour behind the HTTP routes: store + models + scheduler, no Flask.

For active learning in the same process (no HTTP), use ``score_items`` or ``load_scorer``: they read the
same published model from MODEL_DIR that ``/score`` and ``/predict`` serve.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ml_backend.errors import NotTrained
from ml_backend.labelconfig import parse_label_config
from ml_backend.media import MediaFetcher
from ml_backend.metrics import Metrics
from ml_backend.predictor import (
    Scorer,
    ScoreResult,
    minimum_score,
    predict_tasks,
    serves,
    serving_controls,
    serving_version,
)
from ml_backend.protocol import PredictRequest, ScoreRequest, SetupRequest, WebhookEvent
from ml_backend.scheduler import Credentials, TrainingScheduler, pick_credentials
from ml_backend.settings import BackendSettings
from ml_backend.store import ModelStore

log = logging.getLogger(__name__)

JSON = dict[str, Any]

_stores: dict[Path, ModelStore] = {}
_stores_lock = threading.Lock()


def _shared_store(model_dir: Path) -> ModelStore:
    key = model_dir.resolve()
    with _stores_lock:
        return _stores.setdefault(key, ModelStore(key))


def load_scorer(model_dir: Path, project_id: int, control: str | None = None) -> Scorer:
    """The newest published model of a project for one control (default: the first trained one).

    ``scorer.score_texts(texts)`` returns a ``ScoreResult`` with numpy arrays; call it on chunks of a
    large pool. Raises ``NotTrained`` when the project has no model. Reloads only after a publication.
    """
    loaded = _shared_store(model_dir).current(project_id)
    if loaded is None:
        raise NotTrained(f"project {project_id} has no trained model in {model_dir}")
    return Scorer(loaded, control)


def score_items(
    model_dir: Path, project_id: int, tasks: Sequence[Mapping[str, Any]], *, control: str | None = None
) -> ScoreResult:
    """What ``POST /score`` answers, in process: ``tasks`` are ``{"id": ..., "data": {...}}``.

    ``result.as_json()`` is the exact /score response body.
    """
    return load_scorer(model_dir, project_id, control).score_tasks(tasks)


class BackendService:
    def __init__(
        self,
        settings: BackendSettings,
        store: ModelStore,
        scheduler: TrainingScheduler,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.metrics = metrics or Metrics()
        self._credentials: dict[int, Credentials] = {}
        self._media: dict[tuple[str | None, str | None], MediaFetcher] = {}
        self._media_lock = threading.Lock()

    # -- Label Studio's protocol ----------------------------------------------------------------------

    def health(self) -> JSON:
        return {
            "status": "UP",
            "model_class": "ls-companion text models",
            "training": self.scheduler.status(),
        }

    def setup(self, request: SetupRequest) -> JSON:
        if request.hostname and request.access_token:
            self._credentials[request.project_id] = Credentials(request.hostname, request.access_token)
        config = parse_label_config(request.label_config)
        loaded = self.store.current(request.project_id)
        ready = [serves(loaded, spec) for spec in config.controls]
        return {
            "model_version": serving_version(loaded, any(ready)),
            "controls": [
                {**spec.as_dict(), "trained": r} for spec, r in zip(config.controls, ready, strict=True)
            ],
            "unsupported": [u.as_dict() for u in config.unsupported],
        }

    def predict(self, request: PredictRequest) -> JSON:
        config = parse_label_config(request.label_config)
        loaded = self.store.current(request.project_id)
        serving = serving_controls(loaded, config)
        version = serving_version(loaded, bool(serving))
        if not serving:  # one empty list per task: LS stores nothing and logs no error
            return {"results": [[] for _ in request.tasks], "model_version": version}
        minimum = minimum_score(loaded, self.settings.min_score)
        media = self.media(request.project_id)
        results = predict_tasks(serving, version, request.tasks, media, min_score=minimum)
        self.metrics.inc("ml_backend_predictions_total", sum(len(r) for r in results))
        return {"results": results, "model_version": version}

    def media(self, project_id: int) -> MediaFetcher:
        """The media fetcher of a project's Label Studio (LABEL_STUDIO_URL/API_KEY, else what /setup sent)."""
        url, token = pick_credentials(self.settings, self._credentials.get(project_id))
        with self._media_lock:
            if (url, token) not in self._media:
                self._media[(url, token)] = MediaFetcher(self.settings, url, token)
            return self._media[(url, token)]

    def webhook(self, event: WebhookEvent) -> JSON:
        self.metrics.inc("ml_backend_webhook_events_total", action=event.action)
        if event.project_id is None or not (event.trains or event.counts):
            return {"status": "ignored", "action": event.action}
        self.scheduler.notify(
            event.project_id, force=event.trains, credentials=self._credentials.get(event.project_id)
        )
        return {"status": "accepted", "action": event.action, "project": event.project_id}

    # -- our own routes -------------------------------------------------------------------------------

    def score(self, request: ScoreRequest) -> ScoreResult:
        loaded = self.store.current(request.project_id)
        if loaded is None:
            raise NotTrained(f"project {request.project_id} has no trained model yet")
        result = Scorer(loaded, request.control).score_tasks(request.tasks, self.media(request.project_id))
        self.metrics.inc("ml_backend_scored_items_total", len(result.ids))  # not the skipped ones
        return result

    def versions(self, project_id: int | None) -> JSON:
        if project_id is None:
            projects = self.store.project_ids()
            per_project = {str(p): self.store.version_names(p) for p in projects}
            every = sorted((v for names in per_project.values() for v in names), reverse=True)
            return {"versions": every, "projects": per_project}
        details = self.store.versions(project_id)
        return {
            "project": project_id,
            "latest": self.store.latest_version(project_id),
            "versions": [d["version"] for d in details],
            "details": details,
        }

    def out_of_fold(self, project_id: int, version: str | None) -> JSON:
        """``version``'s (the latest's) stored out-of-fold probabilities per control (none before training)."""
        controls = self.store.out_of_fold(project_id, version) if version is not None else {}
        return {"project": project_id, "model_version": version, "controls": controls}

    def metrics_text(self) -> str:
        return self.metrics.render(self.store.cached_versions())
