"""Label Studio misbehaving, through the fault proxy in front of the real server: slow answers, JSON cut
short, HTML error pages with status 200, a token revoked in the middle of a sync.

A fault that a retry gets past leaves no trace; one that lasts stops the sync with a one-line error,
and a rerun then ends where a clean run ends: a clean full sync from an empty data folder finds
nothing left to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from ls_companion.client import LabelStudioClient
from ls_companion.errors import LabelStudioError
from ls_companion.localserver import LabelStudioProcess
from ls_companion.records import User
from ls_companion.settings import Settings
from ls_companion.sync.engine import sync_inline
from ls_companion.sync.options import SyncOptions
from tests.harness.fault_proxy import FaultProxy
from tests.integration.sync_helpers import annotated_project, make_users

pytestmark = pytest.mark.integration

QUIET = SyncOptions(retrain_after=0)
TASKS, ANNOTATED = 10, 8


@pytest.fixture(scope="module")
def users(ls_client: LabelStudioClient) -> list[User]:
    return make_users(ls_client, 3)


@pytest.fixture
def proxy(label_studio: LabelStudioProcess) -> Iterator[FaultProxy]:
    with FaultProxy(label_studio.url) as faulty:  # slow answers take slow_seconds = 10
        yield faulty


def _settings(url: str, token: str, data_dir: Path) -> Settings:
    # A 3 s read timeout makes the proxy's 10 s answers time out; three attempts keep a lasting fault short.
    return Settings(
        label_studio_url=url,
        label_studio_api_key=token,
        data_dir=data_dir,
        http_timeout=3.0,
        retry_attempts=3,
        retry_max_wait=0.2,
    )


def _quality(client: LabelStudioClient, project_id: int) -> dict[int, object]:
    return {t.id: (t.meta.get("ls_companion") or {}).get("quality") for t in client.list_tasks(project_id)}


def _assert_like_a_clean_run(
    label_studio: LabelStudioProcess, ls_client: LabelStudioClient, project_id: int, tmp_path: Path
) -> None:
    """A clean full sync from an empty folder writes nothing: the project holds what a clean run writes."""
    clean = _settings(label_studio.url, label_studio.token, tmp_path / "clean")
    with closing(LabelStudioClient.from_settings(clean)) as client:
        result = sync_inline(clean, client, project_id, QUIET, full=True)
    assert (result.tasks_listed, result.annotations_new, result.patches) == (TASKS, 3 * ANNOTATED, 0)
    quality = _quality(ls_client, project_id)
    assert sum(q is not None for q in quality.values()) == ANNOTATED


def test_faults_a_retry_gets_past_leave_no_trace(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    proxy: FaultProxy,
    users: list[User],
    tmp_path: Path,
) -> None:
    project, _ = annotated_project(ls_client, "ls slow once", users, TASKS, annotate=ANNOTATED)
    proxy.inject("slow", "GET /api/tasks")
    proxy.inject("truncated", "GET /api/tasks")
    proxy.inject("html200", "PATCH")
    settings = _settings(proxy.url, label_studio.token, tmp_path / "data")
    with closing(LabelStudioClient.from_settings(settings)) as client:
        result = sync_inline(settings, client, project.id, QUIET)
    assert dict(proxy.faults) == {"slow": 1, "truncated": 1, "html200": 1}
    assert (result.tasks_listed, result.annotations_new, result.patches) == (TASKS, 3 * ANNOTATED, ANNOTATED)
    _assert_like_a_clean_run(label_studio, ls_client, project.id, tmp_path)


@pytest.mark.parametrize(
    ("fault", "match", "after", "message"),
    [
        ("slow", "GET /api/tasks", 0, "did not answer in time"),
        (
            "truncated",
            "GET /api/tasks",
            0,
            "answered HTTP 200 with a body that is not JSON (application/json)",
        ),
        ("html200", "PATCH", 3, "answered HTTP 200 with a body that is not JSON (text/html)"),
        ("revoked", "PATCH", 3, "rejected the API key (HTTP 401)"),
    ],
)
def test_a_lasting_fault_stops_the_sync_with_one_line_and_a_rerun_finishes_it(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    proxy: FaultProxy,
    users: list[User],
    tmp_path: Path,
    fault: str,
    match: str,
    after: int,
    message: str,
) -> None:
    project, _ = annotated_project(ls_client, f"ls {fault}", users, TASKS, annotate=ANNOTATED)
    proxy.inject(fault, match, after=after, times=100)
    settings = _settings(proxy.url, label_studio.token, tmp_path / "data")
    with (
        closing(LabelStudioClient.from_settings(settings)) as client,
        pytest.raises(LabelStudioError) as stopped,
    ):
        sync_inline(settings, client, project.id, QUIET)
    assert message in str(stopped.value) and "\n" not in str(stopped.value)
    written = sum(q is not None for q in _quality(ls_client, project.id).values())
    assert written == (after if match == "PATCH" else 0)  # the PATCHes before the fault went through

    direct = _settings(label_studio.url, label_studio.token, tmp_path / "data")
    with closing(LabelStudioClient.from_settings(direct)) as client:
        rerun = sync_inline(direct, client, project.id, QUIET)
    assert rerun.patches == ANNOTATED - written
    _assert_like_a_clean_run(label_studio, ls_client, project.id, tmp_path)
