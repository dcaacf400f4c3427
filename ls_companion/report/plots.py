"""The report's plots: pure functions from the report's plain dict to PNG bytes (matplotlib, Agg).

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas, never through ``pyplot``, so no
global state or display is involved. A plot without data is a panel that says so, never an error.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib.dates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: The plots of a report, in page order; each is written as ``plots/<name>.png``.
PLOTS = (
    "agreement_heatmap",
    "label_confusion",
    "gold_accuracy",
    "qualification",
    "drift",
    "label_distribution",
    "learning_curve",
    "al_rounds",
)
WIDTH = 8.0  # inches; at DPI this is 800 px, the page's column width
DPI = 100
STATUS_COLORS = {"passed": "#2e7d32", "failed": "#c62828", "undecided": "#ef6c00", "pending": "#9e9e9e"}
#: Drift panels in this order; ``label_distribution``'s value is a distance, the others are rates.
DRIFT_METRICS = ("gold_accuracy", "agreement", "model_disagreement", "label_distribution")
MAX_DRIFT_PANELS = 6
MAX_NAME = 22
MAX_CONFUSION_LABELS = 20
ALERT_COLOR = "#c62828"
#: ``matplotlib.dates`` ships no type stubs (the rest of matplotlib does).
_DATES: Any = matplotlib.dates


# -- figure helpers ----------------------------------------------------------------------------------------------


def _figure(height: float, width: float = WIDTH) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def no_data(title: str, message: str) -> bytes:
    """A panel that says there is nothing to plot yet, and why."""
    figure = _figure(1.8)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title, loc="left", fontweight="bold")
    axes.text(0.5, 0.62, "no data yet", ha="center", va="center", fontsize=15, color="#555")
    axes.text(0.5, 0.25, message, ha="center", va="center", fontsize=9.5, color="#777", wrap=True)
    return _png(figure)


def short(name: str) -> str:
    """An annotator's display name cut to fit an axis label (an email loses its domain first)."""
    if len(name) > MAX_NAME and "@" in name:
        name = name.split("@", 1)[0]
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def _name(names: Mapping[str, str], annotator: Any) -> str:
    return short(names.get(str(annotator), str(annotator)))


def _when(text: str | None) -> float:
    """An ISO time as matplotlib's date number (days), the x of the time axes; NaN when missing."""
    return float(_DATES.date2num(datetime.fromisoformat(text))) if text else math.nan


# -- agreement ---------------------------------------------------------------------------------------------------


def agreement_heatmap(
    pairs: Sequence[Mapping[str, Any]], names: Mapping[str, str], *, control: str | None = None
) -> bytes:
    """Mean similarity of every annotator pair on their shared tasks, with the shared-task count."""
    title = f"Agreement per annotator pair ({control})" if control else "Agreement per annotator pair"
    if not pairs:
        return no_data(title, "agreement needs tasks answered by two annotators or more")
    people = sorted({str(p["annotator_a"]) for p in pairs} | {str(p["annotator_b"]) for p in pairs})
    index = {a: i for i, a in enumerate(people)}
    n = len(people)
    grid = [[float("nan")] * n for _ in range(n)]
    shared = [[0] * n for _ in range(n)]
    for pair in pairs:
        i, j = index[str(pair["annotator_a"])], index[str(pair["annotator_b"])]
        value = pair["agreement"] if pair["agreement"] is not None else float("nan")
        grid[i][j] = grid[j][i] = value
        shared[i][j] = shared[j][i] = int(pair["n_tasks"])
    figure = _figure(min(2.4 + 0.45 * n, 10.0), width=min(WIDTH, 3.6 + 0.8 * n))  # about square
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    labels = [_name(names, a) for a in people]
    axes.set_xticks(range(n), labels, rotation=40, ha="right", fontsize=8)
    axes.set_yticks(range(n), labels, fontsize=8)
    if n <= 12:  # beyond that the numbers no longer fit their cells
        for i in range(n):
            for j in range(n):
                if i != j and shared[i][j]:
                    axes.text(j, i, f"{grid[i][j]:.2f}\n{shared[i][j]}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, shrink=0.8, label="mean similarity")
    axes.set_title(
        "cells: mean similarity of the pair's answers, and their shared tasks", fontsize=8, color="#555"
    )
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return _png(figure)


def label_confusion(block: Mapping[str, Any] | None, *, control: str | None = None) -> bytes:
    """Which labels two annotators of a task chose: pair counts, colored by observed / chance."""
    title = (
        f"Label confusion between annotators ({control})" if control else "Label confusion between annotators"
    )
    if not block or not block.get("n_pairs"):
        return no_data(title, "confusion needs single-choice tasks answered by two annotators or more")
    labels = [str(label) for label in block["labels"]][:MAX_CONFUSION_LABELS]
    size = len(labels)
    counts = np.array(block["matrix"], dtype=float)[:size, :size]
    ratio = np.array(block["ratio"], dtype=float)[:size, :size]  # None -> NaN
    figure = _figure(min(2.4 + 0.45 * size, 10.0), width=min(WIDTH, 3.6 + 0.8 * size))
    axes = figure.add_subplot()
    image = axes.imshow(np.log2(np.clip(ratio, 0.125, 8.0)), cmap="PuOr_r", vmin=-3.0, vmax=3.0)
    axes.set_xticks(range(size), [short(x) for x in labels], rotation=40, ha="right", fontsize=8)
    axes.set_yticks(range(size), [short(x) for x in labels], fontsize=8)
    if size <= 12:
        for i in range(size):
            for j in range(size):
                axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7)
    bar = figure.colorbar(image, ax=axes, shrink=0.8, ticks=[-3, -1, 0, 1, 3])
    bar.ax.set_yticklabels(["1/8", "1/2", "1", "2", "8"])
    bar.set_label("observed / chance")
    axes.set_title("cells: annotator pairs who chose the two labels", fontsize=8, color="#555")
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return _png(figure)


