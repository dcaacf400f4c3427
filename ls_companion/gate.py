"""Stage gates of the labeling cycle: is the pilot good enough to scale, is the scaled project healthy?

A gate is a list of criteria, each with the number measured, the threshold, pass/fail and what to do
next. The thresholds are the spec's ``gate`` section (``GateSpec``; the defaults are the usual workflow:
a pilot of 100-200 tasks fully overlapped, chance-corrected agreement of at least 0.6 per control,
every active annotator at 0.85 gold accuracy or better, 5-10 % gold tasks, no drift alert). ``pilot``
checks all of them; ``scale`` leaves out the pilot's size and overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from pathlib import Path

    from ls_companion.client import LabelStudioClient
    from ls_companion.quality.engine import QualityReport
    from ls_companion.settings import Settings

Stage = Literal["pilot", "scale"]
STAGES: tuple[Stage, ...] = ("pilot", "scale")


class GateSpec(BaseModel):
    """The spec's ``gate`` section: the thresholds of ``ls-companion gate``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pilot_min_tasks: int = Field(100, ge=1, description="A pilot has at least this many tasks...")
    pilot_max_tasks: int = Field(200, ge=1, description="...and at most this many.")
    min_agreement: float = Field(
        0.6, ge=-1.0, le=1.0, description="Krippendorff's alpha each control must reach."
    )
    min_gold_accuracy: float = Field(
        0.85, ge=0.0, le=1.0, description="Gold accuracy every active annotator must reach."
    )
    gold_share_min: float = Field(0.05, ge=0.0, le=1.0, description="Share of gold tasks, at least...")
    gold_share_max: float = Field(0.10, ge=0.0, le=1.0, description="...and at most.")

    @model_validator(mode="after")
    def _ordered(self) -> GateSpec:
        if self.pilot_min_tasks > self.pilot_max_tasks:
            raise ValueError("pilot_min_tasks is above pilot_max_tasks")
        if self.gold_share_min > self.gold_share_max:
            raise ValueError("gold_share_min is above gold_share_max")
        return self


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    passed: bool
    value: Any
    threshold: str
    detail: str
    next_step: str  # what to do about it; "" when passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GateResult:
    stage: Stage
    criteria: list[Criterion]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "passed": self.passed,
            "criteria": [c.to_dict() for c in self.criteria],
            "next": [c.next_step for c in self.criteria if not c.passed],
        }


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def pilot_size(n_tasks: int, spec: GateSpec) -> Criterion:
    ok = spec.pilot_min_tasks <= n_tasks <= spec.pilot_max_tasks
    hint = "import more items (the spec's pilot.size)" if n_tasks < spec.pilot_min_tasks else ""
    hint = hint or "a pilot this large costs what scaling costs: judge it as the scale stage"
    return Criterion(
        "pilot_size",
        ok,
        n_tasks,
        f"{spec.pilot_min_tasks}-{spec.pilot_max_tasks} tasks",
        f"{n_tasks} tasks in the project",
        "" if ok else hint,
    )


def full_overlap(report: QualityReport, overlaps: Mapping[Any, int]) -> Criterion:
    """Every task answered by as many annotators as its overlap asks, and the overlap is 2 or more."""
    submitted = dict(zip(report.tasks["task_id"], report.tasks["n_submitted"], strict=True))
    single = sum(1 for overlap in overlaps.values() if overlap < 2)
    missing = sum(1 for task, overlap in overlaps.items() if submitted.get(task, 0) < max(overlap, 2))
    ok = bool(overlaps) and missing == 0
    if single:
        hint = "set overlap.maximum_annotations to 2 or more (and cohort_percentage 100) and re-bootstrap"
    else:
        hint = f"let annotators finish: {missing} task(s) still lack answers"
    return Criterion(
        "full_overlap",
        ok,
        len(overlaps) - missing,
        "every task answered by all its annotators (2 or more)",
        f"{len(overlaps) - missing} of {len(overlaps)} tasks complete; {single} with an overlap below 2",
        "" if ok else hint,
    )


def agreement(report: QualityReport, spec: GateSpec, project_id: int | None) -> list[Criterion]:
    """Krippendorff's alpha of each control against ``min_agreement``."""
    out = []
    review = f"ls-companion guidelines-review --project {project_id}" if project_id else "guidelines-review"
    for name, cq in report.controls.items():
        alpha = cq.agreement.get("krippendorff_alpha")
        ok = alpha is not None and alpha >= spec.min_agreement
        shown = "not measurable (no task with two answers)" if alpha is None else f"alpha {alpha:.3f}"
        out.append(
            Criterion(
                f"agreement:{name}",
                ok,
                None if alpha is None else round(float(alpha), 4),
                f"Krippendorff's alpha >= {spec.min_agreement}",
                f"{name}: {shown}",
                "" if ok else f"run `{review}`, write the confused pairs into the guidelines, re-bootstrap",
            )
        )
    return out


