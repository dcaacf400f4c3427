"""Versioned models per project under MODEL_DIR: atomic publication, retention, and a cheap freshness check.

Layout::

    MODEL_DIR/<project id>/<version>.model   pickled ModelBundle
    MODEL_DIR/<project id>/<version>.json    metadata (classes, config hash, metrics, sha256 of the model file)
    MODEL_DIR/<project id>/LATEST            the published version's name
    MODEL_DIR/<project id>/.lock             flock held while a project trains and publishes

Every file is written to a temporary name and moved into place with ``os.replace``, and ``LATEST`` moves
last, so a reader sees either the old version or the complete new one. Each process caches the model it
loaded and, per request, only ``stat``s ``LATEST``: a new publication is picked up by the next request of
every gunicorn worker. Pickles are only ever read from MODEL_DIR, by validated version names, and only
when their SHA-256 matches the metadata written with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ls_companion.files import fsync_dir, write_bytes_atomic
from ml_backend.errors import ModelFileError
from ml_backend.models.bundle import ModelBundle

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")
_VERSION_FORMAT = "%Y%m%dT%H%M%S.%fZ"
LATEST = "LATEST"
OOF_SUFFIX = ".oof.json"


def is_version(name: str) -> bool:
    return bool(_VERSION.match(name))


def version_time(version: str) -> datetime:
    return datetime.strptime(version, _VERSION_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A published version in memory; immutable, so one request uses one version throughout."""

    project_id: int
    version: str
    bundle: ModelBundle
    metadata: dict[str, Any]