# -- gold and qualification --------------------------------------------------------------------------------------


def _interval_rows(
    axes: Axes, rows: Sequence[tuple[str, float, float, float, str, str]], xlabel: str
) -> None:
    """Horizontal point-and-interval rows: (label, value, low, high, color, note at the right)."""
    for y, (_, value, low, high, color, note) in enumerate(rows):
        axes.errorbar(
            value, y, xerr=[[value - low], [high - value]], fmt="o", color=color, capsize=4, markersize=6
        )
        axes.text(1.02, y, note, va="center", fontsize=8, transform=axes.get_yaxis_transform())
    axes.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)


def gold_accuracy(
    annotators: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    *,
    consensus_accuracy: float | None = None,
    consensus_method: str | None = None,
    confidence: float = 0.95,
    control: str | None = None,
) -> bytes:
    """Each annotator's accuracy on gold tasks with its Wilson interval; the consensus's as a line."""
    title = f"Gold accuracy per annotator ({control})" if control else "Gold accuracy per annotator"
    scored = [a for a in annotators if a.get("gold_n_gold") and a.get("gold_accuracy") is not None]
    if not scored:
        return no_data(title, "no annotator has answered a gold task (gold store, --gold or ground truths)")
    scored.sort(key=lambda a: (a["gold_accuracy"], -a["gold_n_gold"]))
    rows = [
        (
            _name(names, a["annotator"]),
            float(a["gold_accuracy"]),
            float(a["gold_ci_low"]),
            float(a["gold_ci_high"]),
            "#1565c0",
            f"{int(a.get('gold_correct') or 0)}/{int(a['gold_n_gold'])}",
        )
        for a in scored
    ]
    figure = _figure(1.3 + 0.32 * len(rows))
    axes = figure.add_subplot()
    _interval_rows(axes, rows, f"accuracy on gold tasks ({confidence:.0%} Wilson interval)")
    if consensus_accuracy is not None:
        axes.axvline(consensus_accuracy, color="#6a1b9a", linestyle="--", linewidth=1)
        axes.text(
            consensus_accuracy,
            1.0,
            f"consensus ({consensus_method or '?'}) {consensus_accuracy:.2f} ",
            color="#6a1b9a",
            fontsize=8,
            va="bottom",
            ha="right" if consensus_accuracy > 0.5 else "left",
            transform=axes.get_xaxis_transform(),
        )
    axes.set_title(title, loc="left", fontweight="bold", pad=14)
    return _png(figure)


