"""What one project's sync does, beyond the defaults: the ``sync:`` section of a project spec.

The same frozen model travels as a plain dict in rq job arguments, so every field is JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from ls_companion.errors import InputError
from ls_companion.quality import LOW_AGREEMENT, MAX_OVERLAP

#: Prefix of the quality fields mirrored into task data (the Data Manager filters data, not meta).
MIRROR_PREFIX = "lsc_"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopupOptions(_Frozen):
    """Import the next active-learning batch when the project runs low on unlabeled tasks."""

    pool: str = Field(description="The pool file (CSV, JSONL or Parquet) the selection reads.")
    below: int = Field(50, ge=0, description="Top up when fewer unlabeled tasks than this remain.")
    batch: int = Field(100, ge=1, le=100_000, description="Tasks per top-up.")
    budget: int = Field(ge=1, description="Top-ups never grow the project beyond this many tasks.")
    strategy: str = Field("hybrid", description="Selection strategy (see docs/active-learning.md).")
    id_column: str | None = Field(None, description="Pool column with stable item ids.")
    seed: int = 0
    gold: str | None = Field(None, description="Gold items file mixed into each batch.")
    gold_rate: float = Field(0.05, ge=0, le=1)
    with_predictions: bool = Field(False, description="Import each task with its pre-label.")
    chunk_size: int = Field(500, ge=1, le=5000, description="Tasks per import request.")


class EscalationOptions(_Frozen):
    """Give low-agreement tasks one more annotator (raise their ``overlap``)."""

    below: float = Field(
        LOW_AGREEMENT, ge=0, le=1, description="Agreement under which a task gets one more annotator."
    )
    max_overlap: int = Field(MAX_OVERLAP, ge=2, le=100)


class SyncOptions(_Frozen):
    interval: int = Field(300, ge=1, description="Seconds between scheduled syncs.")
    overlap_seconds: float = Field(
        60.0, ge=0, description="Safety overlap: re-list tasks updated this long before the watermark."
    )
    retrain_after: int = Field(
        50, ge=0, description="Ask for training after this many new annotations; 0: never."
    )
    topup: TopupOptions | None = None
    escalation: EscalationOptions | None = None
    mirror: tuple[str, ...] = Field(
        ("label_issue",),
        description="Quality keys also written into task data as lsc_<key>, for Data Manager filters"
        " (label_issue: the score of a flagged likely label error, for bootstrap's tab).",
    )
    alert_webhook: HttpUrl | None = Field(None, description="POST new drift alerts here (JSON).")
    gold: str | None = Field(
        None, description="Gold answers file; default DATA_DIR/projects/<id>/gold.jsonl."
    )
    patch_workers: int = Field(4, ge=1, le=32, description="Concurrent PATCH requests.")
    prelabel: bool = Field(
        False, description="The scheduler also runs `prelabel` every interval (tasks lacking a prediction)."
    )
    job_timeout: int = Field(3600, ge=10, description="Seconds before rq stops a sync job.")
    job_retries: int = Field(3, ge=0, le=20, description="rq retries of a failed or abandoned job.")
    retry_backoff: tuple[int, ...] = Field(
        (30, 120, 600), min_length=1, description="Seconds before each retry (the last one repeats)."
    )


def parse_options(raw: Any, where: str = "sync") -> SyncOptions:
    """Validate a ``sync:`` mapping (or a job's options dict); errors name the field."""
    if raw is None:
        return SyncOptions()
    if isinstance(raw, SyncOptions):
        return raw
    try:
        return SyncOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join([where, *(str(part) for part in first["loc"])])
        raise InputError(f"{path}: {first['msg']}") from None


def options_payload(options: SyncOptions) -> dict[str, Any]:
    """The options as the plain JSON dict a job carries (defaults left out, so jobs stay short)."""
    return options.model_dump(mode="json", exclude_defaults=True)


def _resolve(value: str | None, folder: Path) -> str | None:
    if value is None or Path(value).is_absolute():
        return value
    return str((folder / value).resolve())


def spec_options(options: SyncOptions | None, folder: Path) -> SyncOptions:
    """A spec's ``sync:`` section (defaults without one), its files resolved against the spec's folder."""
    options = options or SyncOptions()
    update: dict[str, object] = {"gold": _resolve(options.gold, folder)}
    if options.topup is not None:
        topup = options.topup.model_copy(
            update={
                "pool": _resolve(options.topup.pool, folder),
                "gold": _resolve(options.topup.gold, folder),
            }
        )
        update["topup"] = topup
    return options.model_copy(update=update)
