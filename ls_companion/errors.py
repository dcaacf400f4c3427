"""The one error hierarchy of the companion.

Every error a user can cause or meet carries a one-line message and an exit code; the CLI maps them
to output in one place (``ls_companion.cli.app.main``). Exit codes are documented in the README.
"""

from __future__ import annotations


class CompanionError(Exception):
    """Base of every error the companion raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message if not self.detail else f"{self.message}: {self.detail}"


class InputError(CompanionError):
    """Bad input from the user: a file, an argument, a value."""

    exit_code = 2


class ConfigError(InputError):
    """Settings (environment variables) that cannot be used."""


class SpecError(InputError):
    """A project spec that does not validate; ``path`` names the field (``overlap.maximum_annotations``),
    ``file`` the spec file."""

    def __init__(self, path: str, reason: str, *, file: str | None = None) -> None:
        super().__init__(": ".join(part for part in (file, path, reason) if part))
        self.path = path
        self.reason = reason
        self.file = file

    def in_file(self, file: object) -> SpecError:
        """The same error, its message starting with the spec file it was found in."""
        return self if self.file else SpecError(self.path, self.reason, file=str(file))


class LabelStudioError(CompanionError):
    """Label Studio could not do what we asked."""

    exit_code = 3


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio did not answer (connection refused, timeout, 5xx after retries)."""


class LabelStudioAuthError(LabelStudioError):
    """Label Studio rejected the API key."""


class LabelStudioAPIError(LabelStudioError):
    """Label Studio answered with an error status."""

    def __init__(self, message: str, *, status: int, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.status = status


class NotFound(LabelStudioAPIError):
    """The project, task or object does not exist in Label Studio."""


class QueueUnavailable(CompanionError):
    """Redis (the job queue) cannot be reached."""

    exit_code = 4


class BackendUnavailable(CompanionError):
    """The ML backend cannot be reached or answered with an error."""

    exit_code = 5
