"""What a project already holds, and which active-learning round a ``select`` run belongs to.

Everything is read from Label Studio itself (``meta.ls_companion``), never from a local file that can
be lost. The rule (documented in docs/active-learning.md):

* a run's *request key* hashes the options that decide the selection (strategy, batch, seed, random
  fraction, gold rate, cold-start strategy);
* let R be the highest ``al_round`` in the project (0: the bootstrap pilot, or nothing yet);
* if round R was made by the same request key and holds fewer than ``batch`` tasks, the run resumes
  round R (a crash or a kill stopped it): the batch is recomputed exactly as before (same pool, seed
  and round, and the same exclusions: everything in the project outside round R) and only what is
  missing is imported, capped so that the round ends with ``batch`` tasks;
* if round R was made by the same request key, is full, and was chosen by the model version that
  scores the pool now, there is nothing to do (running the same command twice imports nothing);
* otherwise (other options, a newer model, or ``--new-round``) the run opens round R + 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.sources import content_id


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What we need to know about one task of the project."""

    task_id: int
    source_id: str | None
    al_round: int | None = None
    request: str | None = None
    model_version: str | None = None
    cluster: int | None = None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def task_ref(task_id: int, meta: Mapping[str, Any]) -> TaskRef:
    ours = meta.get(META_NAMESPACE)
    ours = ours if isinstance(ours, Mapping) else {}
    sid = ours.get("source_id")
    return TaskRef(
        task_id=task_id,
        source_id=str(sid) if sid is not None else None,
        al_round=_int_or_none(ours.get("al_round")),
        request=str(ours["al_request"]) if ours.get("al_request") is not None else None,
        model_version=str(ours["model_version"]) if ours.get("model_version") is not None else None,
        cluster=_int_or_none(ours.get("cluster")),
    )


@dataclass(frozen=True)
class ProjectState:
    tasks: tuple[TaskRef, ...]

    @cached_property
    def source_ids(self) -> frozenset[str]:
        return frozenset(t.source_id for t in self.tasks if t.source_id is not None)

    @cached_property
    def highest_round(self) -> int:
        return max((t.al_round for t in self.tasks if t.al_round is not None), default=0)

    def members(self, al_round: int, request: str) -> list[TaskRef]:
        return [t for t in self.tasks if t.al_round == al_round and t.request == request]

    def task_ids_by_source(self) -> dict[str, int]:
        return {t.source_id: t.task_id for t in self.tasks if t.source_id is not None}


def read_project_state(client: LabelStudioClient, project_id: int) -> ProjectState:
    """Every task's source id and round, from its meta; tasks imported without one get their content hash."""
    refs = [task_ref(t.id, t.meta) for t in client.list_tasks(project_id, data=False, annotations=False)]
    if any(r.source_id is None for r in refs):
        hashed = {t.id: content_id(t.data) for t in client.list_tasks(project_id, annotations=False)}
        refs = [r if r.source_id is not None else _with_source(r, hashed.get(r.task_id)) for r in refs]
    return ProjectState(tuple(refs))


def _with_source(ref: TaskRef, sid: str | None) -> TaskRef:
    return TaskRef(ref.task_id, sid, ref.al_round, ref.request, ref.model_version, ref.cluster)


def request_key(
    *, strategy: str, batch: int, seed: int, random_fraction: float, gold_rate: float, cold_start: str
) -> str:
    """A short hash of the options that decide a batch; runs with the same key share rounds."""
    options = {
        "strategy": strategy,
        "batch": batch,
        "seed": seed,
        "random_fraction": round(random_fraction, 6),
        "gold_rate": round(gold_rate, 6),
        "cold_start": cold_start,
    }
    return hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RoundDecision:
    al_round: int
    members: frozenset[str]  # source ids this round already holds
    resumed: bool
    complete: bool  # nothing left to import


@dataclass(frozen=True)
class LastRound:
    """The highest round, when it was made by the same request (else None)."""

    al_round: int
    members: frozenset[str]
    model_versions: frozenset[str | None]


def last_round(state: ProjectState, request: str) -> LastRound | None:
    r = state.highest_round
    members = state.members(r, request)
    if r == 0 or not members:
        return None
    return LastRound(
        r,
        frozenset(m.source_id for m in members if m.source_id is not None),
        frozenset(m.model_version for m in members),
    )


def decide_round(
    state: ProjectState, request: str, batch: int, current_version: str | None, *, new_round: bool = False
) -> RoundDecision:
    """The round rule of this module's docstring."""
    last = None if new_round else last_round(state, request)
    if last is not None and len(last.members) < batch:
        return RoundDecision(last.al_round, last.members, resumed=True, complete=False)
    if last is not None and current_version in last.model_versions:
        return RoundDecision(last.al_round, last.members, resumed=True, complete=True)
    return RoundDecision(state.highest_round + 1, frozenset(), resumed=False, complete=False)
