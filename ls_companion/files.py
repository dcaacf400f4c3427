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

from ls_companion.errors import InputError

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


def utf8_error(path: Path, data: bytes, exc: UnicodeDecodeError, first_line: int = 1) -> InputError:
    """A one-line error naming the line and the byte that is not UTF-8 (``data`` holds that line on)."""
    line = first_line + data.count(b"\n", 0, exc.start)
    return InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8")


def read_text(path: Path) -> str:
    """The text of a file the user named (UTF-8, a leading BOM dropped); bad bytes name their line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise utf8_error(path, data, exc) from None


def parse_json(text: str, where: str) -> Any:
    """JSON from a user's file; ``where`` (``path`` or ``path:line``) starts the one-line error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:  # the stdlib parser recurses once per nesting level
        raise InputError(f"{where}: JSON nested too deeply to read") from None


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return json.loads(text)
