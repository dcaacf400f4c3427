"""Drift: has a rate or a label distribution changed, for the project or one annotator?

Events (one per answer, in time order) are cut into windows of ``window`` events. For every possible
change point between two windows, the events after it are tested against the events before it:
a one-sided two-proportion z-test (Fisher's exact test when a cell expects fewer than 5) for rates,
a chi-square test of the 2 × labels table for label distributions. The best change point's p-value is
Bonferroni-corrected for the number of points tried; an alert needs the corrected p below ``alpha``
*and* an effect of at least ``min_effect`` in the bad direction (a raw ratio alone never alerts).

Metrics: ``gold_accuracy`` and ``agreement`` (answer = consensus) going down, ``model_disagreement``
(answer ≠ the model's prediction) going up, ``label_distribution`` changing (effect: Jensen-Shannon
distance, base 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, chi2_contingency, fisher_exact, norm
from statsmodels.stats.proportion import proportions_ztest

from ls_companion.quality.records import DECIMALS, jsonable

Direction = Literal["down", "up"]
SERIES_COLUMNS = ["metric", "scope", "annotator", "control", "window", "start", "end", "n", "value"]
#: Windows grow so that at most this many are scanned (and Bonferroni-corrected for) per scope.
MAX_WINDOWS = 50
ANNOTATOR_MAX_WINDOWS = 20
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Alert:
    """A significant change: what, who, since when, from what to what, and how sure."""

    metric: str
    scope: str  # "project" or "annotator"
    annotator: str | None
    control: str | None
    since: pd.Timestamp
    baseline: float
    current: float
    change: float
    p_value: float
    test: str
    n_baseline: int
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "scope": self.scope,
            "annotator": self.annotator,
            "control": self.control,
            "since": self.since.isoformat() if not pd.isna(self.since) else None,
            **jsonable({"baseline": self.baseline, "current": self.current, "change": self.change}, DECIMALS),
            "p_value": float(f"{self.p_value:.3g}"),
            "test": self.test,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
        }


@dataclass(frozen=True, slots=True)
class Scope:
    metric: str
    scope: str
    annotator: str | None
    control: str | None


def window_ids(n: int, window: int, max_windows: int | None = None) -> IntArray:
    """Window number of each of ``n`` ordered events; a short last window joins the one before."""
    size = max(window, math.ceil(n / max_windows)) if max_windows else window
    ids: IntArray = np.arange(n, dtype=np.int64) // size
    last = int(ids[-1]) if n else 0
    if last > 0 and np.count_nonzero(ids == last) < size / 2:
        ids[ids == last] = last - 1
    return ids


def proportion_test(
    ok_before: int, n_before: int, ok_after: int, n_after: int, direction: Direction
) -> tuple[float, str]:
    """One-sided p-value that the rate after is lower (``down``) or higher (``up``) than before.

    Fisher's exact test (scipy) when a cell expects fewer than 5, else the pooled two-proportion z-test
    (statsmodels).
    """
    table = np.array([[ok_after, n_after - ok_after], [ok_before, n_before - ok_before]], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if expected.min() < 5:
        alternative = "less" if direction == "down" else "greater"
        return float(fisher_exact(table, alternative=alternative).pvalue), "fisher_exact"
    alternative = "smaller" if direction == "down" else "larger"
    _, p = proportions_ztest([ok_after, ok_before], [n_after, n_before], alternative=alternative)
    return float(p), "two_proportion_z"


def z_pvalues(
    ok_before: FloatArray,
    n_before: FloatArray,
    ok_after: FloatArray,
    n_after: FloatArray,
    direction: Direction,
) -> FloatArray:
    """``proportion_test``'s z-test for many splits at once (same pooled statistic as statsmodels).

    Scanning every change point with one library call each took seconds per annotator; this is one
    vectorized pass, and the chosen split is re-tested with the library (``proportion_test``).
    """
    pooled = (ok_before + ok_after) / (n_before + n_after)
    spread = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_before + 1.0 / n_after))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (ok_after / n_after - ok_before / n_before) / spread
    p = norm.cdf(z) if direction == "down" else norm.sf(z)
    out: FloatArray = np.where(spread > 0, p, 1.0)
    return out


def chi2_pvalues(before: FloatArray, after: FloatArray) -> FloatArray:
    """Pearson chi-square p-values of many 2 × labels tables (rows of ``before``/``after``), as
    ``scipy.stats.chi2_contingency(..., correction=False)`` computes them, in one pass."""
    total = before + after
    n = total.sum(axis=1, keepdims=True)
    share = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    exp_b, exp_a = share * before.sum(axis=1, keepdims=True), share * after.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(exp_b > 0, (before - exp_b) ** 2 / exp_b, 0.0) + np.where(
            exp_a > 0, (after - exp_a) ** 2 / exp_a, 0.0
        )
    dof = np.count_nonzero(total > 0, axis=1) - 1
    p = chi2.sf(terms.sum(axis=1), np.maximum(dof, 1))
    out: FloatArray = np.where(dof >= 1, p, 1.0)
    return out


def distribution_test(before: FloatArray, after: FloatArray) -> tuple[float, float]:
    """(chi-square p-value, Jensen-Shannon distance) of two label count vectors (scipy)."""
    keep = (before + after) > 0
    before, after = before[keep], after[keep]
    if before.size < 2 or before.sum() == 0 or after.sum() == 0:
        return 1.0, 0.0
    p = float(chi2_contingency(np.vstack([before, after]), correction=False).pvalue)
    return p, js_distance(before, after)


def js_distance(before: FloatArray, after: FloatArray) -> float:
    if before.sum() == 0 or after.sum() == 0:
        return 0.0
    return float(jensenshannon(before / before.sum(), after / after.sum(), base=2))


def _series(
    scope: Scope, times: pd.Series, ids: IntArray, values: list[float], counts: list[int]
) -> pd.DataFrame:
    bounds = times.groupby(ids).agg(["min", "max"])
    return pd.DataFrame(
        {
            "metric": scope.metric,
            "scope": scope.scope,
            "annotator": scope.annotator,
            "control": scope.control,
            "window": bounds.index.to_numpy(),
            "start": bounds["min"].to_numpy(),
            "end": bounds["max"].to_numpy(),
            "n": counts,
            "value": values,
        },
        columns=SERIES_COLUMNS,
    )


def _alert(scope: Scope, events: pd.DataFrame, ids: IntArray, k: int, numbers: tuple[Any, ...]) -> Alert:
    since = events["created_at"].iloc[int(np.flatnonzero(ids == k)[0])]
    return Alert(scope.metric, scope.scope, scope.annotator, scope.control, since, *numbers)


def rate_drift(
    scope: Scope,
    events: pd.DataFrame,
    direction: Direction,
    *,
    window: int,
    alpha: float,
    min_effect: float,
    max_windows: int = MAX_WINDOWS,
) -> tuple[pd.DataFrame, Alert | None]:
    """Windows of a rate (``events``: ``created_at``, ``ok``, sorted by time) and the best change point."""
    ids = window_ids(len(events), window, max_windows)
    n_windows = int(ids[-1]) + 1
    counts: FloatArray = np.bincount(ids, minlength=n_windows).astype(np.float64)
    hits: FloatArray = np.bincount(
        ids, weights=events["ok"].to_numpy(dtype=float), minlength=n_windows
    ).astype(np.float64)
    series = _series(
        scope, events["created_at"], ids, list(hits / np.maximum(counts, 1)), [int(c) for c in counts]
    )
    if n_windows < 2:
        return series, None
    ok_b, n_b = np.cumsum(hits)[:-1], np.cumsum(counts)[:-1]
    ok_a, n_a = hits.sum() - ok_b, counts.sum() - n_b
    change = ok_a / n_a - ok_b / n_b
    bad = change <= -min_effect if direction == "down" else change >= min_effect
    p = np.minimum(1.0, z_pvalues(ok_b, n_b, ok_a, n_a, direction) * (n_windows - 1))
    candidates = np.flatnonzero(bad & (p < alpha * 10))  # generous pre-filter; exact test decides below
    best: Alert | None = None
    for i in candidates[np.argsort(p[candidates], kind="stable")][:5]:
        exact, test = proportion_test(int(ok_b[i]), int(n_b[i]), int(ok_a[i]), int(n_a[i]), direction)
        corrected = min(1.0, exact * (n_windows - 1))
        if corrected < alpha and (best is None or corrected < best.p_value):
            numbers = (
                ok_b[i] / n_b[i],
                ok_a[i] / n_a[i],
                change[i],
                corrected,
                test,
                int(n_b[i]),
                int(n_a[i]),
            )
            best = _alert(scope, events, ids, int(i) + 1, numbers)
    return series, best


def distribution_drift(
    scope: Scope,
    events: pd.DataFrame,
    *,
    window: int,
    alpha: float,
    min_effect: float,
    max_windows: int = MAX_WINDOWS,
) -> tuple[pd.DataFrame, Alert | None]:
    """Windows of a label distribution (``events``: ``created_at``, ``value``) and the best change point.

    The series value is each window's Jensen-Shannon distance from the whole history; an alert's
    baseline/current are 0 and the distance between before and after (its ``change``).
    """
    ids = window_ids(len(events), window, max_windows)
    codes, _ = pd.factorize(pd.Series(events["value"].to_numpy(object), dtype=object))
    n_windows = int(ids[-1]) + 1
    table = np.zeros((n_windows, int(codes.max()) + 1))
    np.add.at(table, (ids, codes), 1.0)
    overall = table.sum(axis=0)
    values = [js_distance(overall, row) for row in table]
    series = _series(scope, events["created_at"], ids, values, [int(c) for c in table.sum(axis=1)])
    if n_windows < 2:
        return series, None
    before = np.cumsum(table, axis=0)[:-1]
    after = overall - before
    p = np.minimum(1.0, chi2_pvalues(before, after) * (n_windows - 1))
    best: Alert | None = None
    for i in np.flatnonzero(p < alpha)[np.argsort(p[p < alpha], kind="stable")][:5]:
        exact, distance = distribution_test(before[i], after[i])
        corrected = min(1.0, exact * (n_windows - 1))
        if distance >= min_effect and corrected < alpha and (best is None or corrected < best.p_value):
            numbers = (
                0.0,
                distance,
                distance,
                corrected,
                "chi_square",
                int(before[i].sum()),
                int(after[i].sum()),
            )
            best = _alert(scope, events, ids, int(i) + 1, numbers)
    return series, best


def _scopes(
    events: pd.DataFrame, metric: str, control: str | None, per_annotator: bool
) -> Iterator[tuple[Scope, pd.DataFrame, bool]]:
    ordered = events.dropna(subset=["created_at"]).sort_values("created_at", kind="stable")
    if ordered.empty:
        return
    yield Scope(metric, "project", None, control), ordered, True
    if per_annotator:
        for annotator, part in ordered.groupby("annotator", sort=True):
            yield Scope(metric, "annotator", str(annotator), control), part, False


def detect(
    events: pd.DataFrame,
    metric: str,
    *,
    control: str | None = None,
    direction: Direction | None = None,
    window: int = 50,
    alpha: float = 0.01,
    min_effect: float = 0.05,
    per_annotator: bool = True,
) -> tuple[pd.DataFrame, list[Alert]]:
    """Series and alerts of one metric, for the project and each annotator.

    ``events`` has ``created_at``, ``annotator`` and ``ok`` (a rate, with ``direction`` the bad way) or
    ``value`` (a label distribution, ``direction`` None).
    """
    frames: list[pd.DataFrame] = []
    alerts: list[Alert] = []
    for scope, part, is_project in _scopes(events, metric, control, per_annotator):
        if len(part) < 2 * window:
            continue  # not two windows yet
        cap = MAX_WINDOWS if is_project else ANNOTATOR_MAX_WINDOWS
        if direction is None:
            series, alert = distribution_drift(
                scope, part, window=window, alpha=alpha, min_effect=min_effect, max_windows=cap
            )
        else:
            series, alert = rate_drift(
                scope, part, direction, window=window, alpha=alpha, min_effect=min_effect, max_windows=cap
            )
        frames.append(series)
        if alert is not None:
            alerts.append(alert)
    series = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SERIES_COLUMNS)
    return series, alerts
