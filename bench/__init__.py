"""Benchmarks: each ``bench/bench_*.py`` module prints its figures (ratios against a baseline measured in
the same run). Run one with ``.venv/bin/python -m bench.bench_<name>`` or all with ``make bench``."""

from pathlib import Path

#: The shared test and benchmark data, beside the checkout (see ../shared/datasets/README.md).
SHARED_DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"

#: GloVe word clusters for the NER benchmark, made by ``make word-clusters`` (not in git).
WORD_CLUSTERS = Path(__file__).resolve().parent.parent / "data" / "word-clusters.npz"

#: The GloVe vectors of text classification's vector candidates (WORD_VECTORS), made by the same target.
WORD_VECTORS = WORD_CLUSTERS.with_name("word-vectors.npz")
