"""The labeling cycle's pure parts: guideline versions, quality by version, stage gates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ls_companion.bootstrap import guidelines
from ls_companion.bootstrap.spec import parse_spec
from ls_companion.errors import SpecError
from ls_companion.gate import GateSpec, evaluate
from ls_companion.quality.engine import compute_project_quality
from ls_companion.quality.records import CHOICES, COLUMNS, ScoredControl
from ls_companion.quality.versions import UNVERSIONED, by_version, version_at
from ls_companion.report.gather import stored_label_issues

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_guideline_version_from_title_else_hash() -> None:
    assert guidelines.guideline_version("<h1>Sentiment guidelines v1.2</h1><p>x</p>") == "v1.2"
    assert (
        guidelines.guideline_version("<h1>Sentiment</h1><h2>Rules v3</h2>")
        == "sha1:" + (guidelines.guideline_version("<h1>Sentiment</h1><h2>Rules v3</h2>") or "")[5:]
    )
    assert guidelines.guideline_version("<h1>Sentiment</h1>") != guidelines.guideline_version(
        "<h1>Other</h1>"
    )
    assert guidelines.guideline_version("  ") is None


def test_footer_keeps_its_time_while_the_version_is_unchanged(tmp_path: Path) -> None:
    first = guidelines.stamped("<h1>G v1</h1>", "", T0)
    body, version, since = guidelines.split_footer(first)
    assert (body, version, since) == ("<h1>G v1</h1>", "v1", pd.Timestamp(T0))
    later = datetime(2026, 2, 1, tzinfo=UTC)
    assert guidelines.stamped("<h1>G v1</h1>", first, later) == first  # unchanged: same footer
    later = datetime(2026, 2, 1, 9, 30, 5, 812_004, tzinfo=UTC)
    second = guidelines.stamped("<h1>G v2</h1>", first, later)
    assert guidelines.split_footer(second)[1:] == ("v2", pd.Timestamp(later))  # not cut to the second
    guidelines.record_version(tmp_path, first)
    guidelines.record_version(tmp_path, first)
    history = guidelines.record_version(tmp_path, second)
    assert history == [("v1", pd.Timestamp(T0)), ("v2", pd.Timestamp(later))]


def test_version_at_assigns_each_time_its_version() -> None:
    history = [("v1", pd.Timestamp("2026-01-02", tz="UTC")), ("v2", pd.Timestamp("2026-01-05", tz="UTC"))]
    times = pd.Series(pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-06", None], utc=True))
    assert version_at(times, history).tolist() == [UNVERSIONED, "v1", "v2", UNVERSIONED]


def _table(answers: list[tuple[int, str, str, datetime]]) -> pd.DataFrame:
    rows = [
        {
            "task_id": task,
            "annotation_id": n,
            "annotator": who,
            "control": "label",
            "kind": CHOICES,
            "value": value,
            "lead_time": 5.0,
            "created_at": pd.Timestamp(when),
            "was_cancelled": False,
            "ground_truth": False,
        }
        for n, (task, who, value, when) in enumerate(answers)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_by_version_finds_the_improvement_of_agreement() -> None:
    change = datetime(2026, 1, 10, tzinfo=UTC)
    answers = []
    for task in range(40):  # v1: 15 of 40 tasks confused (a vs b); v2: all agree
        when = datetime(2026, 1, 5, tzinfo=UTC) if task < 20 else datetime(2026, 1, 15, tzinfo=UTC)
        before = when < change
        answers += [(task, "x", "a", when), (task, "y", "b" if before and task < 15 else "a", when)]
    report = compute_project_quality(_table(answers), {"label": ScoredControl("label", CHOICES)})
    history = [("v1", pd.Timestamp(T0)), ("v2", pd.Timestamp(change))]
    section = by_version(report, history)["controls"]["label"]
    assert [(v["version"], v["n_pairs"], v["agreement"]) for v in section["versions"]] == [
        ("v1", 20, 0.25),
        ("v2", 20, 1.0),
    ]
    (change_row,) = section["changes"]
    agreement = next(t for t in change_row["tests"] if t["metric"] == "agreement")
    assert agreement["test"] == "two_proportion_z" and agreement["p_corrected"] < 0.01
    assert change_row["improved"] == ["agreement"]


def test_gate_names_the_unqualified_annotator() -> None:
    answers = [(t, who, "a", T0) for t in range(10) for who in ("ann", "bob", "cat")]
    answers += [(t, "dev", "b", T0) for t in range(10)]
    table = _table(answers)
    gold = pd.DataFrame({"task_id": [0, 1], "control": ["label", "label"], "value": ["a", "a"]})
    report = compute_project_quality(table, {"label": ScoredControl("label", CHOICES)}, gold)
    spec = GateSpec(pilot_min_tasks=5, pilot_max_tasks=20, min_agreement=-1.0, gold_share_max=0.5)
    result = evaluate(
        report, stage="pilot", spec=spec, overlaps={t: 4 for t in range(10)}, n_gold=2, names={"dev": "Dev"}
    )
    verdict = {c.name: c for c in result.criteria}
    assert not result.passed and not verdict["qualification"].passed
    assert "Dev (0.0 % on 2 gold)" in verdict["qualification"].detail
    assert all(c.passed for name, c in verdict.items() if name != "qualification")
    assert result.to_dict()["next"] == [verdict["qualification"].next_step]


def test_gate_spec_keys_are_checked() -> None:
    spec = parse_spec({"title": "abc", "label_config": "x", "gate": {"min_agreement": 0.7}})
    assert spec.gate is not None and spec.gate.min_agreement == 0.7 and spec.gate.pilot_max_tasks == 200
    with pytest.raises(SpecError, match=r"gate\.gold_share_max"):
        parse_spec({"title": "abc", "label_config": "x", "gate": {"gold_share_max": 2}})
    with pytest.raises(SpecError, match="gate: Value error, pilot_min_tasks is above"):
        parse_spec({"title": "abc", "label_config": "x", "gate": {"pilot_min_tasks": 300}})


def test_stored_label_issues_are_the_flagged_ones_the_sync_wrote() -> None:
    flagged = {"score": 0.9, "suggested": "b", "flagged": True, "model_version": "v3"}
    metas: dict[int, dict[str, Any]] = {
        1: {"quality": {"label_issue": flagged}},
        2: {"quality": {"label_issue": {**flagged, "flagged": False}}},
        3: {"quality": {"agreement": 1.0}},
        4: {},
    }
    assert stored_label_issues(metas) == {1: flagged}
