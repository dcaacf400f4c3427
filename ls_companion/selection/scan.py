"""Scoring a pool file chunk by chunk while keeping only what selection needs.

Kept for every eligible row: its source id, its position in the file, its uncertainty measures,
probabilities and confidence (numpy arrays, a few hundred bytes per row). Kept for at most
``candidates`` rows: their text, for the clustering strategies (the most uncertain rows when a
measure is given, else a seeded uniform sample chosen by a hash of the source id, which does not
depend on the chunk size). Row dicts live only for the chunk being read.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from ls_companion.errors import BackendUnavailable, InputError
from ls_companion.selection.features import text_features
from ls_companion.selection.pool import MEASURES, FloatArray, Kind, ScoredPool
from ls_companion.selection.scoring import ScoreBatch, Scorer
from ls_companion.sources import DEFAULT_CHUNK_ROWS, Row, read_chunks, source_id

DEFAULT_CANDIDATES = 20_000


@dataclass(frozen=True)
class ScanOptions:
    id_column: str | None = None
    text_column: str | None = None
    #: Keep a bounded candidate set with features (for diversity / hybrid).
    keep_candidates: bool = False
    #: Keep them only while there is no model (a model strategy that may have to cold-start).
    candidates_only_without_model: bool = False
    candidates: int = DEFAULT_CANDIDATES
    #: Rank candidates by this measure (hybrid); None = seeded uniform sample (diversity, cold start).
    candidate_measure: str | None = None
    seed: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    #: Processes (or threads, for an HTTP scorer) scoring chunks while the next ones are read.
    workers: int = 1
    #: ``text_column`` holds image references (an Image project): each must be one the backend fetches.
    images: bool = False


@dataclass
class PoolScan:
    """The scored pool (unique, not excluded rows, in file order) and what else selection needs."""

    pool: ScoredPool
    positions: NDArray[np.int64]
    confidence: FloatArray | None
    versions: NDArray[np.int32]
    version_names: list[str]
    candidates: ScoredPool | None = None
    control: str | None = None
    rows_read: int = 0
    excluded: int = 0
    #: Rows the scorer could not score (an image the backend could not fetch or decode): left out.
    unscorable: int = 0
    duplicates: int = 0

    @property
    def model_version(self) -> str | None:
        return self.version_names[-1] if self.version_names else None


def item_data(row: Row, id_column: str | None) -> dict[str, Any]:
    """A pool row as task data: every column but the id column."""
    return {k: v for k, v in row.items() if k != id_column}


def image_reference_problem(value: Any) -> str | None:
    """Why the ML backend cannot fetch ``value`` as the image of a pool item, or None when it can.

    A pool item is no task yet, so only what needs no task is fetchable (ml_backend.media): http(s)
    URLs and Label Studio paths (``/data/upload/...``, ``/data/local-files/?d=...``). Storage URIs are
    resolved by LS only for a task, and the backend never reads a local path (a request could name any).
    """
    text = "" if value is None else str(value)
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https") or text.startswith("/data/"):
        return None
    if not text:
        return "no image reference"
    if len(scheme) > 1 and scheme != "file":  # one letter: a Windows drive
        return (
            f"{text[:120]} is a storage URI, which Label Studio resolves only for tasks: use its http(s) URL"
        )
    return (
        f"{text[:120]} is a local path, which the ML backend does not read: serve its folder as a Label "
        "Studio local-files storage and write /data/local-files/?d=<path below LOCAL_FILES_DOCUMENT_ROOT>"
    )


def check_image_references(where: str, values: Sequence[Any], first_row: int = 1) -> None:
    """Raise ``InputError`` naming the first value the backend cannot fetch (``where``: file and column)."""
    for k, value in enumerate(values):
        problem = image_reference_problem(value)
        if problem is not None:
            raise InputError(f"{where}, row {first_row + k}: {problem}")


def hash_priority(seed: int, ids: Sequence[str]) -> NDArray[np.uint64]:
    """A seeded pseudo-random number per id, the same whatever the order or chunking of the file."""
    prefix = f"{seed}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big") for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )


@dataclass
class _Candidates:
    """The best ``limit`` rows seen so far by (key descending, hash priority ascending)."""

    limit: int
    rows: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    keys: FloatArray = field(default_factory=lambda: np.zeros(0))
    prio: NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    texts: list[str] = field(default_factory=list)

    def offer(
        self, rows: NDArray[np.int64], keys: FloatArray, prio: NDArray[np.uint64], texts: list[str]
    ) -> None:
        all_rows = np.concatenate([self.rows, rows])
        all_keys = np.concatenate([self.keys, keys])
        all_prio = np.concatenate([self.prio, prio])
        best = np.lexsort((all_prio, -all_keys))[: self.limit]
        pooled = self.texts + texts
        self.rows, self.keys, self.prio = all_rows[best], all_keys[best], all_prio[best]
        self.texts = [pooled[i] for i in best]

    def threshold(self) -> float:
        return float(self.keys.min()) if len(self.rows) >= self.limit else -np.inf


@dataclass
class _Accumulator:
    ids: list[NDArray[np.str_]] = field(default_factory=list)
    positions: list[NDArray[np.int64]] = field(default_factory=list)
    measures: dict[str, list[FloatArray]] = field(default_factory=lambda: {m: [] for m in MEASURES})
    confidence: list[FloatArray] = field(default_factory=list)
    proba: list[NDArray[Any]] = field(default_factory=list)
    versions: list[NDArray[np.int32]] = field(default_factory=list)
    version_names: list[str] = field(default_factory=list)
    kind: Kind = "single"
    classes: tuple[str, ...] = ()
    control: str | None = None
    scored: bool | None = None  # None until the first chunk tells whether there is a model
    size: int = 0

    def add(self, ids: list[str], positions: NDArray[np.int64], batch: ScoreBatch | None) -> None:
        if self.scored is None:
            self.scored = batch is not None
        elif self.scored != (batch is not None):
            raise BackendUnavailable(
                "the model appeared or disappeared while the pool was being scored; rerun"
            )
        self.ids.append(np.asarray(ids, dtype=np.str_))
        self.positions.append(positions)
        self.size += len(ids)
        if batch is None:
            return
        if len(batch) != len(ids):
            raise BackendUnavailable(f"the scorer answered {len(batch)} scores for {len(ids)} items")
        if batch.model_version not in self.version_names:
            self.version_names.append(batch.model_version)
        self.versions.append(np.full(len(ids), self.version_names.index(batch.model_version), dtype=np.int32))
        for m in MEASURES:
            self.measures[m].append(np.asarray(batch.measures[m], dtype=np.float64))
        self.confidence.append(batch.confidence)
        if batch.proba is not None:
            self.proba.append(np.asarray(batch.proba, dtype=np.float32))
        self.kind, self.classes, self.control = batch.kind, batch.classes, batch.control


def _text(row: Row, column: str) -> str:
    if column not in row:
        raise InputError(f"the pool has no column {column!r} (set --text-column)")
    value = row[column]
    return "" if value is None else str(value)


@dataclass(frozen=True)
class _Scored:
    """One chunk after hashing and scoring: which rows are kept, their ids, their scores."""

    keep: list[int]
    ids: list[str]
    batch: ScoreBatch | None
    unscorable: int = 0  # rows the scorer skipped (an image it could not fetch): dropped from keep


@dataclass(frozen=True)
class _ChunkScorer:
    """Hash a chunk's rows, drop excluded ids, score the rest: the work done in parallel."""

    scorer: Scorer | None
    id_column: str | None
    exclude: Set[str]

    def __call__(self, rows: list[Row], score: bool) -> _Scored:
        sids = [source_id(row, self.id_column) for row in rows]
        keep = [i for i, sid in enumerate(sids) if sid not in self.exclude]
        ids = [sids[i] for i in keep]
        batch = None
        if self.scorer is not None and score and keep:
            batch = self.scorer.score(
                [{"id": sids[i], "data": item_data(rows[i], self.id_column)} for i in keep]
            )
        if batch is None or not batch.skipped:
            return _Scored(keep, ids, batch)
        scored = batch.scored(len(ids))
        return _Scored([keep[k] for k in scored], [ids[k] for k in scored], batch, len(batch.skipped))


