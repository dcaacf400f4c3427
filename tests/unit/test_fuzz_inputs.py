"""Property-based fuzzing of every file and spec the companion reads (hypothesis).

Each property writes what hypothesis draws (well-formed, then mangled: other encodings, cut short, NUL
bytes, ragged rows, huge fields, deep nesting) and reads it with the real reader. The reader either
succeeds or raises an ``InputError`` whose one-line message names the file: never another exception,
which the CLI would report as an internal error (exit 1). ``make test`` runs the "ci" profile of
tests/conftest.py (few examples, derandomized); ``python -m bench.bench_fuzz`` runs many more.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ls_companion.bootstrap.spec import load_spec, resolve_label_config
from ls_companion.cli.app import main
from ls_companion.errors import InputError
from ls_companion.quality.gold import read_gold_file
from ls_companion.quality.records import controls_from_config, read_crowd_csv
from ls_companion.settings import Settings
from ls_companion.sources import read_rows
from ml_backend.errors import BackendError
from ml_backend.labelconfig import parse_label_config
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "label_configs").glob("*.xml"))
NAMES = st.sampled_from(["text", "label", "item", "worker", "id", "answer", "task_id", "control", "x"])
CELL = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(',"\n\r\x00é😀'), max_size=8),
    st.sampled_from(["", "NA", "null", "1", "-0.5", "ham", "spam"]),
)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | NAMES, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> bytes:
    """``text`` encoded, then perhaps re-encoded, cut, or given a stray byte, NUL or huge field."""
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"])), "replace")
    how = draw(st.sampled_from(["keep", "keep", "cut", "byte", "nul", "huge", "deep"]))
    at = draw(st.integers(0, len(data)))
    if how == "cut":
        return data[:at]
    if how == "byte":
        return data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at:]
    if how == "nul":
        return data[:at] + b"\x00" + data[at:]
    if how == "huge":
        return data[:at] + b"x" * 11_000_000 + data[at:]
    if how == "deep":
        return data[:at] + b"[" * 5000 + b"]" * 5000 + data[at:]
    return data


@st.composite
def csv_text(draw: st.DrawFn, header: st.SearchStrategy[list[str]] | None = None) -> str:
    names = draw(header if header is not None else st.lists(NAMES, min_size=1, max_size=4))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    for _ in range(draw(st.integers(0, 6))):
        ragged = draw(st.integers(-1, 1)) if draw(st.booleans()) else 0
        writer.writerow([draw(CELL) for _ in range(max(0, len(names) + ragged))])
    return out.getvalue()


@st.composite
def jsonl_text(draw: st.DrawFn) -> str:
    rows = draw(st.lists(st.dictionaries(NAMES, JSON_VALUE, max_size=4) | JSON_VALUE, max_size=6))
    return "".join(json.dumps(row) + draw(st.sampled_from(["\n", "\n\n", "\r\n"])) for row in rows)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _outcome(path: Path, read: Callable[[], Any]) -> str | None:
    """None when ``read`` succeeds, else the InputError's message, checked to be one line naming ``path``."""
    try:
        read()
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert path.name in message, message
        return message
    return None


@given(data=st.data())
def test_pool_files_read_or_fail_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("pool")
    suffix = data.draw(st.sampled_from([".csv", ".jsonl"]))
    text = data.draw(csv_text() if suffix == ".csv" else jsonl_text())
    path = _write(tmp, f"pool{suffix}", data.draw(mangled(text)))
    _outcome(path, lambda: list(read_rows(path)))


@given(
    rows=st.lists(
        st.lists(
            st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")), min_size=2, max_size=2
        ),
        max_size=6,
    )
)
def test_well_formed_csv_reads_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    path = tmp_path_factory.mktemp("pool") / "pool.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "text"], *rows])
    assert list(read_rows(path)) == [{"id": a, "text": b} for a, b in rows]


