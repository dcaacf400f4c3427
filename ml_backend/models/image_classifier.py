"""Image classification learned from the project (Choices on Image): pixel features + a linear model.

Features are HOG (shape, from the grey image) and per-channel colour histograms, computed on the image
resized to a square (scikit-image; the ``images`` extra), or, when IMAGE_EMBEDDING_MODEL names an ONNX
model, that model's embedding. A standardised logistic regression on log-loss gives probabilities usable
as confidences, with the same uncertainty measures as the text classifier. A single-choice control picks
its regularisation by cross-validation and is calibrated by the shared ``ls_companion.modelselect``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ls_companion.modelselect import Candidate, Selection, select_model
from ml_backend.plugin import ControlSpec, ControlView, Shape, Target
from ml_backend.results import ProbabilityPlugin
from ml_backend.settings import BackendSettings

FloatArray = NDArray[np.float64]
ImageArray = NDArray[np.uint8]

#: Side of the square every image is resized to before HOG (pixels).
SIDE = 64
HISTOGRAM_BINS = 8


class ImageFeatures:
    """HOG + colour histograms of RGB images, or the embedding of a user's ONNX model."""

    def __init__(self, embedding_model: Path | None = None) -> None:
        self.embedding_model = embedding_model
        self._session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"embedding_model": self.embedding_model, "_session": None}  # sessions do not pickle

    def transform(self, images: Sequence[ImageArray]) -> FloatArray:
        if self.embedding_model is not None:
            return np.vstack([self._embed(image) for image in images])
        return np.vstack([hog_and_colour(image) for image in images])

    def _embed(self, image: ImageArray) -> FloatArray:
        import onnxruntime  # the `ocr` extra ships it

        if self._session is None:
            self._session = onnxruntime.InferenceSession(str(self.embedding_model))
        first = self._session.get_inputs()[0]
        side = next((int(d) for d in first.shape[2:] if isinstance(d, int)), 224)
        pixels = _resize(image, side).astype(np.float32)
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet's
        batch = ((pixels - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        out = self._session.run(None, {first.name: batch})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)


def hog_and_colour(image: ImageArray) -> FloatArray:
    from skimage.color import rgb2gray
    from skimage.feature import hog

    square = _resize(image, SIDE)
    shape = hog(rgb2gray(square), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    colour = [np.histogram(square[..., c], bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0] for c in range(3)]
    histogram = np.concatenate(colour).astype(np.float64) / (SIDE * SIDE)
    return np.concatenate([shape, histogram])


def _resize(image: ImageArray, side: int) -> FloatArray:
    """RGB in [0, 1], resized (anti-aliased) to side x side."""
    from skimage.transform import resize

    resized: FloatArray = resize(image, (side, side), anti_aliasing=True)  # type: ignore[no-untyped-call]
    return resized


def image_candidates() -> tuple[Candidate, ...]:
    """Standardised logistic regressions over the image features, the default (C = 1) first."""
    grid = (("logreg-C1", 1.0, None), ("logreg-C0.1", 0.1, None), ("logreg-balanced-C1", 1.0, "balanced"))
    return tuple(Candidate(name, functools.partial(_linear, c, w)) for name, c, w in grid)


def _linear(C: float, class_weight: str | None = None) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight=class_weight, max_iter=3000))


class ImageClassifier:
    """Single-choice or multi-label classifier of RGB images; an untrained one predicts nothing."""

    def __init__(
        self, kind: Literal["single", "multi"] = "single", *, embedding_model: Path | None = None
    ) -> None:
        self.kind = kind
        self.embedding_model = embedding_model

    def fit(self, images: Sequence[ImageArray], labels: Sequence[Any]) -> ImageClassifier:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.features_ = ImageFeatures(self.embedding_model)
        matrix = self.features_.transform(images)
        self.heads_: list[Pipeline | float] = []
        self.selection_: Selection | None = None
        if self.kind == "single":
            self.selection_ = select_model(image_candidates(), matrix, labels)
            self.classes_ = self.selection_.classes
            return self
        self.classes_ = tuple(sorted({str(v) for row in labels for v in row}))
        if not self.classes_:
            raise ValueError("a multi-label classifier needs at least one labeled example")
        for name in self.classes_:  # one yes/no model per class; a class always (never) present: 1 (0)
            target = np.array([name in {str(v) for v in row} for row in labels])
            constant = target.min() == target.max()
            self.heads_.append(float(target[0]) if constant else _linear(1.0).fit(matrix, target))
        return self

    def predict_proba(self, images: Sequence[ImageArray]) -> FloatArray:
        """(n, classes): a calibrated distribution per row (single) or one probability per class (multi)."""
        if not hasattr(self, "classes_"):
            raise ValueError("the classifier is not trained")
        matrix = self.features_.transform(images)
        if self.selection_ is not None:
            return self.selection_.predict_proba(matrix)
        columns = [
            np.full(len(matrix), head) if isinstance(head, float) else head.predict_proba(matrix)[:, 1]
            for head in self.heads_
        ]
        return np.column_stack(columns).astype(np.float64)


class ImageClassifierPlugin(ProbabilityPlugin):
    name = "image-classifier"
    shapes = (Shape("Choices", "Image"),)

    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        try:
            import skimage  # noqa: F401
        except ImportError:
            return "image classification needs scikit-image: install ls-companion[images]"
        return self.choices_spec(control)

    def fit(
        self,
        spec: ControlSpec,
        inputs: Sequence[Any],
        targets: Sequence[Target],
        settings: BackendSettings | None,
    ) -> ImageClassifier:
        embedding = settings.image_embedding_model if settings else None
        kind: Literal["single", "multi"] = "multi" if spec.kind == "multi" else "single"
        return ImageClassifier(kind, embedding_model=embedding).fit(inputs, targets)

    def report(self, spec: ControlSpec, model: ImageClassifier) -> dict[str, Any]:
        return {"model": model.selection_.metadata()} if model.selection_ is not None else {}
