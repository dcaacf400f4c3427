"""Simulated annotators for the demo: people of different reliability answering through the API.

This is a SIMULATION, labeled as such everywhere it shows (user names, the demo's output): Label
Studio Community has no per-user tokens for scripts, so the admin records each answer in the name of
a simulated user (``completed_by``), as Label Studio allows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.records import Task, User

EMAIL_DOMAIN = "simulated.ls-companion.example"
PASSWORD = "simulated-annotator"


@dataclass(frozen=True, slots=True)
class Persona:
    """A simulated annotator: right with probability ``accuracy``, else a uniformly wrong label."""

    name: str
    accuracy: float
    median_seconds: float

    @property
    def email(self) -> str:
        return f"sim-{self.name.lower()}@{EMAIL_DOMAIN}"

    def answer(self, truth: str, labels: Sequence[str], rng: np.random.Generator) -> str:
        if truth not in labels:
            raise InputError(f"the true label {truth!r} is not one of {', '.join(labels)}")
        if rng.random() < self.accuracy:
            return truth
        wrong = [label for label in labels if label != truth]
        return wrong[int(rng.integers(len(wrong)))]

    def lead_time(self, rng: np.random.Generator) -> float:
        """Seconds spent on one task: log-normal around the persona's median."""
        return round(float(self.median_seconds * rng.lognormal(0.0, 0.35)), 2)


#: Four reliabilities a real team meets: careful, solid, hasty, and one who barely reads the task.
PERSONAS = (
    Persona("Ada", 0.97, 9.0),
    Persona("Ben", 0.90, 7.0),
    Persona("Cleo", 0.78, 4.0),
    Persona("Dev", 0.50, 2.0),
)


def ensure_users(client: LabelStudioClient, personas: Sequence[Persona]) -> dict[str, User]:
    """One Label Studio user per persona (found by e-mail on a rerun), by persona name."""
    existing = {u.email: u for u in client.list_users()}
    users: dict[str, User] = {}
    for persona in personas:
        user = existing.get(persona.email)
        if user is None:
            user = client.create_user(
                persona.email, password=PASSWORD, first_name=f"{persona.name} (simulated)"
            )
        users[persona.name] = user
    return users


def choice_result(value: str, from_name: str, to_name: str) -> list[dict[str, object]]:
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [value]}}]


@dataclass(frozen=True, slots=True)
class ChoiceControl:
    """The Choices control the simulated annotators answer."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]


def annotate(
    client: LabelStudioClient,
    tasks: Sequence[Task],
    truth: Callable[[Task], str],
    control: ChoiceControl,
    users: Mapping[str, User],
    personas: Sequence[Persona],
    *,
    per_task: int,
    rng: np.random.Generator,
    on_task: Callable[[int], None] | None = None,
) -> int:
    """``per_task`` distinct personas answer each task; returns the number of annotations created."""
    if not 1 <= per_task <= len(personas):
        raise InputError(f"per_task must be between 1 and {len(personas)}")
    created = 0
    for task in tasks:
        right = truth(task)
        for index in rng.choice(len(personas), size=per_task, replace=False):
            persona = personas[int(index)]
            client.create_annotation(
                task.id,
                choice_result(persona.answer(right, control.labels, rng), control.from_name, control.to_name),
                completed_by=users[persona.name].id,
                lead_time=persona.lead_time(rng),
            )
            created += 1
        if on_task is not None:
            on_task(1)
    return created