@given(data=st.data())
def test_parquet_pools_read_or_fail_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = data.draw(st.lists(st.text(max_size=30), min_size=1, max_size=30))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), buffer, row_group_size=7)
    raw = buffer.getvalue()
    at = data.draw(st.integers(0, len(raw) - 1))
    how = data.draw(st.sampled_from(["cut", "flip", "keep"]))
    blob = (
        raw[:at]
        if how == "cut"
        else raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
        if how == "flip"
        else raw
    )
    path = _write(tmp_path_factory.mktemp("pool"), "pool.parquet", blob)
    if _outcome(path, lambda: list(read_rows(path))) is None and how == "keep":
        assert [r["text"] for r in read_rows(path)] == texts


@given(data=st.data())
def test_crowd_csvs_read_or_fail_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    header = st.permutations(["item", "worker", "label"]) | st.lists(NAMES, min_size=1, max_size=4)
    path = _write(
        tmp_path_factory.mktemp("crowd"), "crowd.csv", data.draw(mangled(data.draw(csv_text(header))))
    )
    _outcome(path, lambda: read_crowd_csv(path))


@given(data=st.data())
def test_gold_files_read_or_fail_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    suffix = data.draw(st.sampled_from([".csv", ".jsonl"]))
    header = st.sampled_from([["item", "label"], ["task_id", "answer", "control"]]) | st.lists(
        NAMES, min_size=1
    )
    text = data.draw(csv_text(header) if suffix == ".csv" else jsonl_text())
    path = _write(tmp_path_factory.mktemp("gold"), f"gold{suffix}", data.draw(mangled(text)))
    _outcome(path, lambda: read_gold_file(path))


RESULT = st.fixed_dictionaries(
    {
        "from_name": st.sampled_from(["label", "sentiment", "ner"]) | JSON_LEAF,
        "type": st.sampled_from(
            [
                "choices",
                "labels",
                "rectanglelabels",
                "polygonlabels",
                "textarea",
                "rating",
                "number",
                "taxonomy",
            ]
        )
        | JSON_LEAF,
        "value": st.fixed_dictionaries(
            {},
            optional={
                k: JSON_VALUE
                for k in (
                    "choices",
                    "labels",
                    "start",
                    "end",
                    "text",
                    "x",
                    "y",
                    "width",
                    "points",
                    "rating",
                    "number",
                    "taxonomy",
                )
            },
        )
        | JSON_VALUE,
    }
)
ANNOTATION = st.fixed_dictionaries(
    {"id": st.integers(1, 50) | JSON_LEAF, "result": st.lists(RESULT, max_size=3) | JSON_VALUE},
    optional={
        "completed_by": st.integers(1, 5) | JSON_VALUE,
        "lead_time": JSON_LEAF,
        "created_at": JSON_LEAF,
        "was_cancelled": JSON_LEAF,
    },
)
TASK = st.fixed_dictionaries(
    {"id": st.integers(1, 50) | JSON_LEAF},
    optional={
        "data": JSON_VALUE,
        "annotations": st.lists(ANNOTATION, max_size=3) | JSON_VALUE,
        "predictions": JSON_VALUE,
    },
)


@given(data=st.data())
def test_exports_read_or_fail_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    from ls_companion.quality.adapter import load_export

    text = json.dumps(data.draw(st.lists(TASK, max_size=4) | JSON_VALUE))
    path = _write(tmp_path_factory.mktemp("export"), "export.json", data.draw(mangled(text)))
    _outcome(path, lambda: load_export(path))


SPEC = st.fixed_dictionaries(
    {
        "title": st.text(min_size=3, max_size=12) | JSON_LEAF,
        "label_config": st.sampled_from(["sentiment", "ner", "nope", "<View/>"]) | JSON_LEAF,
    },
    optional={
        "overlap": st.fixed_dictionaries(
            {}, optional={"maximum_annotations": JSON_LEAF, "cohort_percentage": JSON_LEAF}
        )
        | JSON_VALUE,
        "sampling": st.sampled_from(["uniform", "x"]) | JSON_LEAF,
        "guidelines": st.sampled_from(["guide.md", "# inline"]) | JSON_LEAF,
        "pilot": st.fixed_dictionaries(
            {"file": st.sampled_from(["pool.csv", "pool.jsonl", "missing.csv"]) | JSON_LEAF},
            optional={"size": JSON_LEAF, "id_column": JSON_LEAF},
        )
        | JSON_VALUE,
        "ml_backend": st.fixed_dictionaries(
            {},
            optional={
                "url": st.sampled_from(["http://127.0.0.1:9", "ftp://x", ""]) | JSON_LEAF,
                "auth": JSON_LEAF,
            },
        )
        | JSON_VALUE,
        "webhooks": st.lists(
            st.fixed_dictionaries({"url": JSON_LEAF}, optional={"headers": JSON_VALUE}), max_size=2
        )
        | JSON_VALUE,
        "sync": JSON_VALUE,
    },
)


