"""Scoring pool items with "the current model": the ``Scorer`` protocol and its two implementations.

``HttpScorer`` calls the ML backend's ``POST /score`` (contract in docs/active-learning.md), and its
``POST /predict`` for ``prelabel``;
``SklearnScorer`` trains on labeled texts in process (``select`` without a backend, tests): the model
the backend would serve, selected by cross-validation and calibrated (``ls_companion.modelselect``).
A scorer answers ``None`` when there is no trained model: the caller cold-starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, cast

import httpx
import numpy as np
from numpy.typing import NDArray

from ls_companion.client import RetryPolicy
from ls_companion.errors import BackendUnavailable
from ls_companion.modelselect import SelectedModel
from ls_companion.selection.pool import MEASURES, FloatArray, Kind
from ls_companion.textclassifier import text_candidates
from ls_companion.uncertainty import class_measures, multilabel_measures

log = logging.getLogger(__name__)
Item = Mapping[str, Any]  # {"id": str, "data": {...}}, as sent to /score
_KINDS = ("single", "multi", "spans")


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of items, in the order they were sent: the three measures, confidence, probabilities.

    ``skipped``: positions (in the items sent) of those the backend could not score (an image it could
    not fetch or decode); the rows are those of the other items, in order."""

    model_version: str
    kind: Kind
    classes: tuple[str, ...]
    measures: dict[str, FloatArray]
    confidence: FloatArray
    proba: NDArray[np.floating[Any]] | None = None
    control: str | None = None
    skipped: tuple[int, ...] = ()

    def scored(self, n: int) -> list[int]:
        """Of ``n`` items sent, the positions of those that have a row, in row order."""
        left_out = set(self.skipped)
        return [k for k in range(n) if k not in left_out]

    def __len__(self) -> int:
        return int(self.confidence.shape[0])

    @classmethod
    def from_proba(
        cls,
        proba: NDArray[np.floating[Any]],
        classes: Sequence[str],
        model_version: str,
        *,
        kind: Kind = "single",
        control: str | None = None,
    ) -> ScoreBatch:
        """Scores computed from probabilities (class distribution, or independent per-label for multi)."""
        matrix = np.asarray(proba, dtype=np.float64)
        measures = multilabel_measures(matrix) if kind == "multi" else class_measures(matrix)
        return cls(
            model_version=model_version,
            kind=kind,
            classes=tuple(classes),
            measures=measures,
            confidence=1.0 - measures["least_confidence"],
            proba=matrix.astype(np.float32),
            control=control,
        )


class Scorer(Protocol):
    """Anything that scores items; ``None`` means no trained model yet."""

    def score(self, items: Sequence[Item]) -> ScoreBatch | None: ...


# -- in process ---------------------------------------------------------------------------------------


class SklearnScorer:
    """The ML backend's text model trained in process; scores items by ``data[text_key]``.

    ``fit`` selects and calibrates a candidate on the texts (``SelectedModel`` over
    ``text_candidates``, as the backend's training does). Fewer than two classes: no model.
    """

    def __init__(self, *, text_key: str = "text", control: str | None = None) -> None:
        self.text_key = text_key
        self.control = control

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Self:
        labels = [str(x) for x in labels]
        self.model_: SelectedModel | None = None
        if len(set(labels)) < 2:
            return self
        self.model_ = SelectedModel(text_candidates()).fit(list(texts), labels)
        self.classes_ = tuple(self.model_.classes_)
        digest = hashlib.sha1(json.dumps([list(texts), labels]).encode())
        self.model_version_ = f"sklearn-{digest.hexdigest()[:10]}"
        return self

    def score(self, items: Sequence[Item]) -> ScoreBatch | None:
        texts = [str((item.get("data") or {}).get(self.text_key) or "") for item in items]
        return self.score_texts(texts)

    def score_texts(self, texts: Sequence[str]) -> ScoreBatch | None:
        model = getattr(self, "model_", None)
        if model is None:
            return None
        proba = model.predict_proba(list(texts))
        return ScoreBatch.from_proba(proba, self.classes_, self.model_version_, control=self.control)


