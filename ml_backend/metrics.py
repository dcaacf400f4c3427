"""Prometheus text exposition of the backend's counters (per process).

Each gunicorn worker counts what it served; every sample carries a ``worker`` label (the pid), so a
scrape that lands on one worker never looks like a counter reset. Sum over ``worker`` in queries.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict
from collections.abc import Iterable

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_HELP = {
    "ml_backend_requests_total": ("counter", "HTTP requests by route and status."),
    "ml_backend_request_seconds": ("histogram", "Request duration by route."),
    "ml_backend_predictions_total": ("counter", "Predictions returned by /predict."),
    "ml_backend_scored_items_total": ("counter", "Items scored by /score."),
    "ml_backend_webhook_events_total": ("counter", "Webhook events received, by action."),
    "ml_backend_trainings_total": ("counter", "Training runs finished in this process, by outcome."),
    "ml_backend_model_loaded": ("gauge", "Model version this worker serves per project (value 1)."),
}

Labels = tuple[tuple[str, str], ...]


def _fmt(labels: Labels) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[Labels, list[float]] = {}
        self._sums: dict[Labels, float] = defaultdict(float)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + value

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.inc("ml_backend_requests_total", route=route, status=str(status))
        key = (("route", route),)
        with self._lock:
            counts = self._histograms.setdefault(key, [0.0] * (len(_BUCKETS) + 1))
            counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
            self._sums[key] += seconds

    def render(self, loaded: Iterable[tuple[int, str]] = ()) -> str:
        """The exposition text; ``loaded`` lists (project id, version) this worker holds in memory."""
        worker = (("worker", str(os.getpid())),)
        lines: list[str] = []
        with self._lock:
            counters = {name: dict(series) for name, series in self._counters.items()}
            histograms = {k: list(v) for k, v in self._histograms.items()}
            sums = dict(self._sums)
        for name, series in sorted(counters.items()):
            lines.extend(_header(name))
            lines.extend(
                f"{name}{_fmt(worker + labels)} {value:g}" for labels, value in sorted(series.items())
            )
        if histograms:
            name = "ml_backend_request_seconds"
            lines.extend(_header(name))
            for labels, counts in sorted(histograms.items()):
                running = 0.0
                for bound, count in zip((*_BUCKETS, float("inf")), counts, strict=True):
                    running += count
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(f"{name}_bucket{_fmt(worker + labels + (('le', le),))} {running:g}")
                lines.append(f"{name}_sum{_fmt(worker + labels)} {sums[labels]:.6f}")
                lines.append(f"{name}_count{_fmt(worker + labels)} {running:g}")
        models = list(loaded)
        if models:
            lines.extend(_header("ml_backend_model_loaded"))
            lines.extend(
                f"ml_backend_model_loaded{_fmt((*worker, ('project', str(p)), ('version', v)))} 1"
                for p, v in models
            )
        return "\n".join(lines) + "\n"


def _header(name: str) -> list[str]:
    kind, text = _HELP.get(name, ("untyped", name))
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