def scan_pool(
    path: Path,
    scorer: Scorer | None,
    *,
    exclude: Set[str] = frozenset(),
    options: ScanOptions = ScanOptions(),
    on_rows: Callable[[int], None] | None = None,
) -> PoolScan:
    """Read ``path`` in chunks, drop excluded ids, score the rest, keep ids + scores (+ candidates).

    With ``options.workers`` > 1, chunks are hashed and scored in that many worker processes
    (threads for a scorer that cannot be pickled, such as the HTTP one) while the next chunks are read.
    """
    acc = _Accumulator()
    keeper = _Candidates(options.candidates) if options.keep_candidates else None
    if keeper is not None and options.text_column is None:
        raise InputError("diversity and hybrid need the text of each item: set --text-column")
    rows_read = excluded = unscorable = 0
    pending: deque[tuple[list[Row], int, Future[_Scored]]] = deque()
    in_flight = options.workers if options.workers > 1 else 0  # chunks read ahead while workers score

    def consume() -> None:
        nonlocal excluded, unscorable, keeper
        rows, offset, future = pending.popleft()
        scored = future.result()
        excluded += len(rows) - len(scored.keep) - scored.unscorable
        unscorable += scored.unscorable
        if not scored.keep:
            return
        start = acc.size
        acc.add(scored.ids, np.asarray(scored.keep, dtype=np.int64) + offset, scored.batch)
        if keeper is not None and acc.scored and options.candidates_only_without_model:
            keeper = None  # there is a model: no cold start, no candidates needed
        if keeper is not None:
            _offer(keeper, rows, scored.keep, scored.ids, scored.batch, start, options)

    work = _ChunkScorer(scorer, options.id_column, frozenset(exclude))
    with _parallel(work, options.workers) as submit:
        for rows in read_chunks(path, chunk_rows=options.chunk_rows):
            if options.images and options.text_column is not None:
                column = options.text_column
                check_image_references(
                    f"{path}: column {column!r}", [row.get(column) for row in rows], rows_read + 1
                )
            pending.append((rows, rows_read, submit(rows, acc.scored is not False)))
            rows_read += len(rows)
            while len(pending) > in_flight:
                consume()
            if on_rows is not None:
                on_rows(len(rows))
        while pending:
            consume()
    return _finish(acc, keeper, options, rows_read, excluded, unscorable)


