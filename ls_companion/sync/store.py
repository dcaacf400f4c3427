"""The local annotation store of one project: the finished-annotations dataset a team trains on.

Append-only segments of task snapshots under ``DATA_DIR/projects/<id>/store/``: each sync writes one
``seg-<n>.jsonl`` (atomically) holding the tasks whose annotations or data changed, each line a whole
task (``id``, ``updated_at``, ``data``, ``source_id``, ``annotations``) as Label Studio lists it. The
current view is the last snapshot of every task; a task re-listed with fewer annotations (LS's
ANNOTATIONS_DELETED) simply replaces its older snapshot, and one with none drops out. Replaying a
segment twice changes nothing, so a crash between the store and the watermark is harmless.
Every ``COMPACT_AFTER`` segments the view is rewritten as ``base-<n>.jsonl`` and older files go.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ls_companion import META_NAMESPACE
from ls_companion.errors import InputError
from ls_companion.files import write_lines_atomic
from ls_companion.records import JSON, Task
from ls_companion.sync.options import MIRROR_PREFIX

STORE_DIR = "store"
COMPACT_AFTER = 32
_FILE = re.compile(r"^(seg|base)-(\d{8})\.jsonl$")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def annotations_rev(annotations: Iterable[Mapping[str, Any]]) -> str:
    """A short hash of a task's annotations: the version its quality numbers describe."""
    return hashlib.sha1(_canonical(list(annotations)).encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One task as a sync saw it. ``deleted`` marks a task that is gone from Label Studio."""

    task_id: int
    updated_at: str | None = None
    data: JSON | None = None
    source_id: str | None = None
    annotations: tuple[JSON, ...] = ()
    deleted: bool = False

    @classmethod
    def of_task(cls, task: Task) -> Snapshot:
        """A listed task, without our mirrored ``lsc_*`` data keys (they follow from the annotations)."""
        ours = task.meta.get(META_NAMESPACE)
        source_id = ours.get("source_id") if isinstance(ours, Mapping) else None
        annotations = sorted(
            ({k: v for k, v in asdict(a).items() if k != "task_id"} for a in task.annotations),
            key=lambda a: int(a["id"]),
        )
        return cls(
            task_id=task.id,
            updated_at=task.updated_at,
            data={k: v for k, v in task.data.items() if not k.startswith(MIRROR_PREFIX)},
            source_id=None if source_id is None else str(source_id),
            annotations=tuple(annotations),
        )

    @classmethod
    def gone(cls, task_id: int) -> Snapshot:
        return cls(task_id=task_id, deleted=True)

    @property
    def rev(self) -> str:
        return annotations_rev(self.annotations)

    @property
    def digest(self) -> str:
        """What a change is: data, source id or annotations (``updated_at`` alone is not)."""
        content = [self.data, self.source_id, self.annotations, self.deleted]
        return hashlib.sha1(_canonical(content).encode("utf-8")).hexdigest()

    def to_line(self) -> str:
        if self.deleted:
            return _canonical({"id": self.task_id, "deleted": True})
        return _canonical(
            {
                "id": self.task_id,
                "updated_at": self.updated_at,
                "data": self.data,
                "source_id": self.source_id,
                "annotations": list(self.annotations),
            }
        )

    @classmethod
    def from_line(cls, line: str) -> Snapshot:
        raw = json.loads(line)
        if raw.get("deleted"):
            return cls.gone(int(raw["id"]))
        return cls(
            task_id=int(raw["id"]),
            updated_at=raw.get("updated_at"),
            data=raw.get("data") or {},
            source_id=raw.get("source_id"),
            annotations=tuple(raw.get("annotations") or ()),
        )

    def to_task(self) -> Task:
        """The snapshot as the record the quality engine reads."""
        meta = {META_NAMESPACE: {"source_id": self.source_id}} if self.source_id is not None else {}
        return Task.from_api(
            {
                "id": self.task_id,
                "data": self.data,
                "meta": meta,
                "updated_at": self.updated_at,
                "annotations": list(self.annotations),
            }
        )

    def to_export(self) -> JSON:
        """One task of a Label Studio JSON export."""
        return {"id": self.task_id, "data": self.data, "annotations": list(self.annotations)}


View = dict[int, Snapshot]


def changed_snapshots(view: Mapping[int, Snapshot], listed: Iterable[Snapshot]) -> list[Snapshot]:
    """The listed snapshots the store does not hold yet: new annotated tasks and changed known ones.

    A task never annotated and still without annotations is not stored.
    """
    changed = []
    for snapshot in listed:
        known = view.get(snapshot.task_id)
        if known is None and not snapshot.annotations:
            continue
        if known is None or known.digest != snapshot.digest:
            changed.append(snapshot)
    return changed


def vanished(view: Mapping[int, Snapshot], listed_ids: Iterable[int]) -> list[Snapshot]:
    """Deletion markers for stored tasks a full listing no longer has."""
    present = set(listed_ids)
    return [Snapshot.gone(task_id) for task_id in view if task_id not in present]


def new_annotation_versions(view: Mapping[int, Snapshot], changed: Iterable[Snapshot]) -> int:
    """Annotations created or edited since the store last saw their task (retraining counts these)."""
    count = 0
    for snapshot in changed:
        known = view.get(snapshot.task_id)
        seen = {(a["id"], a.get("updated_at")) for a in known.annotations} if known else set()
        count += sum(1 for a in snapshot.annotations if (a["id"], a.get("updated_at")) not in seen)
    return count


def apply(view: View, snapshots: Iterable[Snapshot]) -> View:
    """``view`` with ``snapshots`` applied in order (tasks without annotations leave it)."""
    for snapshot in snapshots:
        if snapshot.deleted or not snapshot.annotations:
            view.pop(snapshot.task_id, None)
        else:
            view[snapshot.task_id] = snapshot
    return view


class AnnotationStore:
    """The segment files of one project."""

    def __init__(self, project_folder: Path) -> None:
        self.folder = project_folder / STORE_DIR

    def _files(self) -> list[tuple[int, str, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _FILE.match(path.name)
            if match:  # ``*.tmp`` leftovers of a crash are ignored
                found.append((int(match.group(2)), match.group(1), path))
        return sorted(found, key=lambda item: (item[0], item[1] == "seg"))

    def _live_files(self) -> list[Path]:
        """The newest base and the segments after it, in replay order."""
        files = self._files()
        bases = [seq for seq, kind, _ in files if kind == "base"]
        start = max(bases) if bases else 0
        return [
            path
            for seq, kind, path in files
            if (kind == "base" and seq == start) or (kind == "seg" and seq > start)
        ]

    def _read(self, path: Path) -> Iterator[Snapshot]:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield Snapshot.from_line(line)
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(f"{path}:{number}: damaged store line ({exc})") from None

    def load(self) -> View:
        """The current view: the last snapshot of every task that has annotations."""
        view: View = {}
        for path in self._live_files():
            apply(view, self._read(path))
        return view

    def _next_seq(self) -> int:
        files = self._files()
        return (files[-1][0] if files else 0) + 1

    def append(self, snapshots: list[Snapshot]) -> int:
        """Write one segment (atomically); returns its number, 0 when there was nothing to write."""
        if not snapshots:
            return 0
        seq = self._next_seq()
        write_lines_atomic(self.folder / f"seg-{seq:08d}.jsonl", (s.to_line() for s in snapshots))
        return seq

    def segment_count(self) -> int:
        return sum(1 for path in self._live_files() if path.name.startswith("seg-"))

    def compact(self, view: View) -> None:
        """Rewrite ``view`` (the current one) as a base and delete the files it replaces."""
        files = self._files()
        if not files:
            return
        last = files[-1][0]
        ordered = sorted(view.values(), key=lambda s: s.task_id)
        write_lines_atomic(self.folder / f"base-{last:08d}.jsonl", (s.to_line() for s in ordered))
        for seq, kind, path in files:
            if seq < last or (seq == last and kind == "seg"):
                path.unlink(missing_ok=True)

    @staticmethod
    def export(view: View, path: Path) -> int:
        """Write the view as a Label Studio JSON export (a list of tasks); returns the task count."""
        tasks = [view[task_id].to_export() for task_id in sorted(view)]
        write_lines_atomic(path, [json.dumps(tasks, ensure_ascii=False, indent=1)])
        return len(tasks)
