"""Retraining: after N new annotations, ask Label Studio to train the project's ML backend.

LS forwards ``ml.train`` to the backend as START_TRAINING; this covers annotation webhooks LS dropped
(1 s timeout, no retries). A duplicate request is harmless: the backend debounces and skips training
on data it has already seen.
"""

from __future__ import annotations

from typing import Any

from ls_companion.client import LabelStudioClient
from ls_companion.records import MLBackend


def training_due(new_annotations: int, retrain_after: int) -> bool:
    """Whether the annotations counted since the last request call for another one (0 disables)."""
    return retrain_after > 0 and new_annotations >= retrain_after


def connected_backend(client: LabelStudioClient, project_id: int) -> MLBackend | None:
    """The project's ML backend (the first one LS lists), or None."""
    backends = client.list_ml_backends(project_id)
    return backends[0] if backends else None


def request_training(client: LabelStudioClient, project_id: int, backend_id: int) -> dict[str, Any]:
    """Ask LS to train ``backend_id``; returns what the status shows."""
    client.train(backend_id)
    return {"project_id": project_id, "backend_id": backend_id, "requested": True}