@given(data=st.data())
def test_specs_load_or_fail_with_one_line_naming_the_spec(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("spec")
    _write(tmp, "pool.csv", data.draw(mangled(data.draw(csv_text(st.just(["text", "id"]))))))
    _write(tmp, "pool.jsonl", data.draw(mangled(data.draw(jsonl_text()))))
    _write(tmp, "guide.md", data.draw(mangled(data.draw(st.text(max_size=40)))))
    text = yaml.safe_dump(data.draw(SPEC | JSON_VALUE), allow_unicode=True)
    path = _write(tmp, "spec.yaml", data.draw(mangled(text)))
    settings = Settings(label_configs_dir=REPO_ROOT / "label_configs")
    _outcome(path, lambda: load_spec(path, settings))


TAG = st.sampled_from(
    [
        "View",
        "Text",
        "Choices",
        "Choice",
        "Labels",
        "Label",
        "Image",
        "RectangleLabels",
        "TextArea",
        "Rating",
        "Header",
        "Taxonomy",
    ]
)
ATTRS = st.dictionaries(
    st.sampled_from(
        ["name", "toName", "value", "choice", "perRegion", "valueType", "maxRating", "min", "max"]
    ),
    st.sampled_from(["t", "c", "$text", "$img", "multiple", "true", "url", "x", "", "-1", "1e309"]),
    max_size=4,
)


@st.composite
def xml_config(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(TAG)
    attrs = "".join(f' {k}="{v}"' for k, v in draw(ATTRS).items())
    children = draw(st.lists(xml_config(depth + 1), max_size=3)) if depth < 3 else []
    return f"<{tag}{attrs}>{''.join(children)}</{tag}>"


@given(data=st.data())
def test_label_configs_parse_or_fail_cleanly(data: st.DataObject) -> None:
    real = data.draw(st.sampled_from(CONFIGS)).read_text(encoding="utf-8")
    at = data.draw(st.integers(0, len(real)))
    how = data.draw(st.sampled_from(["generated", "cut", "insert", "real"]))
    if how == "generated":
        xml = data.draw(xml_config())
    elif how == "insert":
        xml = (
            real[:at]
            + data.draw(st.sampled_from(["<", ">", "&", '"', "<!ENTITY x 'y'>", "&x;", "\x00"]))
            + real[at:]
        )
    else:
        xml = real[:at] if how == "cut" else real
    try:
        resolve_label_config(
            xml if xml.lstrip().startswith("<") else f"<{xml}", Path("."), REPO_ROOT / "label_configs"
        )
        controls_from_config(xml)
    except InputError as exc:
        assert "\n" not in str(exc).strip()
    try:
        parse_label_config(xml)
    except BackendError as exc:
        assert exc.status < 500 and "\n" not in exc.detail


BAD_FILES = {
    "crowd.csv": "item,worker,label\n1,a,caf\xe9\n".encode("latin-1"),
    "export.json": b"[" * 100_000,
    "pool.csv": b"text,label\nab\x00c,a\n",
    "spec.yaml": b"title: [" + b"[" * 10_000,
}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("crowd.csv", ["metrics", "{}"]),
        ("export.json", ["metrics", "{}"]),
        ("pool.csv", ["simulate", "{}", "--rounds", "1"]),
        ("spec.yaml", ["bootstrap", "{}"]),
    ],
)
def test_the_cli_answers_a_bad_file_with_exit_2_and_one_line(
    name: str, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, name, BAD_FILES[name])
    assert main([a.format(path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and len(err.strip().splitlines()) == 1, err
