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
from typing import IO, Any

from ls_companion.errors import InputError
from ls_companion.files import parse_json, utf8_error

Row = dict[str, Any]
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
DEFAULT_CHUNK_ROWS = 50_000
#: The longest CSV field read (characters); a longer one is an error naming its line.
MAX_FIELD_CHARS = 10_000_000


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


def _lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1, decoded one by one so that a bad byte names its line."""
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise utf8_error(path, raw, exc, number) from None
        if "\x00" in line:  # Label Studio's PostgreSQL refuses it in task data, mid-import
            raise InputError(f"{path}:{number}: a NUL byte (\\x00); remove it from the file")
        yield number, line


def _chunked(rows: Iterator[Row], chunk_rows: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_rows(path: Path) -> Iterator[Row]:
    csv.field_size_limit(MAX_FIELD_CHARS)  # process-wide; the stdlib's default is 128 KiB
    with path.open("rb") as handle:
        reader = csv.reader((line for _, line in _lines(path, handle)), strict=True)
        try:
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: the CSV file has no header row")
            if len(set(header)) < len(header):
                repeated = next(name for name in header if header.count(name) > 1)
                raise InputError(f"{path}:1: the header repeats the column {repeated!r}")
            for fields in reader:
                if not fields:
                    continue  # a blank line
                if len(fields) != len(header):
                    raise InputError(
                        f"{path}:{reader.line_num}: {len(fields)} fields where the header has {len(header)}"
                    )
                yield dict(zip(header, fields, strict=True))
        except csv.Error as exc:
            reason = f"a field longer than {MAX_FIELD_CHARS:,} characters" if "limit" in str(exc) else exc
            raise InputError(f"{path}:{reader.line_num}: {reason}") from None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, line in _lines(path, handle):
            if not line.strip():
                continue
            row = parse_json(line, f"{path}:{number}")
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: each line must be a JSON object")
            yield row


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _parquet_chunks(path: Path, chunk_rows: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
    import pyarrow.parquet as pq  # only the worker's install has pyarrow

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=list(columns) if columns else None)
    done = 0
    while True:
        try:  # a corrupt page or string shows only when it is read
            batch = next(batches, None)
            rows = batch.to_pylist() if batch is not None else None
        except Exception as exc:
            raise InputError(f"{path}: row {done + 1} on: not readable ({_one_line(exc)})") from None
        if rows is None:
            return
        done += len(rows)
        yield rows


def read_chunks(
    path: Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, columns: Sequence[str] | None = None
) -> Iterator[list[Row]]:
    """The file's rows in chunks of at most ``chunk_rows``; the format comes from the file suffix."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        chunks = _chunked(_csv_rows(path), chunk_rows)
    elif suffix in (".jsonl", ".ndjson"):
        chunks = _chunked(_jsonl_rows(path), chunk_rows)
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
