"""Label Studio tasks, exports and crowd CSVs → the tidy table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ls_companion.errors import InputError
from ls_companion.quality.records import (
    COLUMNS,
    Box,
    Polygon,
    ScoredControl,
    Span,
    answered,
    controls_from_config,
    crowd,
    infer_controls,
    normalize_answer,
    number_text,
    predictions_to_table,
    read_crowd_csv,
    read_export,
    tasks_to_table,
)
from ls_companion.records import Task
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "label_configs"


def annotation(aid: int, user: int, result: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": aid,
        "completed_by": user,
        "result": result,
        "created_at": f"2026-11-01T10:00:{aid:02d}Z",
        **fields,
    }


def result(name: str, kind: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"from_name": name, "to_name": "x", "type": kind, "value": value, **extra}


def test_controls_from_every_shipped_config() -> None:
    kinds = {path.stem: controls_from_config(path.read_text()) for path in sorted(CONFIGS.glob("*.xml"))}
    assert {
        name: [(s.name, s.kind, s.multiple) for s in specs.values()] for name, specs in kinds.items()
    } == {
        "audio_transcription": [("transcription", "textarea", False)],
        "image_classification": [("label", "choices", False)],
        "multilabel_classification": [("label", "choices", True)],
        "ner": [("labels", "labels", False)],
        "object_detection": [("bbox", "rectanglelabels", False)],
        "ocr": [("bbox", "rectanglelabels", False), ("transcription", "textarea", False)],
        "segmentation": [("polygon", "polygonlabels", False)],
        "sentiment": [("label", "choices", False)],
        "text_classification": [("label", "choices", False)],
    }
    assert kinds["sentiment"]["label"].labels == ("Positive", "Negative", "Neutral")
    rating = controls_from_config(
        '<View><Text name="t" value="$t"/><Rating name="r" toName="t" maxRating="10"/>'
        '<Number name="n" toName="t" min="0" max="100"/></View>'
    )
    assert (rating["r"].scale, rating["n"].scale, rating["r"].categorical) == (
        (1.0, 10.0),
        (0.0, 100.0),
        True,
    )
    with pytest.raises(InputError):
        controls_from_config("<View><Choices")


def test_table_has_one_canonical_row_per_annotation_and_control() -> None:
    controls = controls_from_config((CONFIGS / "multilabel_classification.xml").read_text())
    tasks = [
        Task.from_api(
            {
                "id": 7,
                "annotations": [
                    annotation(
                        1, 11, [result("label", "choices", {"choices": ["Toxic", "Insult"]})], lead_time=4.5
                    ),
                    annotation(2, 12, []),  # nothing ticked: "clean" is an answer for multiple choices
                    annotation(3, 13, [], was_cancelled=True),
                    annotation(
                        4, 14, [result("label", "choices", {"choices": ["Toxic"]})], ground_truth=True
                    ),
                ],
            }
        )
    ]
    table = tasks_to_table(tasks, controls)
    assert list(table.columns) == COLUMNS
    assert table[
        ["annotation_id", "annotator", "value", "was_cancelled", "ground_truth"]
    ].values.tolist() == [
        [1, "11", ("Insult", "Toxic"), False, False],
        [2, "12", (), False, False],
        [3, "13", None, True, False],
        [4, "14", ("Toxic",), False, True],
    ]
    assert table.loc[0, "lead_time"] == 4.5 and str(table["created_at"].dt.tz) == "UTC"
    assert list(answered(table)["annotation_id"]) == [1, 2, 4]
    assert list(crowd(table)["annotation_id"]) == [1, 2]


def test_region_and_value_kinds() -> None:
    spans = [result("labels", "labels", {"start": 0, "end": 5, "text": "Maria", "labels": ["Person"]})]
    box = result(
        "bbox",
        "rectanglelabels",
        {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0, "rectanglelabels": ["Car"]},
        original_width=200,
        original_height=100,
    )
    polygon = result(
        "polygon", "polygonlabels", {"points": [[0, 0], [1, 0], [1, 1]], "polygonlabels": ["Road"]}
    )
    text = result("transcription", "textarea", {"text": ["hello", "world"]})
    controls = {
        "labels": ScoredControl("labels", "labels"),
        "bbox": ScoredControl("bbox", "rectanglelabels"),
        "polygon": ScoredControl("polygon", "polygonlabels"),
        "transcription": ScoredControl("transcription", "textarea"),
        "single": ScoredControl("single", "choices"),
    }
    task = Task.from_api({"id": 1, "annotations": [annotation(1, 5, [*spans, box, polygon, text])]})
    values = dict(zip(*tasks_to_table([task], controls)[["control", "value"]].T.values, strict=True))
    assert values == {
        "labels": (Span(0, 5, "Person", "Maria"),),
        "bbox": (Box(1.0, 2.0, 3.0, 4.0, 0.0, "Car", 2.0),),
        "polygon": (Polygon(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)), "Road"),),
        "transcription": "hello\nworld",
    }  # the single-choice control was not answered: no row


def test_answered_keeps_the_latest_reannotation() -> None:
    controls = {"label": ScoredControl("label", "choices")}
    task = Task.from_api(
        {
            "id": 1,
            "annotations": [
                annotation(1, 5, [result("label", "choices", {"choices": ["a"]})]),
                annotation(2, 5, [result("label", "choices", {"choices": ["b"]})]),
            ],
        }
    )
    assert list(answered(tasks_to_table([task], controls))["value"]) == ["b"]


def test_predictions_table_and_inferred_controls() -> None:
    raw = {
        "id": 3,
        "annotations": [annotation(1, 5, [result("label", "choices", {"choices": ["a", "b"]})])],
        "predictions": [
            {"id": 9, "result": [result("label", "choices", {"choices": ["a"]})], "model_version": "v2"}
        ],
    }
    tasks = [Task.from_api(raw)]
    controls = infer_controls(tasks)
    assert controls == {"label": ScoredControl("label", "choices", multiple=True)}
    predictions = predictions_to_table(tasks, controls)
    assert predictions[["task_id", "value", "model_version"]].values.tolist() == [[3, ("a",), "v2"]]


def test_normalize_gold_answers() -> None:
    assert normalize_answer(ScoredControl("l", "choices"), "spam") == "spam"
    assert normalize_answer(ScoredControl("l", "choices", multiple=True), ["b", "a"]) == ("a", "b")
    assert normalize_answer(ScoredControl("r", "rating"), "4") == 4.0
    assert normalize_answer(ScoredControl("t", "taxonomy"), ["A", "B"]) == (("A", "B"),)
    spans = normalize_answer(ScoredControl("s", "labels"), [{"start": 0, "end": 2, "labels": ["X"]}])
    assert spans == (Span(0, 2, "X", ""),)


def test_crowd_csv_and_export(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("item,worker,label\n42_0,w1,1\n42_0,w2,0\nNA,w1,1\n")
    table = read_crowd_csv(csv)
    assert table[["task_id", "annotator", "value"]].values.tolist() == [
        ["42_0", "w1", "1"],
        ["42_0", "w2", "0"],
        ["NA", "w1", "1"],
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("item,label\n1,2\n")
    with pytest.raises(InputError, match="item, worker, label"):
        read_crowd_csv(bad)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([{"id": 1, "annotations": [annotation(1, 2, [])], "data": {}}]))
    assert [t.id for t in read_export(export)] == [1]
    export.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(InputError, match="list of tasks"):
        read_export(export)
    assert pd.isna(table["created_at"]).all()


def test_number_text_is_what_the_report_and_the_cli_print() -> None:
    assert [number_text(v) for v in (0.12345, 2, True, False, None, float("nan"), float("inf"))] == [
        "0.123",
        "2",
        "yes",
        "no",
        "–",
        "–",
        "–",
    ]
    assert number_text(0.5, digits=1) == "0.5"
