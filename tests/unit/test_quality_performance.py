"""Annotator performance, drift detection and the escalation planner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from statsmodels.stats.proportion import proportions_ztest

from ls_companion.quality import drift, escalation, performance

T0 = pd.Timestamp("2026-11-02 09:00", tz="UTC")


def timeline(minutes: list[float], leads: list[float], cancelled: list[bool] | None = None) -> pd.DataFrame:
    n = len(minutes)
    return pd.DataFrame(
        {
            "annotation_id": range(n),
            "annotator": "ann",
            "lead_time": leads,
            "created_at": [T0 + pd.Timedelta(minutes=m) for m in minutes],
            "was_cancelled": cancelled or [False] * n,
        }
    )


def test_throughput_counts_active_sessions_only() -> None:
    # Session 1: submissions at 0, 5, 10 min, the first took 60 s. Then a 3-hour break.
    # Session 2: 190, 200 min, the first took 120 s. Active: (600 + 60) + (600 + 120) s = 1380 s.
    table = timeline([0, 5, 10, 190, 200], [60, 30, 45, 120, 20], [False, False, False, False, True])
    row = performance.annotator_performance(table).iloc[0]
    assert row["n_sessions"] == 2
    assert row["active_hours"] == pytest.approx(1380 / 3600)
    assert row["tasks_per_hour"] == pytest.approx(5 / (1380 / 3600))  # first-to-last would give 1.5/h
    assert row["cancel_rate"] == 0.2 and row["n_cancelled"] == 1
    assert row["lead_time_median"] == 45 and row["lead_time_p90"] == pytest.approx(96.0)


def test_quality_score_prefers_enough_gold() -> None:
    gold_acc = pd.Series({"a": 0.9, "b": 0.5})
    vs_consensus = pd.Series({"a": 0.7, "b": 0.8, "c": 0.6})
    n_gold = pd.Series({"a": 12, "b": 3})
    score = performance.quality_score(gold_acc, vs_consensus, n_gold, min_gold=10)
    assert score.to_dict() == {"a": 0.9, "b": 0.8, "c": 0.6}


def events(ok: list[bool], annotator: str = "ann") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "created_at": [T0 + pd.Timedelta(minutes=i) for i in range(len(ok))],
            "annotator": annotator,
            "ok": ok,
        }
    )


def test_accuracy_drop_raises_one_alert_with_when_and_how_much() -> None:
    rng = np.random.default_rng(0)
    ok = list(rng.random(300) < 0.95) + list(rng.random(200) < 0.6)
    series, alerts = drift.detect(
        events(ok), "gold_accuracy", direction="down", window=50, per_annotator=False
    )
    [alert] = alerts
    assert alert.scope == "project" and alert.test == "two_proportion_z"
    assert alert.since == T0 + pd.Timedelta(minutes=300)  # the first window after the change
    assert alert.baseline > 0.9 and alert.current < 0.7 and alert.change < -0.25 and alert.p_value < 1e-6
    assert len(series) == 10 and series["n"].sum() == 500


def test_stable_rate_and_small_changes_do_not_alert() -> None:
    rng = np.random.default_rng(1)
    _, alerts = drift.detect(events(list(rng.random(1000) < 0.9)), "agreement", direction="down", window=50)
    assert alerts == []
    # Up is the bad direction for model disagreement: a drop is good news, no alert.
    ok = [True] * 200 + [False] * 200
    assert drift.detect(events(ok), "model_disagreement", direction="up", window=50)[1] == []


def test_small_windows_use_fishers_exact_test() -> None:
    _, alerts = drift.detect(events([True] * 20 + [False] * 10), "gold_accuracy", direction="down", window=10)
    assert [a.test for a in alerts] == ["fisher_exact", "fisher_exact"]  # project and the one annotator
    assert {a.scope for a in alerts} == {"project", "annotator"}


def test_label_distribution_shift() -> None:
    rng = np.random.default_rng(2)
    values = list(rng.choice(["a", "b", "c"], 300, p=[0.6, 0.3, 0.1])) + list(
        rng.choice(["a", "b", "c"], 200, p=[0.2, 0.3, 0.5])
    )
    frame = events([True] * 500).assign(value=pd.Series(values, dtype=object))
    _, alerts = drift.detect(frame, "label_distribution", window=50, per_annotator=False)
    [alert] = alerts
    assert alert.test == "chi_square" and alert.change > 0.2 and alert.since == T0 + pd.Timedelta(minutes=300)
    assert alert.to_dict()["since"] == "2026-11-02T14:00:00+00:00"


def test_vectorized_tests_equal_the_libraries() -> None:
    ok_b, n_b, ok_a, n_a = (
        np.array([80.0, 45.0]),
        np.array([100.0, 50.0]),
        np.array([60.0, 20.0]),
        np.array([90.0, 40.0]),
    )
    ours = drift.z_pvalues(ok_b, n_b, ok_a, n_a, "down")
    for i in range(2):
        _, p = proportions_ztest([ok_a[i], ok_b[i]], [n_a[i], n_b[i]], alternative="smaller")
        assert ours[i] == pytest.approx(p)
    before = np.array([[30.0, 20.0, 0.0], [10.0, 5.0, 5.0]])
    after = np.array([[10.0, 30.0, 0.0], [12.0, 4.0, 9.0]])
    ours = drift.chi2_pvalues(before, after)
    for i in range(2):
        keep = (before[i] + after[i]) > 0
        expected = chi2_contingency(np.vstack([before[i][keep], after[i][keep]]), correction=False).pvalue
        assert ours[i] == pytest.approx(expected)


def test_escalation_plan() -> None:
    tasks = pd.DataFrame(
        {
            "task_id": [1, 2, 3, 4, 5],
            "n_annotators": [3, 3, 3, 1, 4],
            "agreement": [1 / 3, 1.0, 1 / 3, np.nan, 0.5],
        }
    ).assign(low_agreement=lambda t: t["agreement"] < 0.6)
    overlaps = {1: 3, 2: 3, 3: 4, 4: 3, 5: 4}
    # 1: low and complete → 4; 2: fine; 3: already waiting for its 4th; 4: one annotator; 5: 5 allowed.
    assert escalation.plan_escalation(tasks, overlaps, max_overlap=5) == [(1, 4), (5, 5)]
    assert escalation.plan_escalation(tasks, overlaps, max_overlap=4) == [(1, 4)]
