"""The backend's one error hierarchy; ``ml_backend.app`` maps it to ``{"error", "detail"}`` JSON in one place.

Every class carries the HTTP status and the stable ``error`` code clients switch on. ``field`` is the
path of the offending request field (``tasks[3].data.text``) when there is one.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error the backend raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def payload(self) -> dict[str, str]:
        body = {"error": self.code, "detail": f"{self.field}: {self.detail}" if self.field else self.detail}
        if self.field:
            body["field"] = self.field
        return body


class InvalidJSON(BackendError):
    status = 400
    code = "invalid_json"


class InvalidRequest(BackendError):
    """A field is missing or has the wrong type or value."""

    status = 422
    code = "invalid_request"


class InvalidLabelConfig(InvalidRequest):
    code = "invalid_label_config"


class Unauthorized(BackendError):
    status = 401
    code = "unauthorized"


class NotTrained(BackendError):
    """The project has no trained model (yet) for what was asked."""

    status = 409
    code = "not_trained"


class PayloadTooLarge(BackendError):
    status = 413
    code = "payload_too_large"


class ConfigurationError(BackendError):
    """Settings that cannot be used (raised at start-up, never during a request)."""

    code = "configuration_error"


class ModelFileError(BackendError):
    """A file under MODEL_DIR is missing, truncated or not ours."""

    code = "model_file_error"


class TrainingError(BackendError):
    """Training could not produce a model (too few examples, Label Studio unreachable, ...)."""

    status = 409
    code = "training_failed"


class MediaError(BackendError):
    """A task's media (an image) cannot be fetched or decoded: that task gets no prediction."""

    status = 422
    code = "media_error"


class LabelStudioUnreachable(BackendError):
    """Label Studio did not answer a request the backend needs before it can fetch media (exchanging a
    personal access token): the whole request fails with a status clients retry."""

    status = 503
    code = "label_studio_unavailable"


class MediaUnavailable(MediaError):
    """This one item's media failed (an HTTP error, too large, not decodable), unlike a reference the
    backend can never fetch or a missing setup: ``/score`` leaves such an item out and goes on."""
