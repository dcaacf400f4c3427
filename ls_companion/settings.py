"""Settings of the companion: read once from the environment at the entry point, frozen, passed down.

Nothing else in the package reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ls_companion.errors import ConfigError

#: The repository's folder of labeling configs (a spec's ``label_config`` may name a file in it).
DEFAULT_LABEL_CONFIGS_DIR = Path(__file__).resolve().parent.parent / "label_configs"


class Settings(BaseSettings):
    """Everything the companion reads from its environment (names are the upper-case field names)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None, case_sensitive=False)

    label_studio_url: str = Field("http://127.0.0.1:8080", description="Base URL of Label Studio.")
    label_studio_api_key: SecretStr | None = Field(
        None,
        description="Label Studio access token (Account & Settings; legacy token or personal access token).",
    )
    redis_url: str | None = Field(None, description="Redis for scheduled jobs; unset means inline mode.")
    data_dir: Path = Field(Path("data"), description="Where the companion keeps its local state.")
    label_configs_dir: Path = Field(
        DEFAULT_LABEL_CONFIGS_DIR, description="Folder of named labeling configs."
    )
    ml_backend_url: str | None = Field(None, description="ML backend URL (default for specs without one).")
    ml_backend_basic_auth_user: str | None = Field(None, description="Basic-auth user of the ML backend.")
    ml_backend_basic_auth_pass: SecretStr | None = Field(
        None, description="Basic-auth password of the backend."
    )
    ml_backend_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret sent to the backend's /webhook in the X-Webhook-Secret header."
    )
    http_timeout: float = Field(60.0, gt=0, description="Read timeout of Label Studio calls, seconds.")
    connect_timeout: float = Field(3.0, gt=0, description="Connect timeout of Label Studio calls, seconds.")
    retry_attempts: int = Field(
        5, ge=1, le=20, description="Attempts of an idempotent call before giving up."
    )
    retry_max_wait: float = Field(8.0, gt=0, description="Longest pause between two attempts, seconds.")
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("label_studio_url", "ml_backend_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    def require_api_key(self) -> str:
        """The API key, or a clear error when it is not set."""
        if self.label_studio_api_key is None or not self.label_studio_api_key.get_secret_value():
            raise ConfigError(
                "LABEL_STUDIO_API_KEY is not set: copy the token from Label Studio's Account page"
            )
        return self.label_studio_api_key.get_secret_value()

    @property
    def ml_backend_auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials for calls to the ML backend, or None without a user."""
        if not self.ml_backend_basic_auth_user:
            return None
        secret = self.ml_backend_basic_auth_pass
        return self.ml_backend_basic_auth_user, secret.get_secret_value() if secret else ""


def http_url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash; None when unset or empty (both packages' settings)."""
    if value is None or value == "":
        return None
    HttpUrl(value)  # raises a ValidationError with a clear reason
    return value.rstrip("/")


def first_error(exc: ValidationError) -> str:
    """``NAME: reason`` of the first invalid setting, named as its environment variable."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]).upper()
    return f"{name}: {first['msg']}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (call once, at the entry point)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None
