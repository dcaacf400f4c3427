"""The built-in text plugins: the TF-IDF classifier (Choices on Text) and the CRF NER tagger (Labels on Text)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ls_companion.modelselect import SelectedModel
from ls_companion.textclassifier import TextClassifier
from ls_companion.wordvectors import candidates_with
from ml_backend.errors import ConfigurationError
from ml_backend.evaluation import span_metrics
from ml_backend.models.span_tagger import SpanTagger
from ml_backend.models.word_clusters import WordClusters
from ml_backend.plugin import JSON, ControlSpec, ControlView, ModelPlugin, Output, Shape, SpanTuple, Target
from ml_backend.results import ProbabilityPlugin, span_results
from ml_backend.scoring import span_uncertainties
from ml_backend.settings import BackendSettings


def text_reason(control: ControlView) -> str | None:
    """Why a control on Text cannot be served by a text model (None: it can)."""
    if control.object_attrs.get("valuetype", "text") != "text":
        return "Text with valueType other than text (a URL) is not served"
    return None


class TextClassifierPlugin(ProbabilityPlugin):
    name = "text-classifier"
    shapes = (Shape("Choices", "Text"),)

    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        return text_reason(control) or self.choices_spec(control)

    def fit(
        self,
        spec: ControlSpec,
        inputs: Sequence[Any],
        targets: Sequence[Target],
        settings: BackendSettings | None,
    ) -> TextClassifier | SelectedModel:
        """Single choice: the text candidate the project's annotations select, calibrated
        (``ls_companion.modelselect``, bounded by SELECTION_BUDGET_SECONDS), with WORD_VECTORS the
        pooled-vector candidates last; multi-label: TF-IDF + one logistic
        regression per class."""
        if spec.kind == "multi":
            return TextClassifier("multi").fit(inputs, targets)  # type: ignore[arg-type]
        vectors = settings.word_vectors if settings is not None else None
        try:
            candidates = candidates_with(vectors)
        except ValueError as exc:
            raise ConfigurationError(f"WORD_VECTORS: {exc}") from None
        if settings is None:
            return SelectedModel(candidates).fit(inputs, targets)
        return SelectedModel(candidates, budget_seconds=settings.selection_budget_seconds).fit(
            inputs, targets
        )

    def report(self, spec: ControlSpec, model: TextClassifier | SelectedModel) -> dict[str, Any]:
        return {"model": model.selection_.metadata()} if isinstance(model, SelectedModel) else {}


class NerPlugin(ModelPlugin):
    name = "ner"
    shapes = (Shape("Labels", "Text"),)

    def accept(self, control: ControlView, controls: Sequence[ControlView]) -> ControlSpec | str:
        return control.incomplete() or text_reason(control) or control.spec(self.name, "spans")

    def target(self, spec: ControlSpec, items: Sequence[JSON]) -> Target | None:
        allowed = set(spec.classes)
        return tuple(sorted({span for item in items if (span := _span(item, allowed)) is not None}))

    def fit(
        self,
        spec: ControlSpec,
        inputs: Sequence[Any],
        targets: Sequence[Target],
        settings: BackendSettings | None,
    ) -> SpanTagger:
        clusters = _word_clusters(settings.word_clusters) if settings and settings.word_clusters else None
        return SpanTagger(word_clusters=clusters).fit(inputs, targets)  # type: ignore[arg-type]

    def predict(self, spec: ControlSpec, model: SpanTagger, inputs: Sequence[Any]) -> Output:
        tagged = model.predict(inputs)
        return Output(span_results(spec, tagged, inputs), span_uncertainties(tagged))

    def evaluate(
        self, spec: ControlSpec, model: SpanTagger, inputs: Sequence[Any], targets: Sequence[Target]
    ) -> dict[str, float]:
        found = [[(s.start, s.end, s.label) for s in tagged.spans] for tagged in model.predict(inputs)]
        return span_metrics([list(t) for t in targets], found)  # type: ignore[arg-type]

    def report(self, spec: ControlSpec, model: SpanTagger) -> dict[str, Any]:
        if model.word_clusters is None:
            return {}
        return {
            "word_clusters": {"words": len(model.word_clusters), "sizes": list(model.word_clusters.sizes)}
        }


@lru_cache(maxsize=2)
def _word_clusters(path: Path) -> WordClusters:
    """The WORD_CLUSTERS file, read once per process (only span controls need it)."""
    return WordClusters.load(path)


def _span(item: JSON, allowed: set[str]) -> SpanTuple | None:
    value = item.get("value") or {}
    labels = [str(v) for v in value.get("labels") or () if str(v) in allowed]
    start, end = value.get("start"), value.get("end")
    if len(labels) != 1 or not isinstance(start, int) or not isinstance(end, int) or end <= start:
        return None
    return (start, end, labels[0])