def qualification(report: QualityReport, spec: GateSpec, names: Mapping[str, str]) -> Criterion:
    """Every annotator who answered the primary control (ground truth aside) reaches ``min_gold_accuracy``
    on its gold."""
    table = report.annotators
    crowd = set(report.primary.rows["annotator"]) if report.primary is not None else set()
    active = table[table["annotator"].isin(crowd)]
    failing = []
    for row in active.itertuples(index=False):
        accuracy = getattr(row, "gold_accuracy", None)
        n_gold = getattr(row, "gold_n_gold", 0)
        who = names.get(str(row.annotator), str(row.annotator))
        if accuracy is None or accuracy != accuracy or not n_gold:
            failing.append(f"{who} (no gold answer yet)")
        elif accuracy < spec.min_gold_accuracy:
            failing.append(f"{who} ({_pct(accuracy)} on {int(n_gold)} gold)")
    ok = not failing and not active.empty
    detail = (
        f"all {len(active)} active annotators qualified"
        if ok
        else "below the bar: " + ", ".join(failing)
        if failing
        else "no annotator has answered yet"
    )
    return Criterion(
        "qualification",
        ok,
        len(active) - len(failing),
        f"gold accuracy >= {spec.min_gold_accuracy} for every active annotator",
        detail,
        "" if ok else "retrain or replace the annotators named (their gold errors are in the report)",
    )


def gold_share(n_gold: int, n_tasks: int, spec: GateSpec) -> Criterion:
    share = n_gold / n_tasks if n_tasks else 0.0
    ok = spec.gold_share_min <= share <= spec.gold_share_max
    hint = (
        "add gold items to the next batches (ls-companion select --gold FILE --gold-rate)"
        if share < spec.gold_share_min
        else ""
    )
    return Criterion(
        "gold_share",
        ok,
        round(share, 4),
        f"{_pct(spec.gold_share_min)}-{_pct(spec.gold_share_max)} of the tasks",
        f"{n_gold} gold tasks of {n_tasks} ({_pct(share)})",
        "" if ok else hint or "too much gold costs labels: inject less gold in the next batches",
    )


def drift(report: QualityReport, names: Mapping[str, str]) -> Criterion:
    alerts = [
        f"{a.metric} of {names.get(a.annotator, a.annotator) if a.annotator else 'the project'}"
        f" ({a.baseline:.2f} -> {a.current:.2f})"
        for a in report.alerts
    ]
    return Criterion(
        "drift",
        not alerts,
        len(alerts),
        "no drift alert",
        "; ".join(alerts) or "no drift alert",
        "" if not alerts else "look at the report's drift section and talk to the annotators named",
    )


def evaluate(
    report: QualityReport,
    *,
    stage: Stage,
    spec: GateSpec,
    overlaps: Mapping[Any, int],
    n_gold: int,
    names: Mapping[str, str] | None = None,
    project_id: int | None = None,
) -> GateResult:
    """Every criterion of ``stage`` (``overlaps``: every task's overlap, tasks without answers too)."""
    names = names or {}
    criteria = []
    if stage == "pilot":
        criteria += [pilot_size(len(overlaps), spec), full_overlap(report, overlaps)]
    criteria += agreement(report, spec, project_id)
    criteria += [
        qualification(report, spec, names),
        gold_share(n_gold, len(overlaps), spec),
        drift(report, names),
    ]
    return GateResult(stage, criteria)


def check_project(
    client: LabelStudioClient,
    settings: Settings,
    project_id: int,
    *,
    stage: Stage,
    spec: GateSpec | None = None,
    gold_file: Path | None = None,
) -> GateResult:
    """Read a project from Label Studio (with its gold store) and evaluate the gate of ``stage``."""
    # The engine's imports are heavy and this module is imported by the spec reader: load them on use.
    from ls_companion.quality import gold
    from ls_companion.quality.engine import compute_project_quality
    from ls_companion.report.gather import collect

    inputs = collect(client, settings, project_id, gold_file=gold_file, with_models=False)
    data = inputs.data
    report = compute_project_quality(data.table, data.controls, inputs.gold, data.predictions)
    known = gold.combine_gold(inputs.gold, gold.gold_from_table(data.table))
    return evaluate(
        report,
        stage=stage,
        spec=spec or GateSpec(),
        overlaps=data.overlaps,
        n_gold=len(set(known["task_id"]) & set(data.overlaps)),
        names=inputs.users,
        project_id=project_id,
    )
