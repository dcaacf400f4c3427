"""Annotator performance: speed, throughput over active sessions, cancellations, one quality score.

Throughput is tasks per hour of *active* time: an annotator's annotations, ordered by submission time,
are split into sessions wherever two submissions are more than ``session_gap`` apart; a session lasts
from the start of its first annotation (submission − lead time) to its last submission. Dividing by the
span from first to last timestamp instead would count nights and weekends as work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_SESSION_GAP = pd.Timedelta(minutes=30)
COLUMNS = [
    "annotator",
    "n_annotations",
    "n_cancelled",
    "cancel_rate",
    "lead_time_median",
    "lead_time_p90",
    "n_sessions",
    "active_hours",
    "tasks_per_hour",
]


def _annotations(table: pd.DataFrame) -> pd.DataFrame:
    """One row per annotation (the table has one per control)."""
    columns = ["annotation_id", "annotator", "lead_time", "created_at", "was_cancelled"]
    return table[columns].drop_duplicates("annotation_id")


def active_time(
    created_at: pd.Series, lead_time: pd.Series, gap: pd.Timedelta = DEFAULT_SESSION_GAP
) -> tuple[int, float]:
    """(sessions, active hours) of one annotator's submissions.

    A session's first annotation adds its lead time (when known) before its submission; a session of
    one annotation without lead time counts zero time.
    """
    known = created_at.notna().to_numpy()
    seconds_since_epoch = (created_at[known] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(float)
    order = np.argsort(seconds_since_epoch, kind="stable")
    times = seconds_since_epoch[order]
    leads = np.nan_to_num(lead_time.to_numpy(dtype=float)[known][order], nan=0.0)
    if times.size == 0:
        return 0, float("nan")
    breaks = np.flatnonzero(np.diff(times) > gap.total_seconds()) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, times.size] - 1
    seconds = float(np.sum(times[ends] - times[starts] + leads[starts]))
    return int(starts.size), seconds / 3600.0


def annotator_performance(
    table: pd.DataFrame, session_gap: pd.Timedelta = DEFAULT_SESSION_GAP
) -> pd.DataFrame:
    """Per annotator: counts, cancellation rate, lead time median and p90 (seconds), sessions, tasks/hour."""
    annotations = _annotations(table)
    rows = []
    for annotator, part in annotations.groupby("annotator", sort=True):
        cancelled = int(part["was_cancelled"].sum())
        leads = part["lead_time"].dropna()
        sessions, hours = active_time(part["created_at"], part["lead_time"], session_gap)
        rows.append(
            {
                "annotator": annotator,
                "n_annotations": len(part),
                "n_cancelled": cancelled,
                "cancel_rate": cancelled / len(part),
                "lead_time_median": float(leads.median()) if not leads.empty else np.nan,
                "lead_time_p90": float(leads.quantile(0.9)) if not leads.empty else np.nan,
                "n_sessions": sessions,
                "active_hours": hours,
                "tasks_per_hour": len(part) / hours if hours and hours > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def quality_score(
    gold_accuracy: pd.Series, vs_consensus: pd.Series, n_gold: pd.Series, min_gold: int = 10
) -> pd.Series:
    """One number per annotator: gold accuracy with at least ``min_gold`` gold answers, else agreement
    with the consensus (both in [0, 1]; the consensus can be wrong, gold cannot)."""
    index = vs_consensus.index.union(gold_accuracy.index)
    gold = gold_accuracy.reindex(index)
    enough = n_gold.reindex(index).fillna(0) >= min_gold
    return gold.where(enough, vs_consensus.reindex(index)).rename("quality_score")
