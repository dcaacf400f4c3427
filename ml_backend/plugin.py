"""The model plugin interface: what a model implements to be served by the backend.

A plugin declares the label-config *shapes* it serves (control tag on object tag, e.g. ``Choices`` on
``Text``), checks a concrete control in ``accept`` (returning a ``ControlSpec``, or the reason it will
not serve it), and predicts, per task, Label Studio ``result`` regions with per-region scores plus the
uncertainty of each task (and class probabilities where they exist). A trainable plugin also reads
training targets from annotations (``target``) and fits a model (``fit``); a pretrained one returns its
model from ``pretrained``. The backend does the rest for every plugin alike: task media, background
training, versioning, consensus, ``/versions``, ``/score``, auth.

Plugins are found by the entry point group ``ls_companion.models`` (tried first, so a plugin can replace a
built-in for a shape) and by the built-in registry (``ml_backend.registry``). Fitted models are pickled
into the project's version, so a plugin's model classes must be importable where the backend runs.
See docs/ml-backend.md, "Model plugins", for a worked example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ml_backend.scoring import Uncertainties
    from ml_backend.settings import BackendSettings

JSON = dict[str, Any]
FloatArray = NDArray[np.float64]
#: ``single``: one value per task (a class); ``multi``/``spans``: a set of parts (classes, spans) whose
#: majority is the consensus; ``regions``: pretrained region models (no targets).
Kind = str
SpanTuple = tuple[int, int, str]
Target = str | tuple[str, ...] | tuple[SpanTuple, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """A control tag on an object tag that a plugin serves, e.g. ``Shape("Choices", "Image")``."""

    control: str
    object: str

    def __str__(self) -> str:
        return f"{self.control} on {self.object}"


@dataclass(frozen=True, slots=True)
class ControlView:
    """A control of a labeling config as a plugin sees it in ``accept`` (attribute names lower-case)."""

    name: str
    tag: str
    to_name: str
    object_tag: str
    value_key: str
    classes: tuple[str, ...]
    attrs: Mapping[str, str] = field(default_factory=dict)
    object_attrs: Mapping[str, str] = field(default_factory=dict)

    def incomplete(self) -> str | None:
        """Why no model can learn this control (its object has no ``$variable``, it has no classes)."""
        if not self.value_key:
            return f"{self.object_tag} {self.to_name} has no $variable value"
        return None if self.classes else "the control has no classes"

    def spec(
        self,
        plugin: str,
        kind: Kind,
        options: Mapping[str, str] | None = None,
        classes: tuple[str, ...] | None = None,
    ) -> ControlSpec:
        """The spec a plugin serves this control with (``classes``: when not the config's labels)."""
        return ControlSpec(
            self.name,
            self.tag,
            kind,
            self.to_name,
            self.value_key,
            self.classes if classes is None else classes,
            plugin,
            self.object_tag,
            tuple(sorted((options or {}).items())),
        )


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """A served control: its name, the object it labels, its classes, and the plugin serving it.

    ``options`` are what the plugin recorded in ``accept`` (e.g. OCR's per-region TextArea name);
    ``covers`` names other controls the plugin fills in (they are not reported as unsupported).
    """

    name: str
    tag: str
    kind: Kind
    to_name: str
    value_key: str
    classes: tuple[str, ...]
    plugin: str = ""
    object_tag: str = "Text"
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.plugin:  # the built-in text plugins, so text specs can be written short
            object.__setattr__(self, "plugin", "ner" if self.kind == "spans" else "text-classifier")

    def option(self, key: str) -> str | None:
        return dict(self.options).get(key)

    @property
    def covers(self) -> tuple[str, ...]:
        covered = self.option("covers")
        return tuple(covered.split(",")) if covered else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "kind": self.kind,
            "to_name": self.to_name,
            "value_key": self.value_key,
            "classes": list(self.classes),
            "plugin": self.plugin,
            "object": self.object_tag,
        }


@dataclass(frozen=True, slots=True)
class Output:
    """A plugin's predictions for a batch of inputs, in input order.

    ``regions[i]``: the LS result items of input ``i`` (each with its ``score``); ``uncertainty``: the
    (least confidence, margin, entropy) triple per input; ``probabilities``: (n, classes) where the model
    has class probabilities (``/score`` returns them), else None.
    """

    regions: list[list[JSON]]
    uncertainty: Uncertainties
    probabilities: FloatArray | None = None


class ModelPlugin(ABC):
    """Subclass this (or register an object with the same methods) under ``ls_companion.models``."""

    #: Unique name, stored in each trained control's spec (``ControlSpec.plugin``).
    name: ClassVar[str]
    #: What the plugin can serve; ``accept`` sees only controls of these shapes.
    shapes: ClassVar[tuple[Shape, ...]]
    #: False for pretrained models: ``pretrained`` gives the model and the project never trains it.
    trainable: ClassVar[bool] = True

    @abstractmethod
    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        """``control.spec(self.name, kind, options)``, or the one-line reason the control is not served."""

    @abstractmethod
    def predict(self, spec: ControlSpec, model: Any, inputs: Sequence[Any]) -> Output:
        """Predictions for ``inputs``: strings for Text, RGB ``uint8`` arrays (h, w, 3) for Image."""

    def target(self, spec: ControlSpec, items: Sequence[JSON]) -> Target | None:
        """What one annotation's result items of ``spec`` say (None: nothing usable). Default: choices."""
        allowed = set(spec.classes)
        chosen = [
            str(v)
            for item in items
            for v in (item.get("value") or {}).get("choices") or ()
            if str(v) in allowed
        ]
        if spec.kind == "multi":
            return tuple(sorted(set(chosen)))
        return chosen[0] if len(chosen) == 1 else None

    def fit(
        self,
        spec: ControlSpec,
        inputs: Sequence[Any],
        targets: Sequence[Target],
        settings: BackendSettings | None,
    ) -> Any:
        """A fitted model (with ``classes_``); raise ``ValueError`` with a one-line reason for unusable data."""
        raise NotImplementedError(f"{self.name} does not train")

    def pretrained(self, spec: ControlSpec) -> Any:
        """The ready model of a pretrained plugin (called once per process and cached by the caller)."""
        raise NotImplementedError(f"{self.name} has no pretrained model")

    def evaluate(
        self, spec: ControlSpec, model: Any, inputs: Sequence[Any], targets: Sequence[Target]
    ) -> dict[str, float]:
        """Holdout metrics of a fitted model (default: none)."""
        return {}

    def report(self, spec: ControlSpec, model: Any) -> dict[str, Any]:
        """Extra facts about a fitted model for the version's metadata (default: none)."""
        return {}