# -- over HTTP ----------------------------------------------------------------------------------------


class HttpScorer:
    """The ML backend's ``POST /score``, in batches, with retries on connection errors, 429 and 5xx."""

    def __init__(
        self,
        url: str,
        project: int,
        *,
        auth: tuple[str, str] | None = None,
        control: str | None = None,
        batch_size: int = 1000,
        timeout: float = 100.0,
        connect_timeout: float = 3.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self.control = control
        self.batch_size = batch_size
        self._retry = retry or RetryPolicy()
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout), auth=auth)

    def close(self) -> None:
        self._http.close()

    def score(self, items: Sequence[Item]) -> ScoreBatch | None:
        batches: list[ScoreBatch] = []
        for start in range(0, len(items), self.batch_size):
            batch = self._score_batch(items[start : start + self.batch_size])
            if batch is None:
                return None
            batches.append(batch)
        return concat_batches(batches) if batches else None

    def _score_batch(self, items: Sequence[Item]) -> ScoreBatch | None:
        payload: dict[str, Any] = {
            "project": self.project,
            "tasks": [{"id": it["id"], "data": it.get("data", {})} for it in items],
        }
        if self.control is not None:  # which control to score, when the config has several
            payload["control"] = self.control
        body = self._send("/score", payload)
        return None if body is None else parse_score_response(body, [str(it["id"]) for it in items])

    def predict(self, tasks: Sequence[Item], label_config: str) -> list[Any] | None:
        """The backend's ``POST /predict`` (Label Studio's protocol): one prediction per task, in order
        (an empty one where the model has none); None when it has no trained model."""
        payload = {
            "project": str(self.project),
            "label_config": label_config,
            "tasks": [{"id": t["id"], "data": t.get("data", {})} for t in tasks],
        }
        body = self._send("/predict", payload)
        results = body.get("results") if isinstance(body, Mapping) else None
        return list(results) if isinstance(results, list) else None

    def out_of_fold(self, known_version: str | None = None) -> dict[str, Any] | None:
        """The backend's ``GET /oof``: the latest version's stored out-of-fold probabilities per control
        (``{"model_version", "controls": {name: {"task_ids", "classes", "proba"}}}``; no controls before
        training). With ``known_version`` (the ``model_version`` of an answer the caller kept) it asks
        with ``If-None-Match`` and returns None while that is still the latest version (one bodiless 304)."""
        body = self._send("/oof", None, etag=known_version)
        if body is None and known_version is not None:
            return None
        if not isinstance(body, Mapping) or not isinstance(body.get("controls"), Mapping):
            raise BackendUnavailable("the ML backend's /oof answer is not valid", detail=str(body)[:300])
        return dict(body)

    def _send(self, path: str, payload: Mapping[str, Any] | None, *, etag: str | None = None) -> Any:
        """POST ``payload`` (GET with the project when None, ``If-None-Match: etag`` when given) with
        retries on connection errors, 429 and 5xx; the JSON answer, None for "not trained" and for 304."""

        def request() -> httpx.Response:
            if payload is None:
                headers = {"If-None-Match": f'"{etag}"'} if etag is not None else None
                return self._http.get(f"{self.url}{path}", params={"project": self.project}, headers=headers)
            return self._http.post(f"{self.url}{path}", json=payload)

        try:
            response = self._retry.send(f"ML backend {path}", request)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"cannot reach the ML backend at {self.url} ({type(exc).__name__})"
            ) from None
        if response.status_code == 304 or (
            response.status_code == 409 and _error_code(response) == "not_trained"
        ):
            return None
        if response.status_code in (401, 403):
            raise BackendUnavailable(
                f"ML backend at {self.url} rejected our credentials (HTTP {response.status_code}); "
                "check ML_BACKEND_BASIC_AUTH_USER / ML_BACKEND_BASIC_AUTH_PASS"
            )
        if response.status_code >= 400:
            raise BackendUnavailable(
                f"ML backend at {self.url} answered HTTP {response.status_code} to {path}",
                detail=response.text[:300],
            )
        return response.json()


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, Mapping) else None


