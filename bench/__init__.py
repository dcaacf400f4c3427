"""Benchmarks: each ``bench/bench_*.py`` module prints its figures (ratios against a baseline measured in
the same run). Run one with ``.venv/bin/python -m bench.bench_<name>`` or all with ``make bench``."""
