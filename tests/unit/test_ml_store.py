"""Versioned model persistence: atomic publication, retention, freshness, and what is never loaded."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import pytest

from ls_companion.textclassifier import TextClassifier
from ml_backend.errors import ModelFileError
from ml_backend.labelconfig import ControlSpec
from ml_backend.models.bundle import ModelBundle, TrainedControl
from ml_backend.service import load_scorer, score_items
from ml_backend.store import ModelStore, is_version

SPEC = ControlSpec("label", "Choices", "single", "text", "text", ("ham", "spam"))


def bundle(flip: bool = False) -> ModelBundle:
    labels = ["spam", "ham"] if not flip else ["ham", "spam"]
    model = TextClassifier("single").fit(["win cash", "see you"] * 3, labels * 3)
    return ModelBundle({"label": TrainedControl(SPEC, model)})


#: Out-of-fold probabilities as the training job stores them (``training.out_of_fold``).
OOF = {"label": {"task_ids": [4, 9], "classes": ["ham", "spam"], "proba": [[0.9, 0.1], [0.2, 0.8]]}}


def publish(store: ModelStore, project: int = 1, flip: bool = False) -> str:
    with store.lock(project):
        version: str = store.publish(project, bundle(flip), {"note": "test"}, oof=OOF)["version"]
    return version


def test_versions_sort_by_time_and_old_ones_are_pruned(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, keep_versions=2)
    versions = [publish(store) for _ in range(4)]
    assert versions == sorted(versions) and len(set(versions)) == 4 and all(map(is_version, versions))
    assert store.version_names(1) == versions[:1:-1]  # newest first, two kept
    assert store.latest_version(1) == versions[-1]
    info = store.metadata(1, versions[-1])
    assert info["note"] == "test" and info["project_id"] == 1 and len(info["sha256"]) == 64
    assert not [p for p in (tmp_path / "1").iterdir() if p.name.endswith(".tmp")]
    # the out-of-fold probabilities live beside each version (not in its metadata) and are pruned with it
    assert store.out_of_fold(1, versions[-1]) == OOF and "oof" not in info
    assert sorted(p.name for p in (tmp_path / "1").glob("*.oof.json")) == [
        f"{v}.oof.json" for v in versions[2:]
    ]
    assert store.out_of_fold(1, versions[0]) == {}


def test_a_new_publication_is_served_by_the_next_request(tmp_path: Path) -> None:
    writer, reader = ModelStore(tmp_path), ModelStore(tmp_path)  # two processes sharing MODEL_DIR
    assert reader.current(1) is None
    first = publish(writer)
    loaded = reader.current(1)
    assert loaded is not None and loaded.version == first
    assert reader.current(1) is loaded  # unchanged pointer: no reload
    second = publish(writer, flip=True)
    assert reader.current(1).version == second  # type: ignore[union-attr]


def test_tampered_or_foreign_files_are_never_unpickled(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    good = publish(store)
    time.sleep(0.001)
    bad = publish(store)
    model_file = tmp_path / "1" / f"{bad}.model"
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="checksum"):
        store.load(1, bad)
    assert ModelStore(tmp_path).current(1).version == good  # type: ignore[union-attr]
    for name in ("../../etc/passwd", "latest", "20260101T000000.000000Z/../x"):
        with pytest.raises(ModelFileError, match="invalid model version"):
            store.load(1, name)
    outside = tmp_path.parent / f"outside-{os.getpid()}.model"
    outside.write_bytes(b"not ours")
    link_version = "20990101T000000.000000Z"
    (tmp_path / "1" / f"{link_version}.model").symlink_to(outside)
    (tmp_path / "1" / f"{link_version}.json").write_text(json.dumps({"sha256": "x"}))
    with pytest.raises(ModelFileError, match="outside MODEL_DIR"):
        store.load(1, link_version)


def test_a_version_saved_by_another_release_is_skipped_not_a_500(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    good = publish(store)
    time.sleep(0.001)
    old = publish(store)
    # the pickle of a release whose model class lived in a module that no longer exists
    blob = pickle.dumps(bundle()).replace(b"ls_companion.textclassifier", b"ml_backend.models.text_clfx")
    (tmp_path / "1" / f"{old}.model").write_bytes(blob)
    meta = tmp_path / "1" / f"{old}.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(ModelFileError, match=r"saved by another release.*retrain"):
        store.load(1, old)
    assert ModelStore(tmp_path).current(1).version == good  # type: ignore[union-attr]


def test_in_process_scoring_matches_the_score_contract(tmp_path: Path) -> None:
    version = publish(ModelStore(tmp_path), project=7)
    result = score_items(
        tmp_path, 7, [{"id": "a", "data": {"text": "win cash"}}, {"id": 2, "data": {"text": "x"}}]
    )
    body = result.as_json()
    assert body["model_version"] == version and body["control"] == "label" and body["kind"] == "single"
    assert body["classes"] == ["ham", "spam"] and [i["id"] for i in body["items"]] == ["a", 2]
    first = body["items"][0]
    assert first["probabilities"][1] > 0.5 and first["score"] == max(first["probabilities"])
    assert first["least_confidence"] == pytest.approx(1 - first["score"])
    scorer = load_scorer(tmp_path, 7)
    many = scorer.score_texts(["win cash"] * 1000)
    assert many.score.shape == (1000,) and many.probabilities is not None
