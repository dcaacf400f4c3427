"""Quality by guideline version: did the last guideline change help?

Each answer belongs to the guideline version in force when it was made (``history``: versions with the
time each took effect, oldest first; answers older than the first belong to none, shown as
``UNVERSIONED``). Per control and version: agreement (the share of annotator pairs of a task that agree,
a pair belonging to the version of its later answer), gold accuracy, and the label distribution.
Two consecutive versions are compared with the drift module's tests (a one-sided two-proportion
z-test or Fisher's exact test for the rates, chi-square for the labels), Bonferroni-corrected for the
number of tests of the control; a change *helped* when agreement or gold accuracy rose with a
corrected p below ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ls_companion.quality import drift, gold

if TYPE_CHECKING:
    from ls_companion.quality.engine import ControlQuality, QualityReport

UNVERSIONED = "(before the first version)"
RATES = ("agreement", "gold_accuracy")


def _utc_naive(times: pd.Series) -> pd.Series:
    # UTC as naive datetime64: tz-aware values leave numpy as one Timestamp object each (seconds on 10^5).
    return pd.to_datetime(times, utc=True).dt.tz_localize(None)


def version_at(times: pd.Series, history: Sequence[tuple[str, pd.Timestamp]]) -> pd.Series:
    """The version in force at each time (``UNVERSIONED`` before the first, and for missing times)."""
    if not history:
        return pd.Series(UNVERSIONED, index=times.index, dtype=object)
    starts = _utc_naive(pd.Series([since for _, since in history])).to_numpy()
    stamps = _utc_naive(times)
    positions = np.searchsorted(starts, stamps.to_numpy(), side="right") - 1
    names = np.array([UNVERSIONED] + [v for v, _ in history], dtype=object)
    out = names[positions + 1]
    out[stamps.isna().to_numpy()] = UNVERSIONED
    return pd.Series(out, index=times.index, dtype=object)


def _pair_versions(cq: ControlQuality, history: Sequence[tuple[str, pd.Timestamp]]) -> pd.Series:
    """A pair's version: that of its later answer."""
    made = cq.rows.drop_duplicates(["task_id", "annotator"], keep="last")
    made = made[["task_id", "annotator", "created_at"]].assign(
        created_at=lambda m: _utc_naive(m["created_at"])
    )
    sides = [
        cq.pairs[["task_id", side]].merge(
            made.rename(columns={"annotator": side}), on=["task_id", side], how="left"
        )
        for side in ("annotator_a", "annotator_b")
    ]
    later = pd.concat([side["created_at"] for side in sides], axis=1).max(axis=1)  # naive UTC
    return version_at(later.set_axis(cq.pairs.index), history)


def _per_version(cq: ControlQuality, history: Sequence[tuple[str, pd.Timestamp]]) -> pd.DataFrame:
    correct_at = gold.CORRECT_AT.get(cq.spec.kind, 1.0) - 1e-12
    pairs = pd.DataFrame({"version": _pair_versions(cq, history), "ok": cq.pairs["similarity"] >= correct_at})
    scored = cq.scored.assign(version=version_at(cq.scored["created_at"], history))
    stats = pd.DataFrame(
        {
            "agreement_n": pairs.groupby("version").size(),
            "agreement_ok": pairs.groupby("version")["ok"].sum(),
            "gold_accuracy_n": scored.groupby("version").size(),
            "gold_accuracy_ok": scored.groupby("version")["correct"].sum(),
        }
    )
    order = [UNVERSIONED] + [v for v, _ in history]
    return stats.reindex([v for v in order if v in stats.index]).fillna(0).astype(int)


def _labels(cq: ControlQuality, history: Sequence[tuple[str, pd.Timestamp]]) -> pd.DataFrame:
    versions = version_at(cq.rows["created_at"], history)
    return pd.crosstab(versions, cq.rows["value"].astype(str))


def _compare(
    before: str, after: str, stats: pd.DataFrame, labels: pd.DataFrame | None
) -> list[dict[str, Any]]:
    tests = []
    for metric in RATES:
        n_b, n_a = int(stats.at[before, f"{metric}_n"]), int(stats.at[after, f"{metric}_n"])
        if n_b and n_a:
            ok_b, ok_a = int(stats.at[before, f"{metric}_ok"]), int(stats.at[after, f"{metric}_ok"])
            p, test = drift.proportion_test(ok_b, n_b, ok_a, n_a, "up")
            tests.append(
                {"metric": metric, "before": ok_b / n_b, "after": ok_a / n_a, "p_value": p, "test": test}
            )
    if labels is not None and before in labels.index and after in labels.index:
        p, distance = drift.distribution_test(
            labels.loc[before].to_numpy(float), labels.loc[after].to_numpy(float)
        )
        tests.append(
            {
                "metric": "label_distribution",
                "before": 0.0,
                "after": distance,
                "p_value": p,
                "test": "chi_square",
            }
        )
    return tests


def control_versions(
    cq: ControlQuality, history: Sequence[tuple[str, pd.Timestamp]], alpha: float
) -> dict[str, Any]:
    """One control's numbers per version and the tests of each change."""
    stats = _per_version(cq, history)
    labels = _labels(cq, history) if cq.spec.categorical else None
    versions = [
        {
            "version": version,
            "since": next((since.isoformat() for v, since in history if v == version), None),
            "n_pairs": int(row["agreement_n"]),
            "agreement": float(row["agreement_ok"] / row["agreement_n"]) if row["agreement_n"] else None,
            "n_gold": int(row["gold_accuracy_n"]),
            "gold_accuracy": float(row["gold_accuracy_ok"] / row["gold_accuracy_n"])
            if row["gold_accuracy_n"]
            else None,
            "labels": {} if labels is None else {k: int(v) for k, v in labels.loc[version].items() if v},
        }
        for version, row in stats.iterrows()
    ]
    names = list(stats.index)
    changes = [
        {"from": before, "to": after, "tests": _compare(before, after, stats, labels)}
        for before, after in pairwise(names)
    ]
    n_tests = max(1, sum(len(c["tests"]) for c in changes))
    for change in changes:
        for test in change["tests"]:
            test["p_corrected"] = min(1.0, test["p_value"] * n_tests)
        change["improved"] = [
            t["metric"]
            for t in change["tests"]
            if t["metric"] in RATES and t["p_corrected"] < alpha and t["after"] > t["before"]
        ]
    return {"versions": versions, "changes": changes}


def by_version(
    report: QualityReport, history: Sequence[tuple[str, pd.Timestamp]], alpha: float = 0.01
) -> dict[str, Any]:
    """The ``guidelines`` section: the history and, per control, its numbers by version."""
    return {
        "history": [{"version": v, "since": since.isoformat()} for v, since in history],
        "current": history[-1][0] if history else None,
        "controls": {name: control_versions(cq, history, alpha) for name, cq in report.controls.items()},
    }
