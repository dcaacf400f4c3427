"""A third-party-style model plugin, installed only by putting this folder on PYTHONPATH.

Its ``lsc_rating_plugin-0.1.0.dist-info/entry_points.txt`` registers ``RatingPlugin`` under the group
``ls_companion.models``; the backend finds it with no change to its code. It serves ``Rating`` on
``Text`` and predicts the rating annotators gave most often (with the ratings' frequencies as its
class probabilities): the simplest trainable model, enough to show versions, training and auth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ml_backend.plugin import JSON, ControlSpec, ControlView, ModelPlugin, Output, Shape, Target
from ml_backend.scoring import class_uncertainties
from ml_backend.settings import BackendSettings


class MostFrequentRating:
    def fit(self, targets: Sequence[Target]) -> MostFrequentRating:
        counts = Counter(str(t) for t in targets)
        self.classes_ = tuple(sorted(counts, key=int))
        self.frequencies_ = np.array([counts[c] for c in self.classes_], dtype=np.float64) / len(targets)
        return self


class RatingPlugin(ModelPlugin):
    name = "rating-most-frequent"
    shapes = (Shape("Rating", "Text"),)

    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        stars = int(control.attrs.get("maxrating", "5"))
        return control.spec(self.name, "single", classes=tuple(str(k) for k in range(1, stars + 1)))

    def target(self, spec: ControlSpec, items: Sequence[JSON]) -> Target | None:
        ratings = [str(item.get("value", {}).get("rating")) for item in items]
        return ratings[0] if len(ratings) == 1 and ratings[0] in spec.classes else None

    def fit(
        self,
        spec: ControlSpec,
        inputs: Sequence[Any],
        targets: Sequence[Target],
        settings: BackendSettings | None,
    ) -> MostFrequentRating:
        return MostFrequentRating().fit(targets)

    def predict(self, spec: ControlSpec, model: MostFrequentRating, inputs: Sequence[Any]) -> Output:
        probabilities = np.tile(model.frequencies_, (len(inputs), 1))
        best = model.classes_[int(model.frequencies_.argmax())]
        unc = class_uncertainties(probabilities)
        region = {
            "from_name": spec.name,
            "to_name": spec.to_name,
            "type": "rating",
            "value": {"rating": int(best)},
        }
        return Output([[{**region, "score": float(s)}] for s in unc.score], unc, probabilities)
