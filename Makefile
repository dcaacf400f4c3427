# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
VENV_LS := .venv-ls
LS_VERSION := 1.23.2
# Label Studio's WSGI app runs under gunicorn (ls_companion/localserver.py), as production serves it.
LS_GUNICORN := 23.0.0
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet

.PHONY: demo test lint typecheck unit install install-ls bench word-clusters clean

demo: install install-ls
	$(VENV)/bin/ls-companion demo $(DEMO_ARGS)

# TEST_DB=postgresql: the harness's Label Studio on a fresh PostgreSQL database (tests/conftest.py).
TEST_DB ?= sqlite
test: install install-ls lint typecheck
	LSC_TEST_DB=$(TEST_DB) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

install: $(VENV)/.installed
install-ls: $(VENV_LS)/.installed-gunicorn

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

# Label Studio lives in its own virtualenv: its pins clash with ours, and users run it as a separate service.
$(VENV_LS)/.installed-gunicorn:
	test -x $(VENV_LS)/bin/python || $(PYTHON) -m venv $(VENV_LS)
	$(VENV_LS)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_LS)/bin/python -m pip install $(PIP_FLAGS) 'label-studio==$(LS_VERSION)' 'gunicorn==$(LS_GUNICORN)'
	touch $@

bench: install install-ls word-clusters
	$(PY) -m bench $(BENCH_ARGS)

# GloVe 6B 100-d vectors (a 118 MB download, made once): clusters for the NER tagger (WORD_CLUSTERS),
# the 100,000 most frequent words' vectors for text classification (WORD_VECTORS).
word-clusters: data/word-clusters.npz data/word-vectors.npz
data/glove-100d.txt: | $(VENV)/.installed
	$(PY) -m bench.glove $@
data/word-clusters.npz: | data/glove-100d.txt
	$(VENV)/bin/ml-backend word-clusters data/glove-100d.txt $@
data/word-vectors.npz: | data/glove-100d.txt
	$(VENV)/bin/ml-backend word-vectors data/glove-100d.txt $@

clean:
	rm -rf $(VENV) $(VENV_LS) .mypy_cache .ruff_cache .pytest_cache
