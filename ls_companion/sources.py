"""Item sources: CSV, JSONL and Parquet files read in chunks, each row with a stable source id.

A pool of millions of rows never has to fit in memory: readers yield lists of rows of bounded size.
The source id is the value of a chosen column, else a hash of the row's content, so that the same
item keeps the same id across runs and files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ls_companion.errors import InputError

Row = dict[str, Any]
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
DEFAULT_CHUNK_ROWS = 50_000


def content_id(data: Mapping[str, Any]) -> str:
    """A stable id from a row's content (keys sorted), for sources without an id column."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]


def source_id(row: Mapping[str, Any], id_column: str | None) -> str:
    """The row's id: its ``id_column`` value as text, else the hash of its content."""
    if id_column is None:
        return content_id(row)
    value = row.get(id_column)
    if value is None or value == "":
        raise InputError(f"a row has no value in the id column {id_column!r}")
    return str(value)


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[list[Row]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise InputError(f"{path}: the CSV file has no header row")
        chunk: list[Row] = []
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"{path}:{line}: more fields than the header has")
            chunk.append(dict(row))
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[list[Row]]:
    with path.open(encoding="utf-8") as handle:
        chunk: list[Row] = []
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{line_no}: each line must be a JSON object")
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _parquet_chunks(path: Path, chunk_rows: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
    import pyarrow.parquet as pq  # only the worker's install has pyarrow

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=list(columns) if columns else None):
        yield batch.to_pylist()


def read_chunks(
    path: Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, columns: Sequence[str] | None = None
) -> Iterator[list[Row]]:
    """The file's rows in chunks of at most ``chunk_rows``; the format comes from the file suffix."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        chunks = _csv_chunks(path, chunk_rows)
    elif suffix in (".jsonl", ".ndjson"):
        chunks = _jsonl_chunks(path, chunk_rows)
    elif suffix == ".parquet":
        chunks = _parquet_chunks(path, chunk_rows, columns)
    else:
        raise InputError(f"{path}: unsupported file type {suffix!r} (use one of {', '.join(SUFFIXES)})")
    for chunk in chunks:
        yield (
            [{k: row.get(k) for k in columns} for row in chunk] if columns and suffix != ".parquet" else chunk
        )


def read_rows(path: Path, *, columns: Sequence[str] | None = None) -> Iterator[Row]:
    """The file's rows one by one (still read in chunks underneath)."""
    for chunk in read_chunks(path, columns=columns):
        yield from chunk
