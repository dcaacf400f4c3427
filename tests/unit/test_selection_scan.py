"""Chunked pool scoring, the gold store and pre-labels, on sms_spam texts (no server)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ls_companion.errors import InputError
from ls_companion.projectdata import GoldRecord, GoldStore, gold_store_path
from ls_companion.selection.gold import check_answers, read_gold
from ls_companion.selection.prelabel import find_control, prediction, project_controls
from ls_companion.selection.scan import ScanOptions, fetch_rows, image_reference_problem, scan_pool
from ls_companion.selection.scoring import ScoreBatch, SklearnScorer
from ls_companion.sources import content_id, read_rows
from tests.conftest import REPO_ROOT, SHARED_DATASETS

SMS = SHARED_DATASETS / "sms_spam" / "sms_spam.csv"


@pytest.fixture(scope="module")
def sms() -> list[dict[str, str]]:
    return [dict(r) for r in read_rows(SMS)]


@pytest.fixture(scope="module")
def scorer(sms: list[dict[str, str]]) -> SklearnScorer:
    train = sms[3000:4000]
    return SklearnScorer(control="label").fit([r["text"] for r in train], [r["label"] for r in train])


def _write_pool(path: Path, texts: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return path


def test_scan_keeps_unique_scored_rows_and_skips_excluded_ones(
    tmp_path: Path, sms: list[dict[str, str]], scorer: SklearnScorer
) -> None:
    texts = [r["text"] for r in sms[:300]]
    pool_file = _write_pool(tmp_path / "pool.csv", [*texts, texts[0], texts[1]])  # two duplicates at the end
    excluded = {content_id({"text": texts[5]}), content_id({"text": texts[6]})}
    scan = scan_pool(pool_file, scorer, exclude=excluded, options=ScanOptions(chunk_rows=37))

    unique_texts = list(dict.fromkeys(texts))
    expected_ids = [content_id({"text": t}) for t in unique_texts if content_id({"text": t}) not in excluded]
    assert scan.pool.ids.tolist() == expected_ids
    assert (scan.rows_read, scan.excluded) == (302, 2)
    assert scan.duplicates == 300 - len(unique_texts) + 2
    assert scan.model_version == scorer.model_version_
    direct = scorer.score_texts([unique_texts[i] for i in range(3)])
    assert direct is not None
    assert scan.pool.measures["entropy"][:3] == pytest.approx(direct.measures["entropy"])
    # Positions point back at the rows in the file.
    rows = fetch_rows(
        pool_file, {int(scan.positions[9]): str(scan.pool.ids[9])}, id_column=None, chunk_rows=50
    )
    assert content_id(rows[int(scan.positions[9])]) == scan.pool.ids[9]


@dataclass
class SkippingScorer:
    """A scorer that, like the backend with an image it cannot fetch, leaves some items out."""

    inner: SklearnScorer
    unscorable: set[str]

    def score(self, items: Sequence[Mapping[str, Any]]) -> ScoreBatch | None:
        batch = self.inner.score([it for it in items if it["id"] not in self.unscorable])
        skipped = tuple(k for k, it in enumerate(items) if it["id"] in self.unscorable)
        return None if batch is None else replace(batch, skipped=skipped)


def test_rows_the_scorer_cannot_score_are_left_out_and_counted(
    tmp_path: Path, sms: list[dict[str, str]], scorer: SklearnScorer
) -> None:
    texts = list(dict.fromkeys(r["text"] for r in sms[:100]))
    pool_file = _write_pool(tmp_path / "pool.csv", texts)
    ids = [content_id({"text": t}) for t in texts]
    dead = {ids[0], ids[10], ids[11]}
    excluded = {ids[20]}
    for workers in (1, 2):
        options = ScanOptions(chunk_rows=7, workers=workers)
        scan = scan_pool(pool_file, SkippingScorer(scorer, dead), exclude=excluded, options=options)
        assert scan.pool.ids.tolist() == [i for i in ids if i not in dead | excluded]
        assert (scan.rows_read, scan.excluded, scan.unscorable) == (len(texts), 1, 3)
        direct = scorer.score_texts([texts[1], texts[2]])
        assert direct is not None
        assert scan.pool.measures["entropy"][:2] == pytest.approx(direct.measures["entropy"])


def test_candidates_do_not_depend_on_the_chunk_size(
    tmp_path: Path, sms: list[dict[str, str]], scorer: SklearnScorer
) -> None:
    pool_file = _write_pool(tmp_path / "pool.csv", [r["text"] for r in sms[:400]])
    for measure in ("entropy", None):
        kept = []
        for chunk_rows in (13, 1000):
            options = ScanOptions(
                text_column="text",
                keep_candidates=True,
                candidates=40,
                candidate_measure=measure,
                seed=3,
                chunk_rows=chunk_rows,
            )
            scan = scan_pool(pool_file, scorer, options=options)
            assert scan.candidates is not None and scan.candidates.features is not None
            assert scan.candidates.features.shape[0] == len(scan.candidates) <= 40
            kept.append(sorted(scan.candidates.ids.tolist()))
        assert kept[0] == kept[1]
    # With a measure, the candidates are the most uncertain rows of the pool.
    top = np.argsort(-scan.pool.measures["entropy"])[:30]
    ranked = scan_pool(
        pool_file,
        scorer,
        options=ScanOptions(
            text_column="text", keep_candidates=True, candidates=40, candidate_measure="entropy"
        ),
    )
    assert ranked.candidates is not None
    assert set(scan.pool.ids[top].tolist()) <= set(ranked.candidates.ids.tolist())


def test_scan_without_a_model_and_from_parquet_gives_the_same_ids(
    tmp_path: Path, sms: list[dict[str, str]]
) -> None:
    texts = [r["text"] for r in sms[:120]]
    csv_scan = scan_pool(_write_pool(tmp_path / "pool.csv", texts), None)
    parquet_file = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"text": texts}), parquet_file)
    parquet_scan = scan_pool(parquet_file, None, options=ScanOptions(chunk_rows=50))
    assert not csv_scan.pool.has_model and csv_scan.model_version is None
    assert csv_scan.pool.ids.tolist() == parquet_scan.pool.ids.tolist()


def test_id_column_gives_the_source_id(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps({"key": f"k{i}", "text": f"t{i}"}) + "\n" for i in range(5)))
    scan = scan_pool(path, None, options=ScanOptions(id_column="key"))
    assert scan.pool.ids.tolist() == ["k0", "k1", "k2", "k3", "k4"]


def test_clustering_needs_a_text_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--text-column"):
        scan_pool(_write_pool(tmp_path / "p.csv", ["a"]), None, options=ScanOptions(keep_candidates=True))


# -- gold ---------------------------------------------------------------------------------------------


def test_gold_items_hash_their_data_without_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "gold.csv"
    path.write_text('text,answer\nwin a prize now,spam\n"see you at 6, ok?",ham\nwin a prize now,spam\n')
    items = read_gold(path)
    assert [(i.data, i.answer) for i in items] == [
        ({"text": "win a prize now"}, "spam"),
        ({"text": "see you at 6, ok?"}, "ham"),
    ]
    assert items[0].source_id == content_id({"text": "win a prize now"})
    check_answers(items, "label", ["ham", "spam"])
    with pytest.raises(InputError, match="'ham' is not a label"):
        check_answers(items, "label", ["spam", "other"])
    path.write_text("text,answer\nx,spam\nx,ham\n")
    with pytest.raises(InputError, match="another answer"):
        read_gold(path)
    path.write_text("text,answer\nx,a|b\n")
    assert read_gold(path, multiple=True)[0].answer == ["a", "b"]


def test_gold_store_appends_and_survives_a_torn_line(tmp_path: Path) -> None:
    store = GoldStore(gold_store_path(tmp_path, 7))
    assert store.path == tmp_path / "projects" / "7" / "gold.jsonl"
    assert store.load() == {}
    store.append([GoldRecord(1, "s1", "label", "spam"), GoldRecord(2, "s2", "label", "ham")])
    with store.path.open("a") as handle:
        handle.write('{"task_id": 3, "sour')  # a crash in the middle of a write
    assert set(store.load()) == {1, 2}
    store.append([GoldRecord(3, "s3", "label", "ham")])
    assert store.load()[3] == GoldRecord(3, "s3", "label", "ham")
    lines = store.path.read_text().splitlines()
    assert json.loads(lines[0]) == {"task_id": 1, "source_id": "s1", "control": "label", "answer": "spam"}


# -- pre-labels ---------------------------------------------------------------------------------------


def test_controls_and_predictions_from_the_label_configs() -> None:
    configs = REPO_ROOT / "label_configs"
    single = find_control(project_controls((configs / "text_classification.xml").read_text()))
    assert single is not None and (single.name, single.to_name, single.data_key) == ("label", "text", "text")
    assert single.object_tag == "text"
    image = find_control(project_controls((configs / "image_classification.xml").read_text()))
    assert image is not None and image.object_tag == "image"
    pre = prediction(single, ("Business", "World"), np.array([0.2, 0.8]), score=0.8, model_version="v3")
    assert pre == {
        "result": [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["World"]}}
        ],
        "score": 0.8,
        "model_version": "v3",
    }
    assert (
        prediction(single, ("World", "Cooking"), np.array([0.1, 0.9]), score=0.9, model_version="v") is None
    )

    multi = find_control(project_controls((configs / "multilabel_classification.xml").read_text()))
    assert multi is not None and multi.multiple
    pre = prediction(
        multi,
        ("Toxic", "Threat", "Insult"),
        np.array([0.7, 0.1, 0.5]),
        score=0.6,
        model_version="v",
        multi=True,
    )
    assert pre is not None and pre["result"][0]["value"] == {"choices": ["Toxic", "Insult"]}

    ner = find_control(project_controls((configs / "ner.xml").read_text()))
    assert ner is not None and ner.tag == "labels"
    assert prediction(ner, ("Person",), np.array([1.0]), score=1.0, model_version="v") is None
    with pytest.raises(InputError, match="no control named"):
        find_control(project_controls((configs / "ner.xml").read_text()), "nope")


def test_parallel_scoring_gives_the_same_scan(
    tmp_path: Path, sms: list[dict[str, str]], scorer: SklearnScorer
) -> None:
    pool_file = _write_pool(tmp_path / "pool.csv", [r["text"] for r in sms[:900]])
    options = ScanOptions(text_column="text", keep_candidates=True, candidates=50, candidate_measure="margin")
    serial = scan_pool(pool_file, scorer, options=ScanOptions(**{**options.__dict__, "chunk_rows": 100}))
    parallel = scan_pool(
        pool_file, scorer, options=ScanOptions(**{**options.__dict__, "chunk_rows": 100, "workers": 2})
    )
    assert parallel.pool.ids.tolist() == serial.pool.ids.tolist()
    assert parallel.pool.measures["margin"] == pytest.approx(serial.pool.measures["margin"])
    assert parallel.candidates is not None and serial.candidates is not None
    assert parallel.candidates.ids.tolist() == serial.candidates.ids.tolist()


def test_cold_start_candidates_are_kept_only_without_a_model(
    tmp_path: Path, sms: list[dict[str, str]], scorer: SklearnScorer
) -> None:
    pool_file = _write_pool(tmp_path / "pool.csv", [r["text"] for r in sms[:200]])
    options = ScanOptions(
        text_column="text", keep_candidates=True, candidates=30, candidates_only_without_model=True
    )
    assert scan_pool(pool_file, scorer, options=options).candidates is None
    cold = scan_pool(pool_file, None, options=options).candidates
    assert cold is not None and len(cold) == 30


def test_image_pools_name_the_first_reference_the_backend_cannot_fetch(tmp_path: Path) -> None:
    fetchable = ["https://example.org/a.png", "/data/upload/3/b.png", "/data/local-files/?d=imgs/c.png"]
    assert [image_reference_problem(v) for v in fetchable] == [None, None, None]
    storage = image_reference_problem("s3://bucket/d.png")
    assert storage is not None and "storage URI" in storage
    for path in ("imgs/e.png", "/home/me/f.png", "file:///home/me/f.png", r"C:\imgs\g.png"):
        problem = image_reference_problem(path)
        assert problem is not None and "/data/local-files/?d=" in problem

    pool = tmp_path / "images.csv"
    pool.write_text("image\nhttps://example.org/a.png\n/data/upload/3/b.png\nimgs/e.png\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"images.csv: column 'image', row 3: imgs/e.png is a local path"):
        scan_pool(pool, None, options=ScanOptions(text_column="image", images=True, chunk_rows=2))
    # Without images=True the same column is text: nothing is checked.
    assert len(scan_pool(pool, None, options=ScanOptions(text_column="image")).pool) == 3
