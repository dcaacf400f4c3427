"""Gold files, scores against gold with Wilson intervals, and the qualification test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ls_companion.errors import InputError
from ls_companion.projectdata import gold_store_path
from ls_companion.quality import gold
from ls_companion.quality.records import CHOICES, ScoredControl

SPEC = ScoredControl("label", CHOICES)
CONTROLS = {"label": SPEC}


def answers(records: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Crowd rows (task, annotator, value), timestamps in list order."""
    frame = pd.DataFrame(records, columns=["task_id", "annotator", "value"])
    frame["value"] = frame["value"].astype(object)
    frame["control"] = "label"
    frame["annotation_id"] = range(len(frame))
    frame["created_at"] = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(
        range(len(frame)), unit="min"
    )
    return frame


def test_read_and_resolve_gold_files(tmp_path: Path) -> None:
    store = tmp_path / "gold.jsonl"
    lines = [
        {"task_id": 5, "source_id": "s5", "control": "label", "answer": "spam"},
        {"item": "s6", "label": "ham"},
        {"source_id": "missing", "answer": "ham"},
    ]
    store.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    raw = gold.read_gold_file(store)
    resolved = gold.resolve_gold(raw, CONTROLS, source_ids={"s5": 5, "s6": 6})
    assert resolved.values.tolist() == [[5, "label", "spam"], [6, "label", "ham"]]
    csv = tmp_path / "gold.csv"
    csv.write_text("item,label\n42_0,1\n")
    crowd_gold = gold.resolve_gold(gold.read_gold_file(csv), CONTROLS, integer_ids=False)
    assert crowd_gold.values.tolist() == [["42_0", "label", "1"]]
    assert gold_store_path(tmp_path, 3) == tmp_path / "projects" / "3" / "gold.jsonl"


def test_bad_gold_files(tmp_path: Path) -> None:
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"task_id": 1}\n')
    with pytest.raises(InputError, match="row 1 needs"):
        gold.read_gold_file(bad)
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="not valid JSON"):
        gold.read_gold_file(bad)
    with pytest.raises(InputError, match="not found"):
        gold.read_gold_file(tmp_path / "nope.csv")
    two = {"a": SPEC, "b": ScoredControl("b", CHOICES)}
    with pytest.raises(InputError, match="several"):
        gold.resolve_gold(pd.DataFrame([{"task_id": 1, "item": None, "control": None, "answer": "x"}]), two)
    with pytest.raises(InputError, match="does not have"):
        gold.resolve_gold(
            pd.DataFrame([{"task_id": 1, "item": None, "control": "zz", "answer": "x"}]), CONTROLS
        )


def test_wilson_interval_known_values() -> None:
    low, high = gold.wilson(8, 10, 0.95)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert gold.wilson(0, 0) == (0.0, 1.0)


def test_annotator_scores_and_per_class() -> None:
    rows = answers(
        [(1, "a", "spam"), (2, "a", "ham"), (3, "a", "ham"), (4, "a", "spam"), (1, "b", "ham"), (5, "b", "x")]
    )
    truth = pd.Series({1: "spam", 2: "ham", 3: "spam", 4: "spam"}, dtype=object)
    scored = gold.score_answers(rows, truth, SPEC)
    assert len(scored) == 5  # task 5 has no gold
    table = gold.annotator_gold(scored, SPEC).set_index("annotator")
    assert table.loc["a", ["n_gold", "correct", "accuracy"]].tolist() == [4, 3, 0.75]
    assert table.loc["a", "ci_low"] == pytest.approx(gold.wilson(3, 4)[0])
    # a: spam recall 2/3 precision 1, ham recall 1 precision 1/2; weighted by support (3 spam, 1 ham).
    assert table.loc["a", "recall"] == pytest.approx(0.75)
    assert table.loc["a", "precision"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.5)
    per_class = gold.per_class(scored).set_index("label")
    assert per_class.loc["spam", "support"] == 4 and per_class.loc["spam", "recall"] == pytest.approx(0.5)


def test_qualification_decides_on_the_interval() -> None:
    truth = pd.Series({t: "spam" for t in range(40)}, dtype=object)
    records = [(t, "perfect", "spam") for t in range(25)]
    records += [(t, "careless", "spam" if t % 2 else "ham") for t in range(20)]
    records += [(t, "short", "spam") for t in range(10)]
    records += [(t, "decent", "spam" if t % 10 else "ham") for t in range(20)]
    results = {
        q.annotator: q for q in gold.qualification(gold.score_answers(answers(records), truth, SPEC), n=20)
    }
    assert results["perfect"].status == "passed" and results["perfect"].n == 20  # first 20 only
    assert results["careless"].status == "failed" and len(results["careless"].errors) == 10
    assert results["careless"].errors[0] == {
        "task_id": 0,
        "control": "label",
        "answer": "ham",
        "expected": "spam",
    }
    assert results["short"].status == "pending"  # 10/10: lower bound 0.79, not yet above 0.85
    assert results["decent"].status == "undecided"  # 18/20: interval [0.72, 0.97] straddles 0.85
    assert results["decent"].to_dict()["ci"] == [
        round(results["decent"].ci_low, 4),
        round(results["decent"].ci_high, 4),
    ]


def test_gold_from_ground_truth_annotations_and_combination() -> None:
    table = answers([(1, "a", "spam"), (1, "r", "ham"), (2, "r", "spam")])
    table["was_cancelled"] = False
    table["ground_truth"] = [False, True, True]
    from_ls = gold.gold_from_table(table)
    assert from_ls.values.tolist() == [[1, "label", "ham"], [2, "label", "spam"]]
    from_file = pd.DataFrame([{"task_id": 1, "control": "label", "value": "spam"}])
    combined = gold.combine_gold(from_file, from_ls)
    assert combined.sort_values("task_id").values.tolist() == [[1, "label", "spam"], [2, "label", "spam"]]


def test_the_gold_store_is_read_past_a_line_torn_by_a_crash(tmp_path: Path) -> None:
    store = gold_store_path(tmp_path, 3)
    store.parent.mkdir(parents=True)
    good = {"task_id": 5, "source_id": "s5", "control": "label", "answer": "spam"}
    later = {"task_id": 6, "source_id": "s6", "control": "label", "answer": "ham"}
    store.write_text(json.dumps(good) + '\n{"task_id": 7, "sour\n' + json.dumps(later) + "\n")
    raw = gold.read_gold_store(store)
    assert raw.values.tolist() == [[5, "s5", "label", "spam"], [6, "s6", "label", "ham"]]
    assert gold.read_gold_store(tmp_path / "none.jsonl").empty