# A worker process's copy of the chunk scorer (set once by the pool's initializer).
_WORKER: _ChunkScorer | None = None


def _install(work: _ChunkScorer) -> None:
    global _WORKER
    _WORKER = work


def _run_installed(rows: list[Row], score: bool) -> _Scored:
    if _WORKER is None:
        raise RuntimeError("the scoring worker was not initialized")
    return _WORKER(rows, score)


Submit = Callable[[list[Row], bool], "Future[_Scored]"]


@contextmanager
def _parallel(work: _ChunkScorer, workers: int) -> Iterator[Submit]:
    """A function running ``work`` on a chunk in the background (or at once, with one worker)."""
    if workers <= 1:

        def now(rows: list[Row], score: bool) -> Future[_Scored]:
            future: Future[_Scored] = Future()
            future.set_result(work(rows, score))
            return future

        yield now
        return
    executor: Executor
    try:
        pickle.dumps(work.scorer)
    except Exception:  # an HTTP client: threads are enough, the backend does the scoring
        executor = ThreadPoolExecutor(max_workers=workers)
        with executor:
            yield lambda rows, score: executor.submit(work, rows, score)
        return
    # forkserver, not fork: the caller may run threads (progress bars) that a fork would copy mid-lock.
    context = multiprocessing.get_context("forkserver")
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_install, initargs=(work,))
    with executor:
        yield lambda rows, score: executor.submit(_run_installed, rows, score)


