"""Write quality numbers into task meta: decide which tasks need a PATCH (pure), then send them.

A task's numbers carry ``rev``, the hash of the annotations they describe. A task whose meta already
holds numbers for its current annotations gets no PATCH, even when project-wide context (another
annotator's reliability, the consensus model) moved since: otherwise every sync would re-PATCH the
tasks the previous one PATCHed (our own PATCH bumps ``updated_at``, so they are listed again) and the
loop would never go quiet. ``refresh`` (``sync --full``) recomputes every listed task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.records import Task
from ls_companion.sync.options import MIRROR_PREFIX

log = logging.getLogger(__name__)

QUALITY_KEY = "quality"
REV_KEY = "rev"
LABEL_ISSUE_KEY = "label_issue"
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class MetaUpdate:
    task: Task
    quality: dict[str, Any] | None
    data_values: dict[str, Any]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def current_quality(task: Task) -> Any:
    ours = task.meta.get(META_NAMESPACE)
    return ours.get(QUALITY_KEY) if isinstance(ours, Mapping) else None


def mirror_values(quality: Mapping[str, Any] | None, fields: Sequence[str]) -> dict[str, Any]:
    """``lsc_<key>`` data values for the mirrored scalar keys (None when a key is absent or not scalar).

    A finding (``label_issue``) mirrors its score while it is flagged, None otherwise: the Data Manager
    tab of likely label errors lists exactly the flagged tasks.
    """
    out = {}
    for key in fields:
        value = quality.get(key) if quality is not None else None
        if isinstance(value, Mapping) and "flagged" in value:
            value = value.get("score") if value["flagged"] else None
        out[MIRROR_PREFIX + key] = value if isinstance(value, _SCALARS) else None
    return out


def _new_label_issue(current: Mapping[str, Any], computed: Mapping[str, Any] | None) -> bool:
    """Whether ``computed`` has a label issue from another model version than the one in ``current``."""
    new = computed.get(LABEL_ISSUE_KEY) if computed is not None else None
    old = current.get(LABEL_ISSUE_KEY)
    if not isinstance(new, Mapping):
        return False
    return not isinstance(old, Mapping) or old.get("model_version") != new.get("model_version")


def plan_updates(
    listed: Iterable[Task],
    revs: Mapping[int, str],
    computed: Mapping[int, Mapping[str, Any]],
    *,
    mirror: Sequence[str] = (),
    refresh: bool = False,
) -> list[MetaUpdate]:
    """The PATCHes that make each listed task's meta (and mirrored data) match its annotations.

    ``revs``: the annotations hash of every listed task that has annotations; ``computed``: the
    engine's dict for tasks it scored (a task with annotations it cannot score gets None).
    """
    updates = []
    for task in listed:
        current = current_quality(task)
        rev = revs.get(task.id)
        if not refresh and rev is not None and isinstance(current, Mapping) and current.get(REV_KEY) == rev:
            kept = dict(current)  # already describes these annotations
            if _new_label_issue(current, computed.get(task.id)):  # a new model judged the label
                kept[LABEL_ISSUE_KEY] = computed[task.id][LABEL_ISSUE_KEY]
            desired: dict[str, Any] | None = kept
        elif task.id in computed:
            desired = {**computed[task.id], REV_KEY: rev}
        else:
            desired = None
        data_values = {}
        if mirror:
            wanted = mirror_values(desired, mirror)
            if any(task.data.get(k) != v for k, v in wanted.items()):
                data_values = wanted
        if data_values or not _same(desired, current):
            updates.append(MetaUpdate(task, desired, data_values))
    return updates


def _send(client: LabelStudioClient, update: MetaUpdate) -> bool:
    values = {QUALITY_KEY: update.quality}
    if update.data_values:
        return client.update_task_meta_and_data(update.task, values, update.data_values)
    return client.update_task_meta(update.task.id, values, current=update.task.meta)


def send_updates(client: LabelStudioClient, updates: Sequence[MetaUpdate], *, workers: int) -> int:
    """Send the PATCHes with at most ``workers`` in flight; returns how many were sent.

    Every update is attempted; if any failed (after the client's retries) the first error is raised
    afterwards, so that the caller keeps its watermark and the next sync sends the rest.
    """
    if not updates:
        return 0
    sent = 0
    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(updates)))) as pool:
        futures = [pool.submit(_send, client, update) for update in updates]
        for future in futures:
            try:
                sent += 1 if future.result() else 0
            except Exception as exc:  # collected and re-raised below, after the others finished
                log.warning("%s", exc)
                first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return sent
