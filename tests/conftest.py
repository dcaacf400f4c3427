"""Session fixtures: a real Label Studio (from .venv-ls) and a private Redis, started once per session.

Both start lazily, so a single unit test needs neither. To iterate faster against a Label Studio
you already run, set LSC_TEST_LABEL_STUDIO_URL and LSC_TEST_LABEL_STUDIO_TOKEN. LSC_TEST_DB=postgresql
(``make test TEST_DB=postgresql``) puts Label Studio on a fresh PostgreSQL database on 127.0.0.1:5432
(user postgres, trust auth), named ``<LSC_TEST_DB_PREFIX>_<random>`` and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess, LocalServerError, Postgres, start_label_studio
from ls_companion.settings import Settings
from tests.harness.redis_server import RedisProcess, start_redis

REPO_ROOT = Path(__file__).resolve().parent.parent

# The fuzz suites (tests/unit/test_fuzz_*.py): "ci" (the default, run by `make test`) is small and
# derandomized, so every run tries the same examples; bench/bench_fuzz.py passes --hypothesis-profile=long.
_FUZZ = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=25, derandomize=True, **_FUZZ)  # type: ignore[arg-type]
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("LSC_FUZZ_EXAMPLES", "1000")),
    **_FUZZ,  # type: ignore[arg-type]
)
settings.load_profile("ci")


def _origin_checkout() -> Path | None:
    """The local repository this checkout was cloned from, if it was cloned from a path."""
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not url or "://" in url or url.startswith("git@"):
        return None
    return Path(url.removeprefix("file:")).resolve()


def _shared_datasets() -> Path:
    """``../shared/datasets`` beside the checkout (or beside the one a clean clone was made from);
    ``LSC_SHARED_DATASETS`` overrides. A missing folder fails the tests that read it, naming the path."""
    override = os.environ.get("LSC_SHARED_DATASETS")
    candidates = [Path(override)] if override else []
    candidates.append(REPO_ROOT.parent / "shared" / "datasets")
    origin = _origin_checkout()
    if origin is not None:
        candidates.append(origin.parent / "shared" / "datasets")
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED_DATASETS = _shared_datasets()

_LS_KEY = pytest.StashKey[LabelStudioProcess]()


@pytest.fixture(scope="session")
def label_studio(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LabelStudioProcess]:
    """A real Label Studio 1.23.2 on a free 127.0.0.1 port with a temporary data dir."""
    url = os.environ.get("LSC_TEST_LABEL_STUDIO_URL")
    if url:
        token = os.environ.get("LSC_TEST_LABEL_STUDIO_TOKEN", "")
        yield LabelStudioProcess(url.rstrip("/"), token, "", "", Path(os.devnull))
        return
    data_dir = tmp_path_factory.mktemp("label-studio")
    database = os.environ.get("LSC_TEST_DB", "sqlite")
    if database not in ("sqlite", "postgresql"):
        pytest.fail(f"LSC_TEST_DB: {database!r} is not sqlite or postgresql")
    postgres = None
    if database == "postgresql":
        prefix = os.environ.get("LSC_TEST_DB_PREFIX", "lsc_test")
        postgres = Postgres(f"{prefix}_{secrets.token_hex(4)}")
    try:
        if postgres is not None:
            postgres.create()
        server = start_label_studio(data_dir, token=secrets.token_hex(20), postgres=postgres)
    except LocalServerError as exc:
        if postgres is not None:
            postgres.drop()
        pytest.fail(f"{exc}\n{(data_dir / 'label-studio.log').read_text(errors='replace')[-4000:]}")
    request.session.stash[_LS_KEY] = server
    try:
        yield server
    finally:
        server.stop()
        if postgres is not None:
            postgres.drop()


@pytest.fixture(scope="session")
def ls_settings(label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Companion settings pointing at the harness's Label Studio (nothing read from the environment)."""
    return Settings(
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.token,
        data_dir=tmp_path_factory.mktemp("companion-data"),
        redis_url=None,
    )


@pytest.fixture(scope="session")
def ls_client(ls_settings: Settings) -> Iterator[LabelStudioClient]:
    client = LabelStudioClient.from_settings(ls_settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A private redis-server on a free port."""
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except LocalServerError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    """Attach the tail of Label Studio's log to every failed test that used it."""
    report = yield
    server = item.session.stash.get(_LS_KEY, None)
    failed = getattr(report, "failed", False)
    if failed and server is not None and "label_studio" in getattr(item, "fixturenames", ()):
        report.sections.append(("Label Studio log (tail)", server.log_tail()))  # type: ignore[attr-defined]
    return report