def qualification(
    results: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    *,
    threshold: float = 0.85,
    needed: int = 20,
    confidence: float = 0.90,
    control: str | None = None,
) -> bytes:
    """The qualification test: accuracy on each annotator's first gold answers, interval vs threshold."""
    title = f"Qualification test ({control})" if control else "Qualification test"
    tested = [r for r in results if r.get("n")]
    if not tested:
        return no_data(title, f"the test scores each annotator's first {needed} gold answers; none yet")
    rows = [
        (
            _name(names, r["annotator"]),
            float(r["accuracy"] if r["accuracy"] is not None else 0.0),
            float(r["ci"][0]),
            float(r["ci"][1]),
            STATUS_COLORS.get(str(r["status"]), "#000"),
            f"{r['status']} {r['correct']}/{r['n']}",
        )
        for r in sorted(tested, key=lambda r: str(r["annotator"]))
    ]
    figure = _figure(1.3 + 0.32 * len(rows))
    axes = figure.add_subplot()
    _interval_rows(axes, rows, f"accuracy on the first {needed} gold answers ({confidence:.0%} interval)")
    axes.axvline(threshold, color="#333", linestyle="--", linewidth=1)
    axes.text(
        threshold,
        1.0,
        f"pass ≥ {threshold:.2f} ",
        fontsize=8,
        va="bottom",
        ha="right",
        transform=axes.get_xaxis_transform(),
    )
    axes.set_title(title, loc="left", fontweight="bold", pad=14)
    return _png(figure)


# -- drift ---------------------------------------------------------------------------------------------------------


def _drift_panels(series: Sequence[Mapping[str, Any]]) -> list[tuple[str, str | None]]:
    found = {(str(s["metric"]), s.get("control")) for s in series}
    ordered = sorted(
        found, key=lambda mc: (DRIFT_METRICS.index(mc[0]) if mc[0] in DRIFT_METRICS else 99, str(mc[1]))
    )
    return ordered[:MAX_DRIFT_PANELS]