def _offer(
    keeper: _Candidates,
    chunk: list[Row],
    keep: list[int],
    kept_ids: list[str],
    batch: ScoreBatch | None,
    start: int,
    options: ScanOptions,
) -> None:
    if options.candidate_measure is not None and batch is not None:
        keys = np.asarray(batch.measures[options.candidate_measure], dtype=np.float64)
    else:
        keys = np.zeros(len(kept_ids))
    local = np.flatnonzero(keys >= keeper.threshold())
    prio = hash_priority(options.seed, [kept_ids[i] for i in local])
    text_column = options.text_column or ""
    keeper.offer(
        local.astype(np.int64) + start, keys[local], prio, [_text(chunk[keep[i]], text_column) for i in local]
    )


def _finish(
    acc: _Accumulator,
    keeper: _Candidates | None,
    options: ScanOptions,
    rows_read: int,
    excluded: int,
    unscorable: int,
) -> PoolScan:
    ids = np.concatenate(acc.ids) if acc.ids else np.zeros(0, dtype=np.str_)
    _, first = np.unique(ids, return_index=True)
    unique_rows = np.sort(first)  # first occurrence of each id, in file order
    measures: dict[str, FloatArray] = {}
    if acc.scored:
        measures = {m: np.concatenate(acc.measures[m])[unique_rows] for m in MEASURES}
    proba = np.concatenate(acc.proba)[unique_rows] if acc.scored and acc.proba else None
    pool = ScoredPool(
        ids=ids[unique_rows], measures=measures, proba=proba, kind=acc.kind, classes=acc.classes
    )
    scan = PoolScan(
        pool=pool,
        positions=np.concatenate(acc.positions)[unique_rows]
        if acc.positions
        else np.zeros(0, dtype=np.int64),
        confidence=np.concatenate(acc.confidence)[unique_rows] if acc.scored else None,
        versions=np.concatenate(acc.versions)[unique_rows] if acc.scored else np.zeros(0, dtype=np.int32),
        version_names=acc.version_names,
        control=acc.control,
        rows_read=rows_read,
        excluded=excluded,
        unscorable=unscorable,
        duplicates=len(ids) - len(unique_rows),
    )
    if keeper is not None:
        scan.candidates = _candidate_pool(pool, ids, keeper, options.seed)
    return scan


def _candidate_pool(
    pool: ScoredPool, all_ids: NDArray[np.str_], keeper: _Candidates, seed: int
) -> ScoredPool:
    """The kept candidates as rows of ``pool`` (duplicates collapsed), with their text features."""
    cand_ids = all_ids[keeper.rows]
    _, first = np.unique(cand_ids, return_index=True)
    first = np.sort(first)
    order = np.argsort(pool.ids)
    rows = order[np.searchsorted(pool.ids[order], cand_ids[first])]
    subset = pool.subset(rows.astype(np.intp))
    texts = [keeper.texts[i] for i in first]
    return ScoredPool(
        ids=subset.ids,
        measures=subset.measures,
        proba=subset.proba,
        kind=subset.kind,
        classes=subset.classes,
        features=text_features(texts, seed=seed) if texts else np.zeros((0, 1)),
    )


def fetch_rows(
    path: Path, wanted: Mapping[int, str], *, id_column: str | None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> dict[int, Row]:
    """The rows at the given file positions (position -> expected source id), read in one more pass."""
    positions = sorted(wanted)
    found: dict[int, Row] = {}
    base = 0
    for chunk in read_chunks(path, chunk_rows=chunk_rows):
        end = base + len(chunk)
        for pos in positions[bisect_left(positions, base) : bisect_left(positions, end)]:
            row = chunk[pos - base]
            if source_id(row, id_column) != wanted[pos]:
                raise InputError(f"{path} changed while it was being read; rerun")
            found[pos] = row
        base = end
        if len(found) == len(positions):
            break
    if len(found) != len(positions):
        raise InputError(f"{path} changed while it was being read; rerun")
    return found
