"""The model plugins this process serves: entry points of group ``ls_companion.models``, then the built-ins.

Entry points are tried first, so an installed plugin can take over a shape a built-in serves. An entry
point names a ``ModelPlugin`` subclass or instance; one that fails to load is logged and skipped (a broken
plugin must not take the backend down). Pretrained models are loaded once per process, on first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from ml_backend.errors import ModelFileError
from ml_backend.plugin import ControlSpec, ControlView, ModelPlugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ls_companion.models"

_pretrained: dict[str, Any] = {}
_pretrained_lock = threading.Lock()


def builtin_plugins() -> list[ModelPlugin]:
    from ml_backend.models.image_classifier import ImageClassifierPlugin
    from ml_backend.models.ocr import OcrPlugin
    from ml_backend.models.text_plugins import NerPlugin, TextClassifierPlugin

    return [TextClassifierPlugin(), NerPlugin(), ImageClassifierPlugin(), OcrPlugin()]


def _entry_point_plugins() -> list[ModelPlugin]:
    found: list[ModelPlugin] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            log.warning("model plugin %s (%s) did not load: %s", point.name, point.value, exc)
            continue
        if not isinstance(plugin, ModelPlugin):
            log.warning("model plugin %s (%s) is not a ModelPlugin; skipped", point.name, point.value)
            continue
        found.append(plugin)
    return found


@lru_cache(maxsize=1)
def plugins() -> tuple[ModelPlugin, ...]:
    """Every plugin, entry points first; a later plugin with a name already taken is skipped."""
    by_name: dict[str, ModelPlugin] = {}
    for plugin in [*_entry_point_plugins(), *builtin_plugins()]:
        by_name.setdefault(plugin.name, plugin)
    return tuple(by_name.values())


def plugin_named(name: str) -> ModelPlugin:
    for plugin in plugins():
        if plugin.name == name:
            return plugin
    raise ModelFileError(f"model plugin {name!r} is not installed")


def match(control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
    """The spec of the first plugin that serves ``control``, else the reason none does."""
    reasons: list[str] = []
    for plugin in plugins():
        if any(s.control == control.tag and s.object == control.object_tag for s in plugin.shapes):
            accepted = plugin.accept(control, controls)
            if isinstance(accepted, ControlSpec):
                return accepted
            reasons.append(accepted)
    if reasons:
        return reasons[0]
    on = control.object_tag or "no single object"
    served = ", ".join(dict.fromkeys(str(s) for p in plugins() for s in p.shapes))
    return f"{control.tag} on {on} is not served (served: {served})"


def pretrained_model(spec: ControlSpec) -> Any:
    """The pretrained model of ``spec``'s plugin, loaded once per process."""
    with _pretrained_lock:
        if spec.plugin not in _pretrained:
            _pretrained[spec.plugin] = plugin_named(spec.plugin).pretrained(spec)
        return _pretrained[spec.plugin]
