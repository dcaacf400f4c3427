"""What we keep per project under ``DATA_DIR/projects/<id>/``, and the gold store both the selection
(which writes it) and the quality engine (which reads it) use.

Layout: ``state.json`` (the sync state), ``store/`` (the annotation store), ``sync.lock`` (the local
lock file), ``topup.json`` (a top-up's intent), ``gold.jsonl`` (gold answers, below).

The gold store holds one JSON object per gold task:
``{"task_id": 17, "source_id": "3f2a...", "control": "label", "answer": "spam"}``. Lines are only
appended, each batch followed by an fsync; a torn last line (crash while writing) is ignored on read
and repaired from Label Studio's tasks by the next ``select`` run. Answers never go to Label Studio.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ls_companion.files import fsync_dir

GOLD_FILENAME = "gold.jsonl"


def project_dir(data_dir: Path, project_id: int) -> Path:
    return data_dir / "projects" / str(project_id)


@dataclass(frozen=True, slots=True)
class GoldRecord:
    """One line of the gold store."""

    task_id: int
    source_id: str
    control: str
    answer: Any

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> GoldRecord:
        return cls(int(raw["task_id"]), str(raw["source_id"]), str(raw["control"]), raw["answer"])


def gold_store_path(data_dir: Path, project_id: int) -> Path:
    return project_dir(data_dir, project_id) / GOLD_FILENAME


class GoldStore:
    """The append-only local store of gold answers of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[int, GoldRecord]:
        """Records by task id (a later line for the same task wins; a torn last line is skipped)."""
        if not self.path.is_file():
            return {}
        records: dict[int, GoldRecord] = {}
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = GoldRecord.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash; select rewrites it from Label Studio
                records[record.task_id] = record
        return records

    def append(self, records: Iterable[GoldRecord]) -> int:
        lines = [json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records]
        if not lines:
            return 0
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # finish a torn line so ours start clean
                    handle.write(b"\n")
            handle.write("".join(lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            fsync_dir(self.path.parent)
        return len(lines)
