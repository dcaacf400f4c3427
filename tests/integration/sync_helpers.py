"""Helpers of the sync tests: annotated projects, companion subprocesses, waiting."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ls_companion.client import LabelStudioClient
from ls_companion.records import Project, User
from tests.conftest import REPO_ROOT
from tests.integration.helpers import choice, new_project

T = TypeVar("T")
_users = itertools.count(1)


def make_users(client: LabelStudioClient, n: int) -> list[User]:
    """``n`` fresh annotator accounts (CE: the admin records annotations in their name)."""
    tag = secrets.token_hex(3)
    return [
        client.create_user(
            f"annotator{next(_users)}-{tag}@example.com", password="pass-12345", first_name="A"
        )
        for _ in range(n)
    ]


def labels_for(i: int) -> tuple[str, str, str]:
    """Three annotators' answers on task ``i``: every third task splits 2 to 1, the others agree."""
    if i % 3 == 2:
        return ("spam", "spam", "ham")
    label = "spam" if i % 2 else "ham"
    return (label, label, label)


def annotated_project(
    client: LabelStudioClient, prefix: str, users: Sequence[User], n_tasks: int, *, annotate: int
) -> tuple[Project, list[int]]:
    """A project of ``n_tasks`` tasks whose first ``annotate`` are labeled by ``users`` through the API."""
    project = new_project(client, prefix)
    ids = client.import_tasks(project.id, [{"data": {"text": f"message {i}"}} for i in range(n_tasks)])
    for i, task_id in enumerate(ids[:annotate]):
        for user, label in zip(users, labels_for(i), strict=False):
            client.create_annotation(task_id, choice(label), completed_by=user.id, lead_time=3.0)
    return project, ids


def companion_env(url: str, token: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATA_DIR")}
    env.update(
        {
            "LABEL_STUDIO_URL": url,
            "LABEL_STUDIO_API_KEY": token,
            "DATA_DIR": str(data_dir),
            "RETRY_ATTEMPTS": "8",
            "RETRY_MAX_WAIT": "0.5",
            **extra,
        }
    )
    return env


def run_companion(
    args: Sequence[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ls_companion", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def start_companion(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A long-running ``ls-companion`` process (worker, schedule) in its own process group."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "ls_companion", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,  # kill -9 reaches the worker and its work horse together
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """kill -9 a worker and everything it started: rq's work horse runs in a session of its own, so
    killing the worker's process group alone leaves the horse running the job to its end."""
    pids, frontier = [process.pid], [process.pid]
    while frontier:
        frontier = [child for pid in frontier for child in _children(pid)]
        pids += frontier
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(20)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
