"""Word clusters from pretrained vectors: reading vector files, clustering, the tagger's use of them."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ml_backend.cli import main as ml_backend_main
from ml_backend.errors import ConfigurationError
from ml_backend.models.span_tagger import SpanTagger, sentence_features
from ml_backend.models.tokens import tokenize
from ml_backend.models.word_clusters import WordClusters, build_clusters, read_vectors
from ml_backend.settings import load_backend_settings

# Word groups that sit apart in vector space; words of one group sit close together.
GROUPS = {
    "names": ["alice", "bob", "carol", "dave", "erin", "frank"],
    "food": ["pizza", "soup", "bread", "rice", "cake", "pasta"],
    "verbs": ["like", "love", "hate", "want"],
    "pronouns": ["i", "we", "they", "you"],
    "time": ["today", "now", "again", "too"],
}
SIZES = (2, 3, 5)  # at 5 clusters, one per group


def _vectors(seed: int = 0) -> dict[str, NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    vectors = {}
    for axis, words in enumerate(GROUPS.values()):
        for word in words:
            vector = rng.normal(0.0, 0.05, 8)
            vector[axis] += 1.0
            vectors[word] = vector
    return vectors


def _write_glove(path: Path, header: bool = False) -> None:
    lines = [
        f"{w.title() if w == 'alice' else w} " + " ".join(f"{x:.5f}" for x in v)
        for w, v in _vectors().items()
    ]
    if header:
        lines.insert(0, f"{len(lines)} 8")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _clusters() -> WordClusters:
    vectors = _vectors()
    return build_clusters(list(vectors), np.array(list(vectors.values()), dtype=np.float32), SIZES)


def test_read_vectors_takes_glove_word2vec_and_gzip(tmp_path: Path) -> None:
    glove, word2vec = tmp_path / "v.txt", tmp_path / "v.vec"
    _write_glove(glove)
    _write_glove(word2vec, header=True)
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress(glove.read_bytes()))
    words, matrix = read_vectors(glove)
    assert words[0] == "alice" and len(words) == 24 and matrix.shape == (24, 8)
    for other in (word2vec, gz):
        again, same = read_vectors(other)
        assert again == words and np.array_equal(same, matrix)
    assert read_vectors(glove, limit=5)[0] == words[:5]


def test_read_vectors_names_the_bad_line(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"ragged.txt:2: 2 numbers, the file started with 3"):
        read_vectors(ragged)
    words = tmp_path / "words.txt"
    words.write_text("a 1 2\nb one two\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"words.txt:2: .*not a number"):
        read_vectors(words)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_vectors(tmp_path / "missing.txt")


def test_clusters_group_similar_words_and_survive_save_and_pickle(tmp_path: Path) -> None:
    clusters = _clusters()
    assert clusters.sizes == SIZES and len(clusters) == 24
    finest = [{(clusters.of(w) or ())[-1] for w in words} for words in GROUPS.values()]
    assert all(len(ids) == 1 for ids in finest) and len(set.union(*finest)) == len(GROUPS)
    assert clusters.of("zebra") is None
    path = tmp_path / "clusters.npz"
    clusters.save(path)
    for copy in (WordClusters.load(path), pickle.loads(pickle.dumps(clusters))):
        assert copy.sizes == SIZES and all(copy.of(w) == clusters.of(w) for w in _vectors())
    path.write_bytes(b"not a cluster file")
    with pytest.raises(ConfigurationError, match="not a word-cluster file"):
        WordClusters.load(path)


def test_clusters_need_enough_words() -> None:
    with pytest.raises(ValueError, match="3 words cannot make 5 clusters"):
        build_clusters(["a", "b", "c"], np.eye(3, dtype=np.float32), SIZES)


def test_features_carry_the_clusters_of_token_and_neighbours() -> None:
    clusters = _clusters()
    features = sentence_features(tokenize("i like @Frank zzz"), None, clusters)
    names = clusters.of("frank")
    assert names is not None
    assert [features[2][f"k{size}"] for size in SIZES] == list(names)  # '@' is dropped for the lookup
    assert features[3]["k5"] == "none"
    assert features[1]["1:k3"] == names[1] and "1:k5" not in features[1]  # neighbours: middle size


def test_clusters_let_the_tagger_tag_names_it_never_saw() -> None:
    # Every context holds names and foods alike, so only the clusters tell "frank" from "pasta".
    texts, spans = [], []
    for verb in GROUPS["verbs"]:
        for pronoun in GROUPS["pronouns"]:
            for k, (name, food) in enumerate(zip(GROUPS["names"][:5], GROUPS["food"][:5], strict=True)):
                tail = GROUPS["time"][k % 4]
                head = f"{pronoun} {verb} "
                texts += [f"{head}{name} {tail}", f"{head}{food} {tail}"]
                spans += [[(len(head), len(head) + len(name), "person")], []]
    plain = SpanTagger().fit(texts, spans)
    clustered = SpanTagger(word_clusters=_clusters()).fit(texts, spans)
    tests = ["we want frank now", "we want pasta now"]
    plain_labels = [[s.label for s in t.spans] for t in plain.predict(tests)]
    assert plain_labels[0] == plain_labels[1]  # unseen words in the same context: no way to tell them apart
    frank, pasta = clustered.predict(tests)
    assert [(s.start, s.end, s.label) for s in frank.spans] == [(8, 13, "person")] and pasta.spans == ()
    restored = pickle.loads(pickle.dumps(clustered))
    assert [s.label for s in restored.predict(tests[:1])[0].spans] == ["person"]


def test_word_clusters_command_and_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors, out = tmp_path / "v.txt", tmp_path / "out" / "clusters.npz"
    _write_glove(vectors)
    assert (
        ml_backend_main(["word-clusters", str(vectors), str(out), "--sizes", "2,3,5", "--limit", "1000"]) == 0
    )
    assert "24 words, clusters 2,3,5" in capsys.readouterr().out
    assert WordClusters.load(out).sizes == SIZES
    assert load_backend_settings(word_clusters=str(out)).word_clusters == out
    with pytest.raises(ConfigurationError, match=r"WORD_CLUSTERS: .*no such file"):
        load_backend_settings(word_clusters=str(tmp_path / "missing.npz"))
    assert ml_backend_main(["word-clusters", str(vectors), str(out), "--sizes", "3,x"]) == 2
    assert "--sizes: '3,x' is not a comma-separated list" in capsys.readouterr().err
    assert ml_backend_main(["word-clusters", str(vectors), str(out), "--sizes", "50"]) == 2
    assert "24 words cannot make 50 clusters" in capsys.readouterr().err


def test_models_trained_with_one_cluster_file_share_it_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "clusters.npz"
    _clusters().save(path)
    first, second = WordClusters.load(path), WordClusters.load(path)
    assert first is second
    model = SpanTagger(word_clusters=first).fit(["we like alice"], [[(8, 13, "person")]])
    copies = [pickle.loads(pickle.dumps(model)) for _ in range(2)]
    assert all(copy.word_clusters is first for copy in copies)


def test_training_uses_the_configured_clusters_for_span_controls_only(tmp_path: Path) -> None:
    from ml_backend.dataset import Example
    from ml_backend.labelconfig import ControlSpec
    from ml_backend.training import fit_control

    path = tmp_path / "clusters.npz"
    _clusters().save(path)
    settings = load_backend_settings(word_clusters=str(path), model_dir=str(tmp_path / "models"))
    spans = ControlSpec("label", "Labels", "spans", "text", "text", ("person",))
    items = [
        Example(k, f"we like {name}", ((8, 8 + len(name), "person"),))
        for k, name in enumerate(GROUPS["names"])
    ]
    fitted = fit_control(spans, items, settings=settings)
    assert fitted.report["word_clusters"] == {"words": 24, "sizes": [2, 3, 5]}
    assert fitted.trained.model.word_clusters is WordClusters.load(path)
    assert "word_clusters" not in fit_control(spans, items).report
    without = load_backend_settings(model_dir=str(tmp_path))
    assert "word_clusters" not in fit_control(spans, items, settings=without).report


def test_a_tagger_pickled_before_clusters_and_word_statistics_still_predicts() -> None:
    model = SpanTagger(word_clusters=_clusters()).fit(
        ["we like alice", "we like pizza"], [[(8, 13, "person")], []]
    )
    state = pickle.loads(pickle.dumps(model)).__getstate__()
    del state["word_clusters"], state["lexicon_"]
    old = SpanTagger.__new__(SpanTagger)
    old.__setstate__(state)
    assert old.word_clusters is None and old.lexicon_ is None
    [tagged] = old.predict(["we like alice"])
    assert tagged.marginals.shape == (3, len(model.tags_))
