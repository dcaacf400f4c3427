"""Make a Label Studio project match a resolved spec, idempotently, and report what changed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ls_companion import META_NAMESPACE
from ls_companion.bootstrap.guidelines import guideline_version, record_version, stamped
from ls_companion.bootstrap.spec import BackendTarget, ResolvedSpec, WebhookSpec
from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.projectdata import project_dir
from ls_companion.records import MLBackend, Project, Webhook
from ls_companion.sync.writeback import LABEL_ISSUE_KEY

_LONG = 60


def _show(value: Any) -> Any:
    """Long texts (configs, guidelines) are reported by size and hash, not in full."""
    if isinstance(value, str) and len(value) > _LONG:
        return f"<{len(value)} chars, sha1 {hashlib.sha1(value.encode()).hexdigest()[:8]}>"
    return value


@dataclass(frozen=True)
class Change:
    what: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.what}: {_show(self.old)} → {_show(self.new)}"


@dataclass
class BootstrapResult:
    project_id: int
    project_url: str
    created: bool
    changes: list[Change] = field(default_factory=list)
    guidelines_version: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "project_url": self.project_url,
            "created": self.created,
            "changed": self.changed,
            "changes": [{**asdict(c), "old": _show(c.old), "new": _show(c.new)} for c in self.changes],
            "guidelines_version": self.guidelines_version,
            "warnings": self.warnings,
        }


def diff_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Change]:
    """The desired fields whose current value differs (strings compared without outer whitespace)."""
    changes = []
    for name, want in desired.items():
        have = current.get(name)
        same = (
            have.strip() == want.strip() if isinstance(have, str) and isinstance(want, str) else have == want
        )
        if not same:
            changes.append(Change(name, have, want))
    return changes


def _project_values(project: Project) -> dict[str, Any]:
    return {name: getattr(project, name) for name in Project.__dataclass_fields__}


def project_titled(client: LabelStudioClient, title: str) -> Project | None:
    """The one project titled ``title`` (the key bootstrap matches projects by), or None."""
    found = client.find_projects(title)
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise InputError(f"several projects are titled {title!r} (ids {ids}): rename all but one")
    return found[0] if found else None


def ensure_project(
    client: LabelStudioClient, spec: ResolvedSpec, now: datetime
) -> tuple[Project, bool, list[Change]]:
    project = project_titled(client, spec.title)
    current = project.expert_instruction if project is not None else ""
    # The guidelines' version goes into the instructions, with the time it took effect (kept if unchanged).
    desired = {**spec.project_fields, "expert_instruction": stamped(spec.instruction, current, now)}
    if project is None:
        return client.create_project(**desired), True, []
    changes = diff_fields(_project_values(project), desired)
    if changes:
        project = client.update_project(project.id, **{c.what: c.new for c in changes})
    return project, False, changes


def existing_source_ids(client: LabelStudioClient, project_id: int) -> set[str]:
    """Source ids of the tasks already in the project (our meta namespace), read from LS itself."""
    ids = set()
    for task in client.list_tasks(project_id, data=False, annotations=False):
        ours = task.meta.get(META_NAMESPACE)
        if isinstance(ours, Mapping) and ours.get("source_id") is not None:
            ids.add(str(ours["source_id"]))
    return ids


def sync_pilot(
    client: LabelStudioClient, project_id: int, spec: ResolvedSpec, on_chunk: Callable[[int], None] | None
) -> list[Change]:
    if not spec.pilot_tasks:
        return []
    present = existing_source_ids(client, project_id)
    missing = [t for t in spec.pilot_tasks if t["meta"][META_NAMESPACE]["source_id"] not in present]
    if not missing:
        return []
    had = len(spec.pilot_tasks) - len(missing)
    client.import_tasks(project_id, missing, on_chunk=on_chunk)
    return [Change("pilot tasks", had, len(spec.pilot_tasks))]


def _backend_values(backend: MLBackend) -> dict[str, Any]:
    return {name: getattr(backend, name) for name in MLBackend.__dataclass_fields__}


def sync_backend(client: LabelStudioClient, project_id: int, target: BackendTarget) -> list[Change]:
    found = [b for b in client.list_ml_backends(project_id) if b.url == target.url]
    secret = {"basic_auth_pass": target.password} if target.password is not None else {}
    if not found:
        client.create_ml_backend(project_id, target.url, **target.fields, **secret)
        return [Change(f"ML backend {target.url}", "absent", "connected")]
    changes = diff_fields(_backend_values(found[0]), target.fields)
    if changes:
        client.update_ml_backend(found[0], **{c.what: c.new for c in changes}, **secret)
    return [Change(f"ML backend {c.what}", c.old, c.new) for c in changes]


def _webhook_fields(spec: WebhookSpec) -> dict[str, Any]:
    return {
        "actions": tuple(sorted(spec.actions)),
        "send_for_all_actions": not spec.actions,
        "headers": dict(spec.headers),
        "send_payload": spec.send_payload,
        "is_active": True,
    }


def sync_webhook(
    client: LabelStudioClient, project_id: int, spec: WebhookSpec, existing: list[Webhook]
) -> Change | None:
    """Create or update one webhook. A headerless one LS made for the backend at this URL is adopted."""
    url = str(spec.url)
    want = _webhook_fields(spec)
    found = [w for w in existing if w.url == url]
    if not found:
        client.create_webhook(project_id, url, **{**want, "actions": list(want["actions"])})
        return Change(f"webhook {url}", "absent", "created")
    have = {name: getattr(found[0], name) for name in want}
    if have == want:
        return None
    client.update_webhook(found[0].id, **{**want, "actions": list(want["actions"])})
    # Header values are secrets: report only which keys differ.
    changed = sorted(k for k in want if have[k] != want[k])
    return Change(f"webhook {url}", ", ".join(changed), "updated")


#: The saved Data Manager tab listing likely label errors: tasks whose mirrored ``lsc_label_issue`` (the
#: sync's score that the label is wrong) is above one half, the most likely first.
LABEL_ERRORS_VIEW = {
    "title": "Possible label errors",
    "filters": {
        "conjunction": "and",
        "items": [
            {
                "filter": "filter:tasks:data.lsc_label_issue",
                "operator": "greater",
                "type": "Number",
                "value": 0.5,
            }
        ],
    },
    "ordering": ["-tasks:data.lsc_label_issue"],
}


#: Why bootstrap leaves the label-errors tab out: the tab filters on a column only ``mirror`` fills.
NO_LABEL_ERRORS_TAB = (
    "sync.mirror does not list label_issue, so no task would ever show in the 'Possible label errors'"
    " tab: not created (add label_issue to sync.mirror to get it)"
)


def sync_views(client: LabelStudioClient, project_id: int) -> list[Change]:
    """Create our saved Data Manager tabs the project lacks (matched by title; a user's edits stay)."""
    titles = {(view.get("data") or {}).get("title") for view in client.list_views(project_id)}
    if LABEL_ERRORS_VIEW["title"] in titles:
        return []
    client.create_view(project_id, LABEL_ERRORS_VIEW)
    return [Change(f"Data Manager tab {LABEL_ERRORS_VIEW['title']!r}", "absent", "created")]


def bootstrap(
    client: LabelStudioClient,
    spec: ResolvedSpec,
    *,
    on_import: Callable[[int], None] | None = None,
    data_dir: Path | None = None,
    now: datetime | None = None,
) -> BootstrapResult:
    """Create or update the project the spec describes; a second run with the same spec changes nothing.

    With ``data_dir``, the guidelines' version is also recorded in our state (``bootstrap.guidelines``).
    """
    client.check_connection()
    project, created, changes = ensure_project(client, spec, now or datetime.now(UTC))
    if data_dir is not None and spec.instruction:
        record_version(project_dir(data_dir, project.id), project.expert_instruction)
    changes += sync_pilot(client, project.id, spec, on_import)
    warnings = []
    if LABEL_ISSUE_KEY in spec.mirror:
        changes += sync_views(client, project.id)
    else:
        warnings.append(NO_LABEL_ERRORS_TAB)
    webhooks = list(spec.webhooks)
    if spec.backend is not None:
        changes += sync_backend(client, project.id, spec.backend)
        if spec.backend.webhook is not None:
            webhooks.append(spec.backend.webhook)
    if webhooks:
        existing = client.list_webhooks(project.id)
        changes += [c for w in webhooks if (c := sync_webhook(client, project.id, w, existing)) is not None]
    url = f"{client.url}/projects/{project.id}/"
    return BootstrapResult(project.id, url, created, changes, guideline_version(spec.instruction), warnings)
