"""Pre-labels in Label Studio's prediction format, built from the project's label config.

Only what the pool scores carry can become a pre-label: the top class (``Choices``, single) or the
classes at probability >= 0.5 (``Choices``, multiple). Span scores (NER) hold no spans, so no
pre-label is built for them here; the ML backend's ``/predict`` serves those inside Label Studio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ls_companion.errors import InputError

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ControlInfo:
    """A control tag of the label config and the data key of the object it labels."""

    name: str
    tag: str  # lower case: "choices", "labels", "textarea", ...
    to_name: str
    labels: tuple[str, ...]
    multiple: bool
    data_key: str | None
    object_tag: str = ""  # lower case tag of the object it labels: "text", "image", ...


def project_controls(label_config: str) -> list[ControlInfo]:
    # Imported here: the SDK's label interface takes ~0.6 s to import.
    from label_studio_sdk.label_interface.interface import LabelInterface

    try:
        interface = LabelInterface(label_config)
    except Exception as exc:  # the SDK raises several types for a config it cannot parse
        raise InputError(f"cannot read the project's label config ({exc})") from None
    data_keys = {obj.name: getattr(obj, "value_name", None) for obj in interface.objects}
    object_tags = {obj.name: str(obj.tag).lower() for obj in interface.objects}
    controls = []
    for control in interface.controls:
        to_name = control.to_name[0] if control.to_name else ""
        controls.append(
            ControlInfo(
                name=control.name,
                tag=control.tag.lower(),
                to_name=to_name,
                labels=tuple(str(x) for x in (getattr(control, "labels", None) or ())),
                multiple=str(control.attr.get("choice", "")).lower() == "multiple",
                data_key=data_keys.get(to_name) or None,
                object_tag=object_tags.get(to_name, ""),
            )
        )
    return controls


def find_control(controls: list[ControlInfo], name: str | None = None) -> ControlInfo | None:
    """The control called ``name``, else the first Choices or Labels control, else None."""
    if name is not None:
        for control in controls:
            if control.name == name:
                return control
        raise InputError(f"the label config has no control named {name!r}")
    return next((c for c in controls if c.tag in ("choices", "labels")), None)


def prediction(
    control: ControlInfo,
    classes: tuple[str, ...],
    proba: NDArray[np.floating[Any]] | None,
    *,
    score: float,
    model_version: str,
    multi: bool = False,
) -> JSON | None:
    """A Label Studio prediction for one item, or None when the scores cannot make one."""
    if control.tag != "choices" or proba is None or not classes:
        return None
    if multi:
        chosen = [c for c, p in zip(classes, proba, strict=True) if float(p) >= 0.5]
    else:
        chosen = [classes[int(np.argmax(proba))]]
    if control.labels and any(c not in control.labels for c in chosen):
        return None  # the model knows a class the config does not: no pre-label rather than a wrong one
    result = []
    if chosen:
        result = [
            {
                "from_name": control.name,
                "to_name": control.to_name,
                "type": "choices",
                "value": {"choices": chosen},
            }
        ]
    return {"result": result, "score": round(float(score), 6), "model_version": model_version}
