"""Which scorer a ``select`` run uses: the ML backend named in the settings or connected to the project."""

from __future__ import annotations

from typing import Literal

from ls_companion.client import LabelStudioClient, RetryPolicy
from ls_companion.errors import ConfigError
from ls_companion.selection.scoring import HttpScorer
from ls_companion.settings import Settings

ScorerMode = Literal["auto", "backend", "none"]
SCORER_MODES = ("auto", "backend", "none")


def backend_url(settings: Settings, client: LabelStudioClient, project_id: int) -> str | None:
    """``ML_BACKEND_URL``, else the URL of the first ML backend connected to the project in Label Studio."""
    if settings.ml_backend_url:
        return settings.ml_backend_url
    backend = client.connected_backend(project_id)
    return backend.url if backend is not None else None


def http_scorer(
    settings: Settings, client: LabelStudioClient, project_id: int, mode: str, *, control: str | None = None
) -> HttpScorer | None:
    """The backend's ``/score`` (``auto``/``backend``), or None: no backend found (``auto``) or ``none``."""
    if mode not in SCORER_MODES:
        raise ConfigError(f"--scorer must be one of {', '.join(SCORER_MODES)}")
    if mode == "none":
        return None
    url = backend_url(settings, client, project_id)
    if url is None:
        if mode == "backend":
            raise ConfigError("no ML backend: set ML_BACKEND_URL or connect a backend to the project")
        return None
    return HttpScorer(
        url,
        project_id,
        auth=settings.ml_backend_auth,
        control=control,
        timeout=max(settings.http_timeout, 100.0),
        connect_timeout=settings.connect_timeout,
        retry=RetryPolicy.from_settings(settings),
    )
