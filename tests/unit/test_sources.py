"""Item sources: chunked CSV / JSONL / Parquet readers and stable source ids."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ls_companion.errors import InputError
from ls_companion.sources import content_id, read_chunks, read_rows, source_id


def _files(tmp_path: Path, rows: list[dict[str, str]]) -> list[Path]:
    csv_file = tmp_path / "items.csv"
    csv_file.write_text("id,text\n" + "".join(f'{r["id"]},"{r["text"]}"\n' for r in rows), encoding="utf-8")
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    parquet = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return [csv_file, jsonl, parquet]


def test_every_format_reads_the_same_rows_in_bounded_chunks(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "text": f"text, number {i}"} for i in range(23)]
    for path in _files(tmp_path, rows):
        chunks = list(read_chunks(path, chunk_rows=5))
        assert [len(c) for c in chunks] == [5, 5, 5, 5, 3], path.suffix
        assert [row for chunk in chunks for row in chunk] == rows, path.suffix
        assert list(read_rows(path, columns=["text"]))[2] == {"text": "text, number 2"}, path.suffix


def test_source_ids_are_stable_and_independent_of_key_order() -> None:
    assert content_id({"a": 1, "b": "x"}) == content_id({"b": "x", "a": 1})
    assert content_id({"a": 1}) != content_id({"a": 2})
    assert len(content_id({"a": 1})) == 16
    assert source_id({"id": 7, "text": "t"}, "id") == "7"
    assert source_id({"text": "t"}, None) == content_id({"text": "t"})
    with pytest.raises(InputError, match="no value in the id column 'id'"):
        source_id({"id": "", "text": "t"}, "id")


def test_bad_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_chunks(tmp_path / "missing.csv"))
    odd = tmp_path / "items.xlsx"
    odd.write_text("x")
    with pytest.raises(InputError, match="unsupported file type"):
        list(read_chunks(odd))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match=r"broken\.jsonl:2: not valid JSON"):
        list(read_chunks(broken))
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b\n1,2,3\n")
    with pytest.raises(InputError, match=r"wide\.csv:2: 3 fields where the header has 2"):
        list(read_chunks(wide))
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        list(read_chunks(not_parquet))
