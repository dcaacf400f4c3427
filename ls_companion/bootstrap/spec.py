"""The project spec (YAML): its schema, and its resolution into exactly what Label Studio should hold.

Loading is pure apart from reading the files the spec names: ``load_spec`` validates the YAML, resolves
the label config and guidelines (spec folder first, then ``label_configs/``), renders the guidelines
to HTML, and picks the pilot rows. Every problem becomes a ``SpecError`` naming the field path.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import markdown
import yaml
from label_studio_sdk.label_interface.interface import LabelInterface
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from ls_companion import META_NAMESPACE
from ls_companion.errors import InputError, SpecError
from ls_companion.files import read_text
from ls_companion.gate import GateSpec
from ls_companion.quality.records import data_keys
from ls_companion.settings import Settings
from ls_companion.sources import read_rows, source_id
from ls_companion.sync.options import SyncOptions

SAMPLING = {
    "sequential": "Sequential sampling",
    "uniform": "Uniform sampling",
    "uncertainty": "Uncertainty sampling",
}
DEFAULT_PILOT_SIZE = 150  # the seed's advice: a pilot of 100-200 tasks before the full run
BACKEND_WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
WEBHOOK_SECRET_HEADER = "X-Webhook-Secret"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverlapSpec(_Section):
    maximum_annotations: int = Field(1, ge=1, le=100, description="Annotators per task.")
    cohort_percentage: int = Field(100, ge=1, le=100, description="Share of tasks that get the full overlap.")


class PilotSpec(_Section):
    file: str = Field(description="CSV or JSONL file of items, relative to the spec's folder.")
    size: int = Field(DEFAULT_PILOT_SIZE, ge=1, le=100_000)
    id_column: str | None = Field(None, description="Column holding a stable item id; else a content hash.")
    columns: list[str] | None = Field(None, description="Columns that go into task data; default: all.")
    seed: int = 0


class MLBackendSpec(_Section):
    url: HttpUrl | None = Field(None, description="Default: ML_BACKEND_URL.")
    title: str = "ls-companion"
    auth: Literal["none", "basic"] = "none"
    interactive: bool = False
    webhook: bool = True
    timeout: float | None = Field(None, gt=0)
    min_score: float | None = Field(
        None, ge=0, le=1, description="No pre-label below this score (kept in the backend's extra_params)."
    )


class WebhookSpec(_Section):
    url: HttpUrl
    actions: list[str] = Field(default_factory=list, description="Empty: every action.")
    headers: dict[str, str] = Field(default_factory=dict, max_length=10)
    send_payload: bool = True


class ProjectSpec(_Section):
    title: str = Field(min_length=3, max_length=50)
    description: str = ""
    label_config: str = Field(min_length=1)
    guidelines: str | None = None
    show_instruction: bool | None = None
    overlap: OverlapSpec = Field(default_factory=lambda: OverlapSpec())
    sampling: Literal["sequential", "uniform", "uncertainty"] = "sequential"
    show_skip_button: bool = True
    show_collab_predictions: bool = True
    pilot: PilotSpec | None = None
    ml_backend: MLBackendSpec | None = None
    webhooks: list[WebhookSpec] = Field(default_factory=list)
    sync: SyncOptions | None = Field(None, description="The sync worker's options (docs/sync.md).")
    gate: GateSpec | None = Field(None, description="Thresholds of `ls-companion gate` (README).")


@dataclass(frozen=True)
class BackendTarget:
    url: str
    fields: dict[str, Any]  # title, auth_method, basic_auth_user, is_interactive, timeout
    password: str | None
    webhook: WebhookSpec | None


@dataclass(frozen=True)
class ResolvedSpec:
    """What the project in Label Studio should look like, after every file was read."""

    title: str
    project_fields: dict[str, Any]  # LS project fields compared and written as they are
    pilot_tasks: list[dict[str, Any]] = field(default_factory=list)
    pilot_size: int = 0
    backend: BackendTarget | None = None
    webhooks: list[WebhookSpec] = field(default_factory=list)
    #: The quality keys the sync mirrors into task data (``sync.mirror``, its default when unset).
    mirror: tuple[str, ...] = SyncOptions().mirror

    @property
    def instruction(self) -> str:
        """The guidelines as HTML (bootstrap adds their version line)."""
        return str(self.project_fields["expert_instruction"])


def _spec_error(exc: ValidationError) -> SpecError:
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first["loc"])
    return SpecError(path or "spec", first["msg"])


def parse_spec(raw: Any) -> ProjectSpec:
    """Validate the YAML document; the first problem becomes a ``SpecError`` with its field path."""
    if not isinstance(raw, dict):
        raise SpecError("spec", "the spec must be a YAML mapping with at least `title` and `label_config`")
    try:
        return ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise _spec_error(exc) from None


def _find_file(name: str, folders: list[Path], field_path: str, suffix: str) -> Path:
    candidates = [folder / name for folder in folders]
    candidates += [folder / f"{name}{suffix}" for folder in folders if not name.endswith(suffix)]
    for path in candidates:
        if path.is_file():
            return path
    where = " or ".join(str(f) for f in folders)
    raise SpecError(field_path, f"no file {name!r} in {where}")


def _read_named(path: Path, field_path: str) -> str:
    """The text of a file the spec names; a bad file is an error of that spec field."""
    try:
        return read_text(path)
    except InputError as exc:
        raise SpecError(field_path, str(exc)) from None


def resolve_label_config(value: str, spec_dir: Path, configs_dir: Path) -> tuple[str, Path | None]:
    """The config XML (inline, or a file in the spec's folder, then ``label_configs/``) and its file."""
    if value.lstrip().startswith("<"):
        xml, path = value.strip(), None
    else:
        path = _find_file(value, [spec_dir, configs_dir], "label_config", ".xml")
        xml = _read_named(path, "label_config").strip()
    try:
        interface = LabelInterface(xml)
        interface.validate()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the SDK raises several exception types for bad XML
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError("label_config", f"not a valid labeling config ({reason})") from None
    if not list(interface.controls):
        raise SpecError("label_config", "the config has no control tag (Choices, Labels, ...)")
    return xml, path


def render_guidelines(value: str | None, spec_dir: Path, config_path: Path | None) -> str:
    """Guidelines as HTML: a Markdown file, inline Markdown, or the config's own template."""
    if value is None:
        if config_path is None:
            return ""
        template = config_path.with_name(config_path.stem + ".guidelines.md")
        if not template.is_file():
            return ""
        text = _read_named(template, "guidelines")
    elif value.strip().endswith(".md") and "\n" not in value.strip():
        text = _read_named(_find_file(value.strip(), [spec_dir], "guidelines", ".md"), "guidelines")
    else:
        text = value
    return markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"])


def _pilot_rank(seed: int, sid: str) -> str:
    # A seeded hash rank: the same items win every run, and a bigger pilot is a superset of a smaller one.
    return hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest()


def pilot_tasks(pilot: PilotSpec, spec_dir: Path, required_keys: list[str]) -> list[dict[str, Any]]:
    """The pilot's tasks in LS import format, each tagged with its source id in our meta namespace."""
    path = (spec_dir / pilot.file) if not Path(pilot.file).is_absolute() else Path(pilot.file)
    if not path.is_file():
        raise SpecError("pilot.file", f"no file {str(path)!r}")
    chosen: dict[str, dict[str, Any]] = {}
    try:
        for row in read_rows(path):
            sid = source_id(row, pilot.id_column)
            data = {k: row.get(k) for k in (pilot.columns or row.keys()) if k != pilot.id_column}
            if not chosen and (missing := [k for k in required_keys if k not in data]):
                raise SpecError("pilot.file", f"column {missing[0]!r} needed by the label config is missing")
            chosen.setdefault(sid, data)
    except InputError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError("pilot.file", str(exc)) from None
    if not chosen:
        raise SpecError("pilot.file", f"{path} holds no rows")
    winners = heapq.nsmallest(pilot.size, chosen, key=lambda sid: _pilot_rank(pilot.seed, sid))
    return [
        {
            "data": chosen[sid],
            "meta": {META_NAMESPACE: {"source_id": sid, "al_round": 0, "strategy": "pilot"}},
        }
        for sid in winners
    ]


def _basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def resolve_backend(spec: MLBackendSpec, settings: Settings) -> BackendTarget:
    url = str(spec.url).rstrip("/") if spec.url is not None else settings.ml_backend_url
    if not url:
        raise SpecError("ml_backend.url", "no URL: set it in the spec or ML_BACKEND_URL")
    fields: dict[str, Any] = {"title": spec.title, "is_interactive": spec.interactive, "auth_method": "NONE"}
    if spec.timeout is not None:
        fields["timeout"] = spec.timeout
    if spec.min_score is not None:
        fields["extra_params"] = {"min_score": spec.min_score}
    password = None
    headers: dict[str, str] = {}
    if spec.auth == "basic":
        user = settings.ml_backend_basic_auth_user
        secret = settings.ml_backend_basic_auth_pass
        if not user or secret is None:
            raise SpecError(
                "ml_backend.auth",
                "basic auth needs ML_BACKEND_BASIC_AUTH_USER and ML_BACKEND_BASIC_AUTH_PASS",
            )
        password = secret.get_secret_value()
        fields.update(auth_method="BASIC_AUTH", basic_auth_user=user)
        headers["Authorization"] = _basic_auth_header(user, password)
    if settings.ml_backend_webhook_secret is not None:
        headers[WEBHOOK_SECRET_HEADER] = settings.ml_backend_webhook_secret.get_secret_value()
    webhook = None
    if spec.webhook:
        webhook = WebhookSpec(
            url=HttpUrl(f"{url}/webhook"), actions=list(BACKEND_WEBHOOK_ACTIONS), headers=headers
        )
    return BackendTarget(url=url, fields=fields, password=password, webhook=webhook)


def resolve_spec(spec: ProjectSpec, spec_dir: Path, settings: Settings) -> ResolvedSpec:
    label_config, config_path = resolve_label_config(spec.label_config, spec_dir, settings.label_configs_dir)
    instruction = render_guidelines(spec.guidelines, spec_dir, config_path)
    project_fields: dict[str, Any] = {
        "title": spec.title,
        "description": spec.description,
        "label_config": label_config,
        "expert_instruction": instruction,
        "show_instruction": spec.show_instruction if spec.show_instruction is not None else bool(instruction),
        "maximum_annotations": spec.overlap.maximum_annotations,
        "overlap_cohort_percentage": spec.overlap.cohort_percentage,
        "sampling": SAMPLING[spec.sampling],
        "show_skip_button": spec.show_skip_button,
        "show_collab_predictions": spec.show_collab_predictions,
    }
    tasks = pilot_tasks(spec.pilot, spec_dir, data_keys(label_config)) if spec.pilot else []
    return ResolvedSpec(
        title=spec.title,
        project_fields=project_fields,
        pilot_tasks=tasks,
        pilot_size=spec.pilot.size if spec.pilot else 0,
        backend=resolve_backend(spec.ml_backend, settings) if spec.ml_backend else None,
        webhooks=list(spec.webhooks),
        mirror=(spec.sync or SyncOptions()).mirror,
    )


def read_spec(path: Path) -> ProjectSpec:
    """Read and validate a spec file (relative paths in it stay unresolved)."""
    if not path.is_file():
        raise InputError(f"{path}: no such spec file")
    text = read_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError("", f"not valid YAML{where}", file=str(path)) from None
    except RecursionError:  # the YAML composer recurses once per nesting level
        raise SpecError("", "YAML nested too deeply to read", file=str(path)) from None
    try:
        return parse_spec(raw)
    except SpecError as exc:
        raise exc.in_file(path) from None


def load_spec(path: Path, settings: Settings) -> ResolvedSpec:
    """Read, validate and resolve a spec file; every error names the spec file first."""
    spec = read_spec(path)
    try:
        return resolve_spec(spec, path.resolve().parent, settings)
    except SpecError as exc:
        raise exc.in_file(path) from None
