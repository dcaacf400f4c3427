"""The plugin interface: discovery by entry point, shapes and reasons, OCR regions, the image classifier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.label_interface.interface import LabelInterface
from numpy.typing import NDArray

from ml_backend import registry
from ml_backend.labelconfig import parse_label_config
from ml_backend.media import decode_image
from ml_backend.models.image_classifier import ImageClassifier
from ml_backend.models.ocr import line_regions
from ml_backend.scoring import region_uncertainties
from tests.harness.images import digit_labels, digit_png

PLUGIN_PACKAGE = Path(__file__).resolve().parents[1] / "plugin_package"
CONFIGS = Path(__file__).resolve().parents[2] / "label_configs"


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(PLUGIN_PACKAGE))
    registry.plugins.cache_clear()
    yield
    registry.plugins.cache_clear()


def test_an_entry_point_plugin_serves_a_shape_no_builtin_does(third_party: None) -> None:
    names = [p.name for p in registry.plugins()]
    assert names == ["rating-most-frequent", "text-classifier", "ner", "image-classifier", "ocr"]
    parsed = parse_label_config(
        '<View><Text name="t" value="$review"/><Rating name="stars" toName="t" maxRating="3"/></View>'
    )
    [spec] = parsed.controls
    assert (spec.plugin, spec.kind, spec.classes, spec.value_key) == (
        "rating-most-frequent",
        "single",
        ("1", "2", "3"),
        "review",
    )


def test_without_the_plugin_the_same_shape_says_why() -> None:
    parsed = parse_label_config(
        '<View><Text name="t" value="$text"/><Rating name="stars" toName="t" maxRating="4"/></View>'
    )
    assert parsed.controls == ()
    [reason] = [u.reason for u in parsed.unsupported]
    assert reason.startswith(
        "Rating on Text is not served (served: Choices on Text, Labels on Text, Choices on Image"
    )


def test_ocr_regions_pair_a_box_and_its_text() -> None:
    [spec] = parse_label_config((CONFIGS / "ocr.xml").read_text()).controls
    image = np.zeros((200, 400, 3), dtype=np.uint8)
    lines = [
        ([[40.0, 20.0], [240.0, 22.0], [240.0, 50.0], [40.0, 48.0]], "Total 42", 0.9),
        ([[0.0, 100.0], [500.0, 100.0], [500.0, 140.0], [0.0, 140.0]], "wide", 0.6),
    ]
    items = line_regions(spec, image, lines)
    assert [(i["id"], i["type"], i["from_name"]) for i in items] == [
        ("bbox-0", "rectanglelabels", "bbox"),
        ("bbox-0", "textarea", "transcription"),
        ("bbox-1", "rectanglelabels", "bbox"),
        ("bbox-1", "textarea", "transcription"),
    ]
    assert items[0]["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 50.0,
        "height": 15.0,
        "rotation": 0,
        "rectanglelabels": ["Text"],
    }
    assert (
        items[1]["value"]["text"] == ["Total 42"] and items[3]["value"]["width"] == 100.0
    )  # clipped to the image
    assert items[0]["original_width"] == 400 and items[0]["original_height"] == 200
    assert LabelInterface((CONFIGS / "ocr.xml").read_text()).validate_prediction(
        {"result": items, "score": 0.6}
    )  # type: ignore[no-untyped-call]
    unc = region_uncertainties([[0.9, 0.6], [], [1.0]])
    np.testing.assert_allclose(unc.score, [0.6, 1.0, 1.0])  # the least certain line decides; no line: certain


def test_image_classifier_learns_digits_and_follows_sklearn_conventions() -> None:
    labels = digit_labels()
    picked = [int(i) for d in (0, 1, 7) for i in np.flatnonzero(labels == d)[:25]]
    images = [
        decode_image(
            digit_png(int(labels[i]), int(np.flatnonzero(np.flatnonzero(labels == labels[i]) == i)[0]))
        )
        for i in picked
    ]
    names = [str(labels[i]) for i in picked]
    model = ImageClassifier("single")
    with pytest.raises(ValueError, match="not trained"):
        model.predict_proba(images[:1])
    train = [k for k in range(len(picked)) if k % 25 < 15]
    test = [k for k in range(len(picked)) if k % 25 >= 15]
    assert model.fit([images[k] for k in train], [names[k] for k in train]) is model
    assert model.classes_ == ("0", "1", "7")
    proba = model.predict_proba([images[k] for k in test])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    accuracy = np.mean(
        [model.classes_[j] == names[k] for j, k in zip(proba.argmax(axis=1), test, strict=True)]
    )
    assert accuracy >= 0.9
    multi = ImageClassifier("multi").fit(images[:30], [("round",) if n == "0" else () for n in names[:30]])
    assert multi.classes_ == ("round",) and multi.predict_proba(images[:1]).shape == (1, 1)


def test_a_user_onnx_embedding_replaces_hog_and_survives_pickling(tmp_path: Path) -> None:
    import pickle

    import onnx
    from onnx import TensorProto, helper

    # The smallest embedding model: the mean of each (normalised) colour channel.
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["vector"]),
        ],
        "channel-means",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "embed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    rng = np.random.default_rng(0)

    def tinted(channel: int) -> NDArray[np.uint8]:
        image = rng.integers(0, 120, size=(20, 24, 3)).astype(np.uint8)
        image[..., channel] += 120
        return image

    images = [tinted(k % 2 * 2) for k in range(24)]  # red, blue, red, ...
    names = ["red" if k % 2 == 0 else "blue" for k in range(24)]
    model = ImageClassifier("single", embedding_model=path).fit(images[:16], names[:16])
    assert model.features_.transform(images[:2]).shape == (2, 3)
    restored = pickle.loads(pickle.dumps(model))  # the ONNX session is rebuilt from the path
    proba = restored.predict_proba(images[16:])
    assert [restored.classes_[j] for j in proba.argmax(axis=1)] == names[16:]


def test_setup_reports_a_pretrained_control_without_loading_its_model(tmp_path: Path) -> None:
    from tests.unit.test_ml_app import make_client

    client, _ = make_client(tmp_path)
    setup = client.post("/setup", json={"project": "3.17", "schema": (CONFIGS / "ocr.xml").read_text()})
    assert setup.json is not None and setup.json["model_version"] == "pretrained"
    [bbox] = setup.json["controls"]
    assert (bbox["name"], bbox["plugin"], bbox["trained"]) == ("bbox", "ocr", True)
    assert setup.json["unsupported"] == []
    assert "ocr" not in registry._pretrained  # LS gives /setup 3 s: the OCR models load on the first /predict
