"""Gold items: read from a file, imported as ordinary tasks, their answers kept in a local store only.

The store is ``DATA_DIR/projects/<project id>/gold.jsonl``, one JSON object per gold task:
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

from ls_companion.errors import InputError
from ls_companion.files import fsync_dir
from ls_companion.sources import content_id, read_rows

GOLD_FILENAME = "gold.jsonl"
DEFAULT_ANSWER_COLUMN = "answer"


@dataclass(frozen=True, slots=True)
class GoldItem:
    """One gold item: its task data (without the answer), source id and answer."""

    source_id: str
    data: dict[str, Any]
    answer: Any


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


def _answer(value: Any, multiple: bool) -> Any:
    if multiple and isinstance(value, str):  # CSV cells hold several choices as "a|b"
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


def read_gold(
    path: Path, *, answer_column: str = DEFAULT_ANSWER_COLUMN, multiple: bool = False
) -> list[GoldItem]:
    """The gold file's items in file order; the source id is the hash of the data without the answer."""
    items: dict[str, GoldItem] = {}
    for line, row in enumerate(read_rows(path), start=1):
        if answer_column not in row or row[answer_column] in (None, ""):
            raise InputError(f"{path}: gold item {line} has no value in the answer column {answer_column!r}")
        data = {k: v for k, v in row.items() if k != answer_column}
        item = GoldItem(content_id(data), data, _answer(row[answer_column], multiple))
        known = items.setdefault(item.source_id, item)
        if known.answer != item.answer:
            raise InputError(f"{path}: gold item {line} repeats an earlier item with another answer")
    if not items:
        raise InputError(f"{path}: the gold file holds no items")
    return list(items.values())


def check_answers(items: Iterable[GoldItem], control: str, labels: Iterable[str]) -> None:
    """Every answer names labels of the control (when the control has a fixed label set)."""
    allowed = set(labels)
    if not allowed:
        return
    for item in items:
        values = item.answer if isinstance(item.answer, list) else [item.answer]
        unknown = [str(v) for v in values if str(v) not in allowed]
        if unknown:
            raise InputError(f"gold answer {unknown[0]!r} is not a label of control {control!r}")


def gold_store_path(data_dir: Path, project_id: int) -> Path:
    return data_dir / "projects" / str(project_id) / GOLD_FILENAME


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
