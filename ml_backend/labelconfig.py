"""Which controls of a labeling config the backend can serve, parsed once per distinct config.

Label Studio sends the whole config with every ``/setup`` and ``/predict`` call, so the parse is cached
by the config's hash and a repeated call costs one SHA-256 of the text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any, Literal

from ml_backend.errors import InvalidLabelConfig

Kind = Literal["single", "multi", "spans"]

_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """A control the backend can predict: its name, the Text it labels and the classes it offers."""

    name: str
    tag: str
    kind: Kind
    to_name: str
    value_key: str
    classes: tuple[str, ...]

    @property
    def result_type(self) -> str:
        return "labels" if self.kind == "spans" else "choices"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "kind": self.kind,
            "to_name": self.to_name,
            "value_key": self.value_key,
            "classes": list(self.classes),
        }


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A control the backend will not predict, and why."""

    name: str
    tag: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "tag": self.tag, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    config_hash: str
    controls: tuple[ControlSpec, ...]
    unsupported: tuple[Unsupported, ...]


def config_hash(label_config: str) -> str:
    return hashlib.sha256(label_config.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_cache: OrderedDict[str, ParsedConfig] = OrderedDict()
_cache_lock = Lock()


def parse_label_config(label_config: str) -> ParsedConfig:
    """The servable and unsupported controls of ``label_config`` (cached by hash)."""
    key = config_hash(label_config)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    parsed = _parse(label_config, key)
    with _cache_lock:
        _cache[key] = parsed
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return parsed


def warm_up() -> None:
    """Import the SDK's LabelInterface now (gunicorn's master does it once, before forking workers)."""
    from label_studio_sdk.label_interface.interface import LabelInterface  # noqa: F401


def _parse(label_config: str, key: str) -> ParsedConfig:
    # Imported here: LabelInterface costs ~0.6 s to import, and only a new config needs it.
    from label_studio_sdk.label_interface.interface import LabelInterface

    if not label_config.strip():
        raise InvalidLabelConfig("the labeling config is empty", field="label_config")
    try:
        interface = LabelInterface(label_config)
    except Exception as exc:  # the SDK raises several unrelated types for a bad config
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InvalidLabelConfig(
            f"cannot parse the labeling config ({reason})", field="label_config"
        ) from None
    objects = {obj.name: obj for obj in interface.objects}
    served: list[ControlSpec] = []
    unsupported: list[Unsupported] = []
    for control in interface.controls:
        spec_or_reason = _classify(control, objects)
        if isinstance(spec_or_reason, ControlSpec):
            served.append(spec_or_reason)
        else:
            unsupported.append(Unsupported(control.name, control.tag, spec_or_reason))
    return ParsedConfig(key, tuple(served), tuple(unsupported))


def _classify(control: Any, objects: dict[str, Any]) -> ControlSpec | str:
    """A ControlSpec, or the reason the control is not served."""
    tag = str(control.tag)
    if tag not in ("Choices", "Labels"):
        return f"{tag} is not served: only Choices and Labels on Text are"
    attrs = {k.lower(): str(v).lower() for k, v in (control.attr or {}).items()}
    if attrs.get("perregion") == "true":
        return "per-region choices are not served"
    targets = list(control.to_name or [])
    if len(targets) != 1:
        return "a control must label exactly one Text tag"
    target = objects.get(targets[0])
    if target is None or str(target.tag) != "Text":
        found = "missing" if target is None else str(target.tag)
        return f"it labels {targets[0]} ({found}); only Text is served"
    target_attrs = {k.lower(): str(v).lower() for k, v in (target.attr or {}).items()}
    if target_attrs.get("valuetype", "text") != "text":
        return "Text with valueType other than text (a URL) is not served"
    value_key = str(target.value_name or "").strip()
    if not value_key:
        return f"Text {target.name} has no $variable value"
    classes = tuple(dict.fromkeys(str(label) for label in control.labels or ()))
    if not classes:
        return "the control has no classes"
    kind: Kind = "spans"
    if tag == "Choices":
        kind = "multi" if attrs.get("choice") == "multiple" else "single"
        if kind == "single" and len(classes) < 2:
            return "a single-choice control needs at least two choices"
    return ControlSpec(str(control.name), tag, kind, target.name, value_key, classes)
