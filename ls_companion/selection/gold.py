"""Gold items: read from a file, imported as ordinary tasks, their answers kept in a local store only
(``ls_companion.projectdata.GoldStore``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ls_companion.errors import InputError
from ls_companion.sources import content_id, read_rows

DEFAULT_ANSWER_COLUMN = "answer"


@dataclass(frozen=True, slots=True)
class GoldItem:
    """One gold item: its task data (without the answer), source id and answer."""

    source_id: str
    data: dict[str, Any]
    answer: Any


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
