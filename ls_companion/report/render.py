"""The report's HTML page: one Jinja2 template (``ls_companion/templates/report.html.j2``), PNGs inlined.

Every plot is embedded as a base64 data URI, so ``index.html`` can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from ls_companion.quality.agreement import INTERPRETATION
from ls_companion.quality.records import number_text

TEMPLATE = "report.html.j2"


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


def _scale() -> str:
    """The conventional reading of kappa and alpha, as the engine applies it (agreement.interpret)."""
    text = INTERPRETATION[0][1]
    for (bound, _), (_, name) in itertools.pairwise(INTERPRETATION):
        text += f" < {bound:g} ≤ {name}"
    return text


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ls_companion", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number_text
    env.filters["pct"] = _pct
    return env


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(payload: Mapping[str, Any], plots: Mapping[str, bytes]) -> str:
    """The self-contained page of a report (``payload``: the report's dict; ``plots``: name → PNG)."""
    names: Mapping[str, str] = payload.get("annotator_names") or {}
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            r=payload,
            images={name: data_uri(png) for name, png in plots.items()},
            who=lambda annotator: names.get(str(annotator), str(annotator)),
            scale=_scale(),
        )
    )