def _invalid(reason: str) -> BackendUnavailable:
    return BackendUnavailable("the ML backend's /score answer is not valid", detail=reason)


def parse_score_response(body: Any, ids: Sequence[str]) -> ScoreBatch:
    """A ``/score`` answer as a ``ScoreBatch``, checked against the ids sent (same order)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        raise _invalid("expected an object with an 'items' list")
    kind = body.get("kind")
    if kind not in _KINDS:
        raise _invalid(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    classes = tuple(str(c) for c in body.get("classes") or ())
    rows = body["items"]
    skipped = _skipped_positions(body.get("skipped") or [], ids)
    left_out = set(skipped)
    answered = [str(r.get("id")) if isinstance(r, Mapping) else None for r in rows]
    if answered != [i for k, i in enumerate(ids) if k not in left_out]:
        raise _invalid(f"items and skipped must answer the {len(ids)} tasks sent, in order")
    if skipped:
        shown = [ids[k] for k in skipped[:5]]
        log.warning("the ML backend could not score %d item(s) (see its log), e.g. %s", len(skipped), shown)
    try:
        measures = {m: np.array([float(r[m]) for r in rows], dtype=np.float64) for m in MEASURES}
        confidence = np.array([float(r["score"]) for r in rows], dtype=np.float64)
        proba = None
        if kind != "spans":
            proba = np.array([r["probabilities"] for r in rows], dtype=np.float32).reshape(
                len(rows), len(classes)
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid(f"an item lacks a number ({exc})") from None
    return ScoreBatch(
        model_version=str(body.get("model_version") or ""),
        kind=cast(Kind, kind),
        classes=classes,
        measures=measures,
        confidence=confidence,
        proba=proba,
        control=str(body["control"]) if body.get("control") else None,
        skipped=skipped,
    )


def _skipped_positions(rows: Any, ids: Sequence[str]) -> tuple[int, ...]:
    """The positions ``/score`` lists under ``skipped``, each naming the id sent there."""
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise _invalid("'skipped' must be a list of objects")
    positions = []
    for r in rows:
        k = r.get("index")
        if not isinstance(k, int) or not 0 <= k < len(ids) or str(r.get("id")) != ids[k]:
            raise _invalid(f"'skipped' names no task sent: {dict(r)}")
        positions.append(k)
    return tuple(sorted(set(positions)))


def concat_batches(batches: Sequence[ScoreBatch]) -> ScoreBatch:
    """One batch from several of the same model (the last model version wins if it changed between them)."""
    first, last = batches[0], batches[-1]
    if len(batches) == 1:
        return first
    probas = [b.proba for b in batches]
    return ScoreBatch(
        model_version=last.model_version,
        kind=first.kind,
        classes=first.classes,
        measures={m: np.concatenate([b.measures[m] for b in batches]) for m in first.measures},
        confidence=np.concatenate([b.confidence for b in batches]),
        proba=None if any(p is None for p in probas) else np.concatenate(cast(list[Any], probas)),
        control=first.control,
        skipped=_shifted([b.skipped for b in batches], [len(b) + len(b.skipped) for b in batches]),
    )


def _shifted(positions: Sequence[tuple[int, ...]], sizes: Sequence[int]) -> tuple[int, ...]:
    """Positions within consecutive batches of ``sizes`` items as positions in all of them."""
    offsets = np.cumsum([0, *sizes[:-1]])
    return tuple(int(k + offset) for ks, offset in zip(positions, offsets, strict=True) for k in ks)
