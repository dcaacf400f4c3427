"""Logging of every backend process (web workers, training children, the rq worker)."""

from __future__ import annotations

import logging

from ml_backend.settings import BackendSettings


def configure_logging(settings: BackendSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Label Studio call is noise
