# syntax=docker/dockerfile:1
# One recipe for the images of docker-compose.yml. The build argument EXTRAS picks the extra installed:
#   EXTRAS=ml-backend  the ML backend (gunicorn ml_backend.wsgi:app, `ml-backend worker`), no crowd-kit
#   EXTRAS=companion   the companion (`ls-companion worker`, `schedule`, `bootstrap`, ...)
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=companion
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ls_companion ./ls_companion
COPY ml_backend ./ml_backend
RUN pip install ".[${EXTRAS}]"

FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=companion
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# An unprivileged user; /data and /models belong to it, so named volumes mounted there do too.
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /app /data /models \
    && chown app:app /data /models
COPY --from=build /opt/venv /opt/venv
# Named labeling configs (LABEL_CONFIGS_DIR=/app/label_configs in docker-compose.yml).
COPY label_configs /app/label_configs
WORKDIR /app
USER app
LABEL org.opencontainers.image.title="ls-companion (${EXTRAS})"
