"""OCR pre-labels with a pretrained model: one region per text line, with its text and score.

Served for Label Studio's OCR shape: an Image, a ``Rectangle`` or ``RectangleLabels`` control on it, and a
per-region ``TextArea`` on the same Image (label_configs/ocr.xml). ``rapidocr-onnxruntime`` (the ``ocr``
extra) runs PP-OCR detection, orientation and recognition ONNX models shipped inside its wheel, so nothing
is downloaded at run time. Each line becomes a rectangle (the axis-aligned box of the detected
quadrilateral, in percent of the image) and a TextArea item with the same region id; both carry the
line's recognition score, and a task's score is its least certain line's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml_backend.plugin import JSON, ControlSpec, ControlView, ModelPlugin, Output, Shape
from ml_backend.scoring import region_uncertainties


class OcrEngine:
    """RapidOCR over RGB arrays: lines as (quadrilateral points, text, score)."""

    classes_: tuple[str, ...] = ()

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR()

    def lines(self, image: Any) -> list[tuple[list[list[float]], str, float]]:
        found, _ = self._engine(np.ascontiguousarray(image[..., ::-1]))  # RapidOCR expects BGR like OpenCV
        return [(box, str(text), float(score)) for box, text, score in found or ()]


class OcrPlugin(ModelPlugin):
    name = "ocr"
    shapes = (Shape("RectangleLabels", "Image"), Shape("Rectangle", "Image"))
    trainable = False

    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        textareas = [
            c.name
            for c in controls
            if c.tag == "TextArea" and c.to_name == control.to_name and c.attrs.get("perregion") == "true"
        ]
        if not textareas:
            return f"boxes on {control.to_name} without a per-region TextArea need a detector plugin"
        if not control.value_key:
            return f"Image {control.to_name} has no $variable value"
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            return "OCR needs rapidocr-onnxruntime: install ls-companion[ocr]"
        options = {"textarea": textareas[0], "covers": textareas[0]}
        if control.tag == "RectangleLabels":
            if not control.classes:
                return "the control has no labels"
            options["label"] = control.classes[0]
        return control.spec(self.name, "regions", options)

    def pretrained(self, spec: ControlSpec) -> OcrEngine:
        return OcrEngine()

    def predict(self, spec: ControlSpec, model: OcrEngine, inputs: Sequence[Any]) -> Output:
        regions = [line_regions(spec, image, model.lines(image)) for image in inputs]
        scores = [[float(item["score"]) for item in items[::2]] for items in regions]
        return Output(regions, region_uncertainties(scores))


def line_regions(
    spec: ControlSpec, image: Any, lines: Sequence[tuple[Sequence[Sequence[float]], str, float]]
) -> list[JSON]:
    """Per line, a rectangle item and a TextArea item sharing one region id (pure: unit-tested)."""
    height, width = int(image.shape[0]), int(image.shape[1])
    label = spec.option("label")
    textarea = spec.option("textarea")
    items: list[JSON] = []
    for n, (points, text, score) in enumerate(lines):
        xs = np.clip([p[0] for p in points], 0, width)
        ys = np.clip([p[1] for p in points], 0, height)
        box = {
            "x": round(100.0 * float(xs.min()) / width, 4),
            "y": round(100.0 * float(ys.min()) / height, 4),
            "width": round(100.0 * float(xs.max() - xs.min()) / width, 4),
            "height": round(100.0 * float(ys.max() - ys.min()) / height, 4),
            "rotation": 0,
        }
        common = {
            "id": f"{spec.name}-{n}",
            "to_name": spec.to_name,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "score": round(score, 6),
        }
        shape = {**box, "rectanglelabels": [label]} if label else box
        items.append({**common, "from_name": spec.name, "type": spec.tag.lower(), "value": shape})
        items.append({**common, "from_name": textarea, "type": "textarea", "value": {**box, "text": [text]}})
    return items
