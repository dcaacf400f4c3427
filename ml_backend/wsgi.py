"""Gunicorn entry point: ``gunicorn ml_backend.wsgi:app`` (settings are read here, once)."""

from __future__ import annotations

from ml_backend.logsetup import configure_logging
from ml_backend.settings import load_backend_settings
from ml_backend.wiring import build_app

settings = load_backend_settings()
configure_logging(settings)
app = build_app(settings)
