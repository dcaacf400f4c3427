"""``ml-backend``: serve the backend with gunicorn, run the rq training worker, train, list versions, or
build the word clusters of the NER tagger or the word-vectors file of text classification."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from ml_backend.errors import BackendError, ConfigurationError
from ml_backend.logsetup import configure_logging
from ml_backend.models.word_clusters import DEFAULT_LIMIT, DEFAULT_SIZES, build_clusters, read_vectors
from ml_backend.settings import BackendSettings, load_backend_settings
from ml_backend.wiring import build_app

app = typer.Typer(
    name="ml-backend",
    help="ls-companion's ML backend for Label Studio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings(**overrides: Any) -> BackendSettings:
    settings = load_backend_settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings)
    return settings


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: HOST or 0.0.0.0)."),
    port: int | None = typer.Option(None, help="Port (default: PORT or 9090)."),
    workers: int | None = typer.Option(None, help="Gunicorn worker processes (default: WORKERS or 2)."),
    threads: int = typer.Option(4, help="Threads per worker (1 = gunicorn's sync worker)."),
) -> None:
    """Serve the backend with gunicorn (Label Studio connects to http://HOST:PORT)."""
    from gunicorn.app.base import BaseApplication

    settings = _settings(host=host, port=port, workers=workers)
    wsgi_app = build_app(settings)
    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # With threads a heartbeat, not a request limit (docs/scale.md): restarts a worker whose main
        # thread is stuck this long (one C call holding the GIL); LS gives up on /predict after 100 s.
        "timeout": 300,
        "graceful_timeout": 30,
        "preload_app": True,
        "loglevel": settings.log_level.lower(),
        "accesslog": None,
        "control_socket_disable": True,  # gunicorn 27's default socket path is shared by every instance
    }

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # settings a gunicorn release lacks are skipped
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return wsgi_app

    _Server().run()


@app.command()
def worker(burst: bool = typer.Option(False, help="Exit when the queue is empty (tests).")) -> None:
    """Run training jobs from the rq queue (needs REDIS_URL, LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)."""
    import redis
    from rq import Queue, Worker

    from ml_backend import jobs
    from ml_backend.store import ModelStore
    from ml_backend.training import Trainer

    settings = _settings()
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set: the worker takes its jobs from Redis")
    if not (settings.label_studio_url and settings.label_studio_api_key):
        raise ConfigurationError(
            "the worker needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to fetch annotations"
        )
    jobs.configure(Trainer(settings, ModelStore(settings.model_dir, keep_versions=settings.keep_versions)))
    connection = redis.Redis.from_url(settings.redis_url)
    Worker([Queue(settings.queue_name, connection=connection)], connection=connection).work(
        with_scheduler=True, burst=burst
    )


@app.command()
def train(project: int = typer.Argument(..., help="Label Studio project id.")) -> None:
    """Train a project now, in this process, and print the outcome as JSON."""
    from ml_backend.store import ModelStore
    from ml_backend.training import Trainer

    settings = _settings()
    outcome = Trainer(settings, ModelStore(settings.model_dir, keep_versions=settings.keep_versions)).train(
        project
    )
    sys.stdout.write(json.dumps(outcome, indent=2) + "\n")
    if outcome.get("status") == "failed":
        raise typer.Exit(3)


@app.command()
def versions(project: int = typer.Argument(..., help="Label Studio project id.")) -> None:
    """Print the stored versions of a project (newest first) as JSON."""
    from ml_backend.store import ModelStore

    settings = _settings()
    store = ModelStore(settings.model_dir, keep_versions=settings.keep_versions)
    sys.stdout.write(json.dumps(store.versions(project), indent=2) + "\n")


@app.command("word-clusters")
def word_clusters(
    vectors: Path = typer.Argument(..., help="GloVe, word2vec or fastText text file (.txt, .vec, .gz)."),
    out: Path = typer.Argument(..., help="Cluster file to write (.npz); point WORD_CLUSTERS at it."),
    limit: int = typer.Option(DEFAULT_LIMIT, min=1000, help="Most frequent words kept (the file's first)."),
    sizes: str = typer.Option(",".join(map(str, DEFAULT_SIZES)), help="Cluster counts, comma-separated."),
    seed: int = typer.Option(0, help="Seed of k-means."),
) -> None:
    """Cluster pretrained word vectors once, for the NER tagger's features (WORD_CLUSTERS)."""
    try:
        counts = tuple(int(part) for part in sizes.split(","))
    except ValueError:
        raise ConfigurationError(f"--sizes: {sizes!r} is not a comma-separated list of numbers") from None
    if not counts or min(counts) < 2:
        raise ConfigurationError("--sizes: every cluster count must be at least 2")
    started = time.perf_counter()
    words, matrix = read_vectors(vectors, limit)
    try:
        clusters = build_clusters(words, matrix, counts, seed)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    clusters.save(out)
    seconds = time.perf_counter() - started
    sys.stdout.write(f"{out}: {len(clusters):,} words, clusters {sizes}, {seconds:.0f} s\n")


@app.command("word-vectors")
def word_vectors(
    vectors: Path = typer.Argument(..., help="GloVe, word2vec or fastText text file (.txt, .vec, .gz)."),
    out: Path = typer.Argument(..., help="Vectors file to write (.npz); point WORD_VECTORS at it."),
    limit: int = typer.Option(100_000, min=1, help="Most frequent words kept (the file's first)."),
) -> None:
    """Keep the most frequent words' vectors once, compact, for text classification (WORD_VECTORS)."""
    from ls_companion.wordvectors import WordVectors

    words, matrix = read_vectors(vectors, limit)
    WordVectors(words, matrix).save(out)
    sys.stdout.write(f"{out}: {len(words):,} words x {matrix.shape[1]} dimensions (float16)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ml-backend`` script (``argv``: the arguments, default ``sys.argv[1:]``)."""
    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except BackendError as exc:
        sys.stderr.write(f"error: {exc.detail}\n")
        return 2 if isinstance(exc, ConfigurationError) else 3
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # usage errors from Typer's (vendored) click parser
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {exc}\n")
        return int(getattr(exc, "exit_code", 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