class ModelStore:
    def __init__(self, root: Path, *, keep_versions: int = 5) -> None:
        self.root = root.resolve()
        self.keep_versions = keep_versions
        self._cache: dict[int, tuple[tuple[int, int, int], LoadedModel]] = {}
        self._cache_lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------------------------

    def project_dir(self, project_id: int) -> Path:
        if project_id < 0:
            raise ModelFileError(f"invalid project id {project_id}")
        return self.root / str(int(project_id))

    def _file(self, project_id: int, version: str, suffix: str) -> Path:
        if not is_version(version):
            raise ModelFileError(f"invalid model version name {version!r}")
        path = (self.project_dir(project_id) / f"{version}{suffix}").resolve()
        if not path.is_relative_to(self.root):  # symlinks out of MODEL_DIR are never followed
            raise ModelFileError(f"{path} is outside MODEL_DIR")
        return path

    # -- writing --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, project_id: int) -> Iterator[None]:
        """Exclusive across processes on this host: one training and publication per project at a time."""
        folder = self.project_dir(project_id)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def next_version(self, project_id: int) -> str:
        """A version name later than every existing one (names sort by time)."""
        now = datetime.now(UTC)
        existing = self.version_names(project_id)
        if existing:
            now = max(now, version_time(existing[0]) + timedelta(microseconds=1))
        return now.strftime(_VERSION_FORMAT)

    def publish(
        self,
        project_id: int,
        bundle: ModelBundle,
        metadata: dict[str, Any],
        *,
        oof: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write a new version and make it the latest; the caller holds ``lock(project_id)``.

        ``oof``: per control, the out-of-fold probabilities of the training tasks (``training.out_of_fold``),
        written beside the version (``<version>.oof.json``, read by ``out_of_fold``), not into its metadata,
        which every ``/versions`` answer carries.
        """
        version = self.next_version(project_id)
        blob = pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL)
        info = {
            **metadata,
            "version": version,
            "project_id": project_id,
            "created_at": version_time(version).isoformat(),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size_bytes": len(blob),
        }
        folder = self.project_dir(project_id)
        # LATEST is renamed last, so a reader never sees it name a missing version; one folder fsync for all
        write_bytes_atomic(self._file(project_id, version, ".model"), blob, sync_folder=False)
        write_bytes_atomic(
            self._file(project_id, version, ".json"), json.dumps(info, indent=2).encode(), sync_folder=False
        )
        if oof:
            write_bytes_atomic(
                self._file(project_id, version, OOF_SUFFIX), json.dumps(oof).encode(), sync_folder=False
            )
        write_bytes_atomic(folder / LATEST, version.encode(), sync_folder=False)
        fsync_dir(folder)
        self._prune(project_id, version)
        log.info("project %s: published model version %s", project_id, version)
        return info

    def _prune(self, project_id: int, current: str) -> None:
        for version in self.version_names(project_id)[self.keep_versions :]:
            if version == current:
                continue
            for suffix in (".model", ".json", OOF_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    self._file(project_id, version, suffix).unlink()

    # -- reading --------------------------------------------------------------------------------------

    def project_ids(self) -> list[int]:
        """Projects that have a folder under MODEL_DIR."""
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def version_names(self, project_id: int) -> list[str]:
        """Stored versions, newest first."""
        folder = self.project_dir(project_id)
        if not folder.is_dir():
            return []
        names = [p.name.removesuffix(".json") for p in folder.glob("*.json")]
        return sorted((n for n in names if is_version(n)), reverse=True)

    def versions(self, project_id: int) -> list[dict[str, Any]]:
        """Metadata of every stored version, newest first."""
        out = []
        for version in self.version_names(project_id):
            try:
                out.append(self.metadata(project_id, version))
            except ModelFileError:
                continue  # pruned by another process while we listed
        return out

    def metadata(self, project_id: int, version: str) -> dict[str, Any]:
        try:
            info: dict[str, Any] = json.loads(self._file(project_id, version, ".json").read_bytes())
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read metadata of version {version}: {type(exc).__name__}") from None
        return info

    def out_of_fold(self, project_id: int, version: str) -> dict[str, Any]:
        """Per control, the version's stored out-of-fold probabilities (empty when it has none)."""
        try:
            found: dict[str, Any] = json.loads(self._file(project_id, version, OOF_SUFFIX).read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelFileError(
                f"cannot read out-of-fold probabilities of {version}: {type(exc).__name__}"
            ) from None
        return found

    def latest_version(self, project_id: int) -> str | None:
        try:
            name = (self.project_dir(project_id) / LATEST).read_text().strip()
        except FileNotFoundError:
            return None
        return name if is_version(name) else None

    def load(self, project_id: int, version: str) -> LoadedModel:
        info = self.metadata(project_id, version)
        try:
            blob = self._file(project_id, version, ".model").read_bytes()
        except OSError as exc:
            raise ModelFileError(f"cannot read model version {version}: {type(exc).__name__}") from None
        if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
            raise ModelFileError(f"model version {version} does not match its checksum")
        try:
            bundle = pickle.loads(blob)  # our own file from MODEL_DIR, checksum verified
        except (ImportError, AttributeError, TypeError, pickle.UnpicklingError) as exc:
            # A release that moved or reshaped a model class cannot read the pickles of the one before:
            # the project serves its newest readable version (or none) until it is trained again.
            raise ModelFileError(
                f"model version {version} was saved by another release ({type(exc).__name__}): retrain"
            ) from None
        if not isinstance(bundle, ModelBundle):
            raise ModelFileError(f"model version {version} is not a model bundle")
        return LoadedModel(project_id, version, bundle, info)

    def current(self, project_id: int) -> LoadedModel | None:
        """The latest published model, loaded at most once per publication in this process."""
        try:
            stat = os.stat(self.project_dir(project_id) / LATEST)
        except FileNotFoundError:
            return None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(project_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._cache_lock:
            cached = self._cache.get(project_id)
            if cached is not None and cached[0] == signature:
                return cached[1]
            loaded = self._load_latest(project_id, cached[1] if cached else None)
            if loaded is not None:
                self._cache[project_id] = (signature, loaded)
            return loaded

    def _load_latest(self, project_id: int, previous: LoadedModel | None) -> LoadedModel | None:
        version = self.latest_version(project_id)
        if version is None:
            return previous
        if previous is not None and previous.version == version:
            return previous
        try:
            return self.load(project_id, version)
        except ModelFileError as exc:
            log.error("project %s: cannot load version %s (%s)", project_id, version, exc)
        if previous is not None:
            return previous
        for older in self.version_names(project_id):  # a fresh process: fall back to the newest good one
            if older < version:
                try:
                    return self.load(project_id, older)
                except ModelFileError:
                    continue
        return None

    def cached_versions(self) -> list[tuple[int, str]]:
        """(project id, version) of every model this process holds in memory."""
        return sorted((p, entry[1].version) for p, entry in self._cache.items())
