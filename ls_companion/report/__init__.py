"""The project report (issue 7): ``index.html`` with inlined PNG plots, ``report.json``, ``plots/*.png``.

``write_report(client, settings, project_id, out_dir)`` does it all; the steps are ``gather.collect``
(read), ``gather.build_report`` (numbers, from the quality engine), ``save_report`` (plots, JSON, HTML).
See docs/report.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.quality import LOW_AGREEMENT
from ls_companion.report.gather import build_report, collect
from ls_companion.report.plots import PLOTS, render_plots, write_plots
from ls_companion.report.render import render_html
from ls_companion.settings import Settings

HTML_NAME = "index.html"
JSON_NAME = "report.json"
PLOTS_DIR = "plots"

__all__ = ["PLOTS", "ReportOptions", "ReportResult", "save_report", "write_report"]


@dataclass(frozen=True, slots=True)
class ReportOptions:
    #: Consensus methods; None: all four when gold can choose among them, else majority vote + Dawid-Skene.
    methods: Sequence[str] | None = None
    low_agreement: float = LOW_AGREEMENT
    gold_file: Path | None = None
    #: Read annotations from the sync's local store instead of listing them from Label Studio.
    from_store: bool = False


@dataclass(frozen=True, slots=True)
class ReportResult:
    """Where a report was written (``html``: index.html, ``json``: report.json, ``plots``: name → PNG)."""

    html: Path
    json: Path
    plots: dict[str, Path]
    #: The content of report.json.
    payload: dict[str, Any]


def save_report(payload: Mapping[str, Any], out_dir: Path) -> ReportResult:
    """Write a report's plots, ``report.json`` and ``index.html`` into ``out_dir`` (created if needed)."""
    plots = render_plots(payload)
    content = {**payload, "plots": {name: f"{PLOTS_DIR}/{name}.png" for name in plots}}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = write_plots(plots, out_dir / PLOTS_DIR)
        json_path = out_dir / JSON_NAME
        json_path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        html_path = out_dir / HTML_NAME
        html_path.write_text(render_html(content, plots), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    return ReportResult(html_path, json_path, paths, content)


def write_report(
    client: LabelStudioClient,
    settings: Settings,
    project_id: int,
    out_dir: Path,
    options: ReportOptions | None = None,
) -> ReportResult:
    """Read project ``project_id``, compute its numbers and write its report into ``out_dir``."""
    options = options or ReportOptions()
    inputs = collect(client, settings, project_id, gold_file=options.gold_file, from_store=options.from_store)
    payload = build_report(inputs, methods=options.methods, low_agreement=options.low_agreement)
    return save_report(payload, out_dir)
