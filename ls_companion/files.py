"""Crash-safe files: write to a temporary name, fsync, rename over the target, fsync the folder.

A reader sees the old file or the new one, never half of one; leftovers of a crash are hidden files
ending in ``.tmp``. The companion's state and annotation store, the gold ledger and the ML backend's
model store all write through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX keeps names in the folder's inode)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, sync_folder: bool = True) -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces ``path`` when the block ends without an exception.

    The temporary name is unique, so concurrent writers never share one. ``sync_folder=False`` leaves
    the folder's fsync to a caller that writes several files and syncs once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        with tmp.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if sync_folder:
        fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    with atomic_writer(path, sync_folder=sync_folder) as handle:
        handle.write(data)


def write_lines_atomic(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` (each without its newline) to ``path`` atomically."""
    with atomic_writer(path) as handle:
        for line in lines:
            handle.write(line.encode("utf-8"))
            handle.write(b"\n")


def write_json_atomic(path: Path, payload: Any) -> None:
    write_lines_atomic(path, [json.dumps(payload, indent=1, sort_keys=True, default=str)])


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return json.loads(text)
