"""Scorers: the in-process TF-IDF + logistic regression, and the HTTP client of the backend's ``/score``.

The HTTP tests talk over a real socket to a small server that speaks the documented ``/score``
contract with a real ``SklearnScorer`` behind it (the ML backend package is developed separately).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ls_companion.client import RetryPolicy
from ls_companion.errors import BackendUnavailable
from ls_companion.selection.scan import ScanOptions, scan_pool
from ls_companion.selection.scoring import (
    HttpScorer,
    ScoreBatch,
    SklearnScorer,
    concat_batches,
    parse_score_response,
)
from ls_companion.sources import read_rows
from tests.conftest import SHARED_DATASETS

TRAIN = [dict(r) for r in read_rows(SHARED_DATASETS / "sms_spam" / "sms_spam.csv")][:600]


@pytest.fixture(scope="module")
def model() -> SklearnScorer:
    return SklearnScorer(control="label").fit([r["text"] for r in TRAIN], [r["label"] for r in TRAIN])


def test_sklearn_scorer_scores_items_by_their_text(model: SklearnScorer) -> None:
    items = [
        {"id": "a", "data": {"text": "WINNER!! Claim your free prize, call 09061701461 now"}},
        {"id": "b", "data": {"text": "ok see you at home later"}},
    ]
    batch = model.score(items)
    assert batch is not None
    assert batch.classes == ("ham", "spam") and batch.control == "label" and batch.kind == "single"
    assert batch.proba is not None and batch.proba.shape == (2, 2)
    assert batch.proba[0].argmax() == 1 and batch.proba[1].argmax() == 0
    assert batch.confidence == pytest.approx(batch.proba.max(axis=1), abs=1e-6)
    assert batch.model_version == model.model_version_
    again = SklearnScorer().fit([r["text"] for r in TRAIN], [r["label"] for r in TRAIN])
    assert again.model_version_ == model.model_version_  # same training data, same version


def test_sklearn_scorer_with_one_class_is_no_model() -> None:
    lonely = SklearnScorer().fit(["hello there", "good morning"], ["ham", "ham"])
    assert lonely.score([{"id": "x", "data": {"text": "hello"}}]) is None


def test_multilabel_batches_use_per_label_measures() -> None:
    batch = ScoreBatch.from_proba(np.array([[0.5, 0.5], [1.0, 0.0]]), ("x", "y"), "v", kind="multi")
    assert batch.measures["entropy"] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert batch.confidence == pytest.approx([0.5, 1.0])


# -- the /score contract ------------------------------------------------------------------------------


@dataclass
class Backend:
    model: SklearnScorer
    failures: list[int] = field(default_factory=list)  # statuses to answer before succeeding
    trained: bool = True
    user: str = "ml"
    password: str = "secret"
    calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def answer(self, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls += 1
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"error": "unauthorized"}
        if self.failures:
            return self.failures.pop(0), {"error": "boom"}
        if not self.trained:
            return 409, {"error": "not_trained", "detail": "no model yet"}
        tasks = body["tasks"]
        self.batch_sizes.append(len(tasks))
        batch = self.model.score(tasks)
        assert batch is not None and batch.proba is not None
        items = [
            {
                "id": t["id"],
                "probabilities": batch.proba[i].tolist(),
                "least_confidence": float(batch.measures["least_confidence"][i]),
                "margin": float(batch.measures["margin"][i]),
                "entropy": float(batch.measures["entropy"][i]),
                "score": float(batch.confidence[i]),
            }
            for i, t in enumerate(tasks)
        ]
        return 200, {
            "model_version": "v7",
            "control": "label",
            "kind": "single",
            "classes": list(batch.classes),
            "items": items,
        }


@pytest.fixture
def backend(model: SklearnScorer) -> Iterator[tuple[Backend, str]]:
    state = Backend(model)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            status, payload = state.answer(self.headers, json.loads(self.rfile.read(length)))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ITEMS = [{"id": f"s{i}", "data": {"text": r["text"]}} for i, r in enumerate(TRAIN[:25])]


def _scorer(url: str, **kwargs: Any) -> HttpScorer:
    retry = RetryPolicy(attempts=kwargs.pop("attempts", 5), initial_wait=0.01, max_wait=0.05)
    return HttpScorer(url, 3, auth=("ml", "secret"), batch_size=10, retry=retry, **kwargs)


def test_http_scorer_batches_and_keeps_request_order(
    backend: tuple[Backend, str], model: SklearnScorer
) -> None:
    state, url = backend
    batch = _scorer(url).score(ITEMS)
    assert batch is not None and len(batch) == 25
    assert state.batch_sizes == [10, 10, 5]
    assert (batch.model_version, batch.control, batch.classes) == ("v7", "label", ("ham", "spam"))
    local = model.score(ITEMS)
    assert local is not None
    assert batch.measures["entropy"] == pytest.approx(local.measures["entropy"], abs=1e-6)


def test_http_scorer_retries_5xx_and_429(backend: tuple[Backend, str]) -> None:
    state, url = backend
    state.failures = [503, 429, 502]
    assert _scorer(url).score(ITEMS[:3]) is not None
    assert state.calls == 4
    state.failures = [500] * 10
    with pytest.raises(BackendUnavailable, match="answered HTTP 500"):
        _scorer(url, attempts=3).score(ITEMS[:3])


def test_http_scorer_not_trained_means_no_model(backend: tuple[Backend, str]) -> None:
    state, url = backend
    state.trained = False
    assert _scorer(url).score(ITEMS) is None
    assert state.calls == 1  # the first batch tells; no point asking for the others


def test_http_scorer_wrong_credentials_and_unreachable_backend(backend: tuple[Backend, str]) -> None:
    state, url = backend
    state.password = "other"
    with pytest.raises(BackendUnavailable, match="rejected our credentials"):
        _scorer(url).score(ITEMS[:2])
    with pytest.raises(BackendUnavailable, match="cannot reach the ML backend"):
        _scorer("http://127.0.0.1:9", attempts=2).score(ITEMS[:2])


def test_score_answers_are_checked() -> None:
    good = {
        "model_version": "v",
        "kind": "spans",
        "classes": [],
        "items": [{"id": "a", "least_confidence": 0.1, "margin": 0.2, "entropy": 0.3, "score": 0.9}],
    }
    batch = parse_score_response(good, ["a"])
    assert batch.proba is None and batch.measures["margin"] == pytest.approx([0.2])
    with pytest.raises(BackendUnavailable, match="in order"):
        parse_score_response(good, ["b"])
    with pytest.raises(BackendUnavailable, match="kind"):
        parse_score_response({**good, "kind": "boxes"}, ["a"])
    with pytest.raises(BackendUnavailable, match="lacks a number"):
        parse_score_response({**good, "items": [{"id": "a", "score": 1}]}, ["a"])
    # Items the backend could not score (their image) are listed apart by position; the rows are the
    # others'. A repeated id is told apart by its position.
    skipped = {**good, "skipped": [{"index": 1, "id": "a", "field": "tasks[1].data.image"}]}
    batch = parse_score_response(skipped, ["a", "a"])
    assert (len(batch), batch.skipped, batch.scored(2)) == (1, (1,), [0])
    with pytest.raises(BackendUnavailable, match="in order"):
        parse_score_response(skipped, ["a", "a", "c"])  # c neither answered nor skipped
    with pytest.raises(BackendUnavailable, match="names no task sent"):
        parse_score_response({**good, "skipped": [{"index": 1, "id": "x"}]}, ["a", "b"])
    with pytest.raises(BackendUnavailable, match="names no task sent"):
        parse_score_response({**good, "skipped": [{"index": 5, "id": "a"}]}, ["a"])
    with pytest.raises(BackendUnavailable, match="skipped"):
        parse_score_response({**good, "skipped": ["b"]}, ["a", "b"])
    # Merged batches: positions in all the items sent.
    lost = {**good, "items": [], "skipped": [{"index": 0, "id": "b"}]}
    merged = concat_batches([batch, parse_score_response(lost, ["b"]), batch])
    assert (len(merged), merged.skipped, merged.scored(5)) == (2, (1, 2, 4), [0, 3])


def test_a_pool_scanned_through_the_backend_with_concurrent_requests(
    backend: tuple[Backend, str], model: SklearnScorer, tmp_path: Path
) -> None:
    state, url = backend
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({"key": f"k{i}", "text": r["text"]}) + "\n" for i, r in enumerate(TRAIN[:90]))
    )
    serial = scan_pool(pool, model, options=ScanOptions(id_column="key", chunk_rows=20))
    scorer = _scorer(url)
    try:
        remote = scan_pool(pool, scorer, options=ScanOptions(id_column="key", chunk_rows=20, workers=3))
    finally:
        scorer.close()
    assert remote.pool.ids.tolist() == [f"k{i}" for i in range(90)]
    assert remote.pool.measures["entropy"] == pytest.approx(serial.pool.measures["entropy"], abs=1e-6)
    assert remote.model_version == "v7" and state.calls == 9  # chunks of 20, 20, 20, 20, 10 in batches of 10
