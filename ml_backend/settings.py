"""Settings of the ML backend: read once from the environment at the entry point, frozen, passed down.

Only ``ml_backend.wsgi`` and ``ml_backend.cli`` call ``load_backend_settings``; nothing else reads the
environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ls_companion.modelselect import SELECTION_BUDGET_SECONDS
from ls_companion.settings import first_error, http_url
from ml_backend.errors import ConfigurationError


class BackendSettings(BaseSettings):
    """Everything the backend reads from its environment (names are the upper-case field names)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None, case_sensitive=False)

    model_dir: Path = Field(
        Path("models"), description="Where trained models are kept (one folder per project)."
    )
    basic_auth_user: str | None = Field(
        None, description="Basic-auth user required on every route but /health."
    )
    basic_auth_pass: SecretStr | None = Field(None, description="Basic-auth password.")
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret /webhook also accepts in the X-Webhook-Secret header."
    )
    label_studio_url: str | None = Field(
        None, description="Label Studio as the backend reaches it; default: the hostname /setup reports."
    )
    label_studio_api_key: SecretStr | None = Field(
        None, description="Token used to fetch annotations; default: the access_token /setup sends."
    )
    redis_url: str | None = Field(
        None, description="Train in rq jobs on this Redis; unset: a background thread."
    )
    queue_name: str = Field("ml-backend", description="Name of the rq queue training jobs go to.")
    train_every_n_annotations: int = Field(
        10, ge=1, description="Train as soon as this many annotation events are pending."
    )
    train_debounce_seconds: float = Field(
        30.0, ge=0, description="Train at the latest this many seconds after the first pending event."
    )
    min_training_examples: int = Field(4, ge=2, description="Fewest examples a control needs to be trained.")
    holdout_fraction: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of examples kept out to measure a multi-label or NER model (a single choice is measured out-of-fold).",
    )
    keep_versions: int = Field(
        5, ge=1, description="Model versions kept per project (older ones are deleted)."
    )
    prune_predictions_max: int = Field(
        1000,
        ge=0,
        description="Delete a pruned version's predictions from Label Studio only up to this many (LS deletes them in one transaction that blocks the project's saves); larger sets are left and logged.",
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 before it is read, from Content-Length or while a chunked body arrives).",
    )
    max_tasks: int = Field(
        20_000, ge=1, description="Most tasks one POST /predict or /score may carry (413)."
    )
    max_json_depth: int = Field(
        64, ge=8, le=500, description="Deepest nesting of objects and arrays a request body may have (400)."
    )
    max_label_config_length: int = Field(
        1024 * 1024, ge=1024, description="Longest labeling config accepted, in characters (413)."
    )
    sync_project_model_version: bool = Field(
        True, description="After training, point the project's model_version at the new version."
    )
    predict_after_training: int = Field(
        10_000,
        ge=0,
        description="After training, push predictions of the new version for up to this many unlabeled tasks.",
    )
    selection_budget_seconds: float = Field(
        SELECTION_BUDGET_SECONDS,
        gt=0,
        description="CPU seconds a training run may spend cross-validating candidate models per control.",
    )
    min_score: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Default minimum score of a pre-label (a project's `ml_backend.min_score` overrides it): "
        "below it /predict returns no prediction for the task; /score still scores it.",
    )
    word_clusters: Path | None = Field(
        None,
        description="Word-cluster file (`ml-backend word-clusters`) whose clusters the NER tagger uses as features.",
    )
    word_vectors: Path | None = Field(
        None,
        description="Word-vectors file (`ml-backend word-vectors`): text classification adds candidates with each text's mean vector as features.",
    )
    http_timeout: float = Field(60.0, gt=0, description="Read timeout of Label Studio calls, seconds.")
    media_timeout: float = Field(
        20.0, gt=0, description="Timeout of one task media (image) download, seconds."
    )
    media_max_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        description="Largest task media file fetched; larger ones get no prediction.",
    )
    media_cache_dir: Path | None = Field(
        None, description="On-disk cache of fetched task media, keyed by URL; default: MODEL_DIR/media-cache."
    )
    media_cache_bytes: int = Field(
        512 * 1024 * 1024, ge=0, description="Size of the media cache; least recently used files go first."
    )
    image_embedding_model: Path | None = Field(
        None,
        description="ONNX model (image in, vector out) whose embedding the image classifier uses instead of HOG + colour histograms.",
    )
    host: str = Field("0.0.0.0", description="Address `ml-backend serve` binds to.")
    port: int = Field(9090, ge=1, le=65535, description="Port `ml-backend serve` listens on.")
    workers: int = Field(2, ge=1, description="Gunicorn worker processes.")
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("word_clusters", "word_vectors", "image_embedding_model", mode="before")
    @classmethod
    def _existing_file(cls, value: object) -> Path | None:
        if value is None or value == "":
            return None
        path = Path(str(value))
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @field_validator("label_studio_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass and self.basic_auth_pass.get_secret_value())


def load_backend_settings(**overrides: object) -> BackendSettings:
    """Read the settings from the environment (call once, at the entry point)."""
    try:
        return BackendSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(first_error(exc)) from None
