"""A project's trained models: one fitted model per served control, with the spec it was trained for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_backend.plugin import ControlSpec, Output
from ml_backend.registry import plugin_named


@dataclass(frozen=True, slots=True)
class TrainedControl:
    """A control's model (fitted by its plugin, or the plugin's pretrained one) and the spec it serves."""

    spec: ControlSpec
    model: Any

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "classes_", ()))

    def predict(self, inputs: Sequence[Any]) -> Output:
        return plugin_named(self.spec.plugin).predict(self.spec, self.model, inputs)

    def serves(self, spec: ControlSpec) -> bool:
        """Whether this model still fits ``spec``: same control, object and plugin, no class the config dropped."""
        mine = self.spec
        return (
            mine.name == spec.name
            and mine.kind == spec.kind
            and mine.plugin == spec.plugin
            and mine.to_name == spec.to_name
            and mine.value_key == spec.value_key
            and set(self.classes) <= set(spec.classes)
        )


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """What one training run publishes for a project."""

    controls: Mapping[str, TrainedControl]

    def get(self, name: str) -> TrainedControl | None:
        return self.controls.get(name)

    def serving(self, spec: ControlSpec) -> TrainedControl | None:
        """The model of ``spec``'s control, if it still fits the (possibly edited) config."""
        trained = self.controls.get(spec.name)
        return trained if trained is not None and trained.serves(spec) else None

    def first(self) -> TrainedControl:
        return next(iter(self.controls.values()))
