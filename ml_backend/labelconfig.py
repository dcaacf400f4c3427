"""Which controls of a labeling config the backend can serve (and by which plugin), parsed once per config.

Label Studio sends the whole config with every ``/setup`` and ``/predict`` call, so the parse is cached
by the config's hash and a repeated call costs one SHA-256 of the text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

from ml_backend.errors import InvalidLabelConfig
from ml_backend.plugin import ControlSpec, ControlView
from ml_backend.registry import match

__all__ = ["ControlSpec", "ParsedConfig", "Unsupported", "config_hash", "parse_label_config", "warm_up"]

_CACHE_SIZE = 256


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
    views = [_view(control, objects) for control in interface.controls]
    served: list[ControlSpec] = []
    unsupported: list[Unsupported] = []
    for view in views:
        spec_or_reason = match(view, views)
        if isinstance(spec_or_reason, ControlSpec):
            served.append(spec_or_reason)
        else:
            unsupported.append(Unsupported(view.name, view.tag, spec_or_reason))
    covered = {name for spec in served for name in spec.covers}
    return ParsedConfig(key, tuple(served), tuple(u for u in unsupported if u.name not in covered))


def _lower(attrs: Any) -> dict[str, str]:
    return {str(k).lower(): str(v).lower() for k, v in (attrs or {}).items()}


def _view(control: Any, objects: dict[str, Any]) -> ControlView:
    """A control and the one object it labels (``object_tag`` empty when it labels none or several)."""
    targets = list(control.to_name or [])
    target = objects.get(targets[0]) if len(targets) == 1 else None
    return ControlView(
        name=str(control.name),
        tag=str(control.tag),
        to_name=str(target.name) if target is not None else ",".join(targets),
        object_tag=str(target.tag) if target is not None else "",
        value_key=str(target.value_name or "").strip() if target is not None else "",
        classes=tuple(dict.fromkeys(str(label) for label in control.labels or ())),
        attrs=_lower(control.attr),
        object_attrs=_lower(target.attr) if target is not None else {},
    )