def _draw_alerts(axes: Axes, alerts: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> None:
    """Each alert as a dashed line at its start and a marker at its value after the change."""
    for alert in alerts:
        since = _when(alert.get("since"))
        if math.isnan(since):
            continue
        axes.axvline(since, color=ALERT_COLOR, linestyle="--", linewidth=1.2, zorder=4)
        who = "project" if alert["scope"] == "project" else _name(names, alert["annotator"])
        if alert["metric"] == "label_distribution":
            note = f"alert: {who}, distance {alert['change']:.2f}"
        else:
            note = f"alert: {who} {alert['baseline']:.2f}→{alert['current']:.2f}"
        axes.plot([since], [alert["current"]], "v", color=ALERT_COLOR, markersize=9, zorder=5)
        axes.annotate(
            note,
            (since, alert["current"]),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=7.5,
            color=ALERT_COLOR,
        )


def _draw_drift_panel(
    axes: Axes,
    windows: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
) -> None:
    by_scope: dict[str | None, list[Mapping[str, Any]]] = {}
    for w in windows:
        by_scope.setdefault(w.get("annotator") if w["scope"] == "annotator" else None, []).append(w)
    for who, part in sorted(by_scope.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        part = sorted(part, key=lambda w: int(w["window"]))
        xs = [_when(w["end"]) for w in part]
        ys = [w["value"] for w in part]
        if who is None:
            axes.plot(xs, ys, "o-", color="#222", linewidth=2, markersize=4, label="project", zorder=3)
        else:
            axes.plot(xs, ys, "-", linewidth=1, alpha=0.55, label=_name(names, who))
    _draw_alerts(axes, alerts, names)
    locator = _DATES.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(_DATES.ConciseDateFormatter(locator))
    axes.grid(alpha=0.3)


def _drift_scale(
    axes: Axes, metric: str, windows: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]
) -> None:
    if metric == "label_distribution":
        highest = max([w["value"] or 0.0 for w in windows] + [a["current"] for a in alerts] + [0.05])
        axes.set_ylim(0.0, highest * 1.25)  # headroom for the alert notes
        axes.set_ylabel("Jensen-Shannon distance", fontsize=8)
    else:  # a rate: from a round tenth below its lowest value up to 1, so small wiggles look small
        lowest = min([w["value"] for w in windows if w["value"] is not None] or [0.0])
        axes.set_ylim(max(0.0, math.floor(10 * lowest - 1) / 10), 1.02)
        axes.set_ylabel("rate", fontsize=8)


def drift(
    series: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    *,
    window: int = 50,
) -> bytes:
    """Per metric and control, the value of each window over time; alerts as red markers at their start."""
    title = "Drift over time"
    panels = _drift_panels(series)
    if not panels:
        return no_data(
            title, f"drift needs timestamps and at least two windows ({2 * window} answers) per scope"
        )
    figure = _figure(0.6 + 2.3 * len(panels))
    grid = figure.subplots(len(panels), 1, squeeze=False, sharex=True)  # one time axis for all
    for axes, (metric, control) in zip(grid[:, 0], panels, strict=True):
        windows = [s for s in series if s["metric"] == metric and s.get("control") == control]
        found = [a for a in alerts if a["metric"] == metric and a.get("control") == control]
        _draw_drift_panel(axes, windows, found, names)
        _drift_scale(axes, metric, windows, found)
        axes.set_title(f"{metric} ({control})" if control else metric, loc="left", fontsize=10)
        if len({w.get("annotator") for w in windows}) <= 8:
            axes.legend(fontsize=7, loc="best")
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return _png(figure)


# -- labels --------------------------------------------------------------------------------------------------------


def label_distribution(distribution: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Per control, the share of each label among the answers and among the consensus labels."""
    title = "Label distribution"
    controls = [(name, block) for name, block in distribution.items() if block.get("labels")][:4]
    if not controls:
        return no_data(title, "no labeled answer yet")
    heights = [0.9 + 0.28 * len(block["labels"]) for _, block in controls]
    figure = _figure(0.5 + sum(heights))
    grid = figure.subplots(len(controls), 1, squeeze=False, height_ratios=heights)
    for axes, (name, block) in zip(grid[:, 0], controls, strict=True):
        rows = block["labels"]
        ys = range(len(rows))
        answers = [r["answer_share"] or 0.0 for r in rows]
        agreed = [r["consensus_share"] or 0.0 for r in rows]
        axes.barh([y - 0.2 for y in ys], answers, height=0.4, color="#1565c0", label="answers")
        axes.barh([y + 0.2 for y in ys], agreed, height=0.4, color="#ffa000", label="consensus")
        for y, row in zip(ys, rows, strict=True):
            axes.text(
                (row["answer_share"] or 0.0) + 0.005, y - 0.2, str(row["answers"]), va="center", fontsize=7
            )
        axes.set_yticks(list(ys), [short(str(r["label"])) for r in rows], fontsize=8)
        axes.invert_yaxis()
        axes.set_xlim(0.0, min(1.0, max([*answers, *agreed, 0.05]) * 1.15))
        axes.set_xlabel("share", fontsize=8)
        axes.set_title(f"{name} ({block['kind']})", loc="left", fontsize=10)
        axes.grid(axis="x", alpha=0.3)
    grid[0, 0].legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return _png(figure)


# -- models and active learning --------------------------------------------------------------------------------


def _curves(versions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[float, float, str]]]]:
    """control → metric → [(training size, value, version)] over the versions that have a holdout."""
    curves: dict[str, dict[str, list[tuple[float, float, str]]]] = {}
    for version in versions:
        for control, info in (version.get("controls") or {}).items():
            holdout = info.get("holdout") or {}
            for metric, value in holdout.items():
                if (
                    metric == "size"
                    or not isinstance(value, int | float)
                    or info.get("training_size") is None
                ):
                    continue
                curves.setdefault(control, {}).setdefault(metric, []).append(
                    (float(info["training_size"]), float(value), str(version.get("version")))
                )
    return curves


def learning_curve(models: Mapping[str, Any]) -> bytes:
    """Holdout metrics of each model version against its training size (oldest version first)."""
    title = "Model versions: holdout metrics (learning curve)"
    if not models.get("available"):
        return no_data(title, str(models.get("reason") or "no ML backend"))
    curves = _curves(models.get("versions") or [])
    if not curves:
        reason = (
            models.get("reason")
            or "no version has holdout metrics (the backend measures from 10 examples of a single choice, 20 of others)"
        )
        return no_data(title, str(reason))
    figure = _figure(0.6 + 2.8 * len(curves))
    grid = figure.subplots(len(curves), 1, squeeze=False)
    for axes, (control, metrics) in zip(grid[:, 0], sorted(curves.items()), strict=True):
        for metric, points in metrics.items():
            axes.plot([p[0] for p in points], [p[1] for p in points], "o-", label=metric, markersize=5)
        last = max((p for points in metrics.values() for p in points), key=lambda p: p[0])
        below = last[1] > 0.9  # keep the note inside the axes
        offset = (-6, -12 if below else 8)
        axes.annotate(last[2], last[:2], textcoords="offset points", xytext=offset, ha="right", fontsize=7)
        axes.set_ylim(0.0, 1.05)
        axes.set_xlabel("training examples", fontsize=8)
        axes.set_ylabel("holdout", fontsize=8)
        axes.set_title(control, loc="left", fontsize=10)
        axes.legend(fontsize=7, loc="lower right")
        axes.grid(alpha=0.3)
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return _png(figure)


def al_rounds(rounds: Sequence[Mapping[str, Any]]) -> bytes:
    """Tasks per active-learning round by strategy, how many are annotated, and the mean uncertainty."""
    title = "Active-learning rounds"
    if not rounds:
        return no_data(
            title, "no task carries meta.ls_companion.al_round (import batches with `ls-companion select`)"
        )
    strategies = sorted({s for r in rounds for s in r["strategies"]})
    xs = [int(r["round"]) for r in rounds]
    figure = _figure(3.6)
    axes = figure.add_subplot()
    bottom = [0] * len(rounds)
    for strategy in strategies:
        counts = [int(r["strategies"].get(strategy, 0)) for r in rounds]
        axes.bar(xs, counts, bottom=bottom, label=strategy, width=0.6)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.plot(xs, [r["annotated"] for r in rounds], "D", color="#222", label="annotated", markersize=6)
    axes.set_ylim(0, max(bottom) * 1.3 + 1)  # headroom for the legend
    axes.set_xticks(xs)
    axes.set_xlabel("round")
    axes.set_ylabel("tasks")
    handles, labels = axes.get_legend_handles_labels()
    uncertain = [
        (x, r["mean_uncertainty"])
        for x, r in zip(xs, rounds, strict=True)
        if r["mean_uncertainty"] is not None
    ]
    if uncertain:
        twin = axes.twinx()
        twin.plot(
            [u[0] for u in uncertain],
            [u[1] for u in uncertain],
            "s--",
            color="#c62828",
            label="mean uncertainty",
        )
        twin.set_ylabel("mean uncertainty", color="#c62828")
        twin.set_ylim(0.0, max(u[1] for u in uncertain) * 1.3 or 1.0)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels, fontsize=7, loc="upper left", ncols=min(len(labels), 4))
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(title, loc="left", fontweight="bold")
    return _png(figure)


# -- all of them ---------------------------------------------------------------------------------------------------


def _primary(payload: Mapping[str, Any]) -> str | None:
    return next(iter(payload["summary"]["controls"]), None)


def render_plots(payload: Mapping[str, Any]) -> dict[str, bytes]:
    """Every plot of ``PLOTS`` from the report's dict, as PNG bytes."""
    names: Mapping[str, str] = payload.get("annotator_names") or {}
    options = payload["options"]
    control = _primary(payload)
    chosen = payload["consensus"].get("chosen")
    makers: dict[str, Callable[[], bytes]] = {
        "agreement_heatmap": lambda: agreement_heatmap(
            payload["pair_agreement"].get(control, []) if control else [], names, control=control
        ),
        "label_confusion": lambda: label_confusion(
            payload["confusion"].get(control) if control else None, control=control
        ),
        "gold_accuracy": lambda: gold_accuracy(
            payload["annotators"],
            names,
            consensus_accuracy=payload["consensus"].get("chosen_gold_accuracy"),
            consensus_method=chosen,
            confidence=options["gold_confidence"],
            control=control,
        ),
        "qualification": lambda: qualification(
            payload["qualification"].get(control, []) if control else [],
            names,
            threshold=options["qualification_threshold"],
            needed=options["qualification_tasks"],
            confidence=options["qualification_confidence"],
            control=control,
        ),
        "drift": lambda: drift(
            payload["drift_series"], payload["drift"]["alerts"], names, window=options["drift_window"]
        ),
        "label_distribution": lambda: label_distribution(payload["label_distribution"]),
        "learning_curve": lambda: learning_curve(payload["models"]),
        "al_rounds": lambda: al_rounds(payload["active_learning"]["rounds"]),
    }
    return {name: makers[name]() for name in PLOTS}


def write_plots(plots: Mapping[str, bytes], folder: Path) -> dict[str, Path]:
    """Write each plot as ``folder/<name>.png``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, png in plots.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        paths[name] = path
    return paths
