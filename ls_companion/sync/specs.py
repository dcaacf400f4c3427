"""Sync options from a project spec's ``sync:`` section; relative files resolved against the spec's folder."""

from __future__ import annotations

from pathlib import Path

from ls_companion.bootstrap.spec import ProjectSpec
from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.sync.options import SyncOptions


def _resolve(value: str | None, folder: Path) -> str | None:
    if value is None or Path(value).is_absolute():
        return value
    return str((folder / value).resolve())


def spec_options(spec: ProjectSpec, folder: Path) -> SyncOptions:
    """The spec's sync options (defaults without a ``sync:`` section), with absolute file paths."""
    options = spec.sync or SyncOptions()
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


def project_of(client: LabelStudioClient, spec: ProjectSpec) -> int:
    """The id of the one project titled like the spec."""
    found = client.find_projects(spec.title)
    if not found:
        raise InputError(f"no project titled {spec.title!r}: run `ls-companion bootstrap` first")
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise InputError(f"several projects are titled {spec.title!r} (ids {ids})")
    return found[0].id
