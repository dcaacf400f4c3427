"""Guideline versions: which version of the guidelines is in force, and since when.

A version is the ``v1.2`` of the guidelines' title (their first heading), else a hash of their content.
Bootstrap records it twice: in the project, as a last line of the instructions annotators read
(``<footer>``: Label Studio keeps no other free field on a project, and strips HTML comments), and in
our state, ``DATA_DIR/projects/<id>/guidelines.json`` (every version with the time it took effect).
The quality engine splits its numbers by version with ``history`` (``quality.versions``).
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from ls_companion.files import read_json, write_json_atomic

GUIDELINES_FILE = "guidelines.json"
_TITLE = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)
_VERSION = re.compile(r"\bv(\d+(?:\.\d+)*)\b", re.IGNORECASE)
_FOOTER = re.compile(
    r"\s*<footer><small>Guidelines (?P<version>\S+), in force since (?P<since>\S+) \(ls-companion\)"
    r"</small></footer>\s*$"
)

History = list[tuple[str, pd.Timestamp]]


def guideline_version(instruction: str) -> str | None:
    """``v1.2`` from the title (first heading, else first line), else ``sha1:<8 hex>`` of the text."""
    if not instruction.strip():
        return None
    heading = _TITLE.search(instruction)
    title = heading.group(1) if heading else instruction.strip().splitlines()[0]
    found = _VERSION.search(html.unescape(re.sub(r"<[^>]+>", "", title)))
    if found:
        return f"v{found.group(1)}"
    return "sha1:" + hashlib.sha1(instruction.strip().encode("utf-8")).hexdigest()[:8]


def split_footer(instruction: str) -> tuple[str, str | None, pd.Timestamp | None]:
    """The instructions without our footer, and the footer's version and time (None without one)."""
    found = _FOOTER.search(instruction or "")
    if not found:
        return instruction or "", None, None
    return instruction[: found.start()], found.group("version"), pd.Timestamp(found.group("since"))


def with_footer(body: str, version: str, since: datetime | pd.Timestamp) -> str:
    # To the microsecond, as Label Studio stamps annotations: cut to the second, the answers given in the
    # second before a change would count for the new version.
    stamp = pd.Timestamp(since).isoformat(timespec="microseconds")
    return (
        f"{body}\n<footer><small>Guidelines {version}, in force since {stamp} (ls-companion)</small></footer>"
    )


def stamped(desired: str, current: str, now: datetime) -> str:
    """``desired`` instructions with the footer of their version: the current one's time if unchanged."""
    version = guideline_version(desired)
    if version is None:
        return desired
    _, had, since = split_footer(current)
    return with_footer(desired, version, since if had == version and since is not None else now)


def read_history(folder: Path, instruction: str = "") -> History:
    """Versions oldest first from our state, plus the project's footer when the state misses it."""
    raw = read_json(folder / GUIDELINES_FILE) or []
    history = [(str(r["version"]), pd.Timestamp(r["since"])) for r in raw]
    _, version, since = split_footer(instruction)
    if version is not None and since is not None and (not history or history[-1][0] != version):
        history.append((version, since))
    return sorted(history, key=lambda item: item[1])


def record_version(folder: Path, instruction: str) -> History:
    """Add the version the project's instructions carry to our state, if it is new; the history."""
    history = read_history(folder, instruction)
    write_json_atomic(
        folder / GUIDELINES_FILE,
        [{"version": v, "since": since.isoformat()} for v, since in history],
    )
    return history
