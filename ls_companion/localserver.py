"""Start and stop a local Label Studio and our ML backend (the demo and the test harness use them).

Label Studio runs as a separate process from ``.venv-ls`` (its pins clash with ours), on 127.0.0.1,
with a known admin token, the way production serves it: ``label-studio init`` (migrations, the admin
user), then its WSGI app ``core.wsgi:application`` under gunicorn with several workers. Its database is
SQLite in a data folder of our choosing, or a PostgreSQL database (:class:`Postgres`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ls_companion.errors import CompanionError, InputError

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Label Studio's feature flag (an environment variable of that name) for its batched predictions import.
PREDICTIONS_IMPORT_FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"
#: Where ``make install-ls`` puts Label Studio: the repository's ``.venv-ls``.
DEFAULT_LS_BIN = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"
#: Label Studio's own settings, with its Redis switched off for good. LS 1.23.2 (open source) runs no rq
#: jobs (``REDIS_ENABLED = False``: imports, exports and actions run in the request), yet at start it
#: connects to a Redis hard-wired at localhost:6379 and reads user activity from it: a machine's Redis
#: would be used. Its rq connection points at a socket that does not exist instead.
LS_SETTINGS_MODULE = "lsc_label_studio_settings"
_LS_SETTINGS = """from core.settings.base import *  # noqa: F403  (Label Studio's settings read these while they load)
from core.settings.label_studio import *  # noqa: F403

for _queue in RQ_QUEUES.values():  # noqa: F405
    _queue["URL"] = "unix:///nonexistent/lsc-no-redis.sock"
"""


class LocalServerError(CompanionError):
    """A local server did not start."""


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL database for Label Studio (its ``DJANGO_DB=default`` and ``POSTGRE_*`` settings)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""

    def env(self) -> dict[str, str]:
        return {
            "DJANGO_DB": "default",
            "POSTGRE_NAME": self.name,
            "POSTGRE_USER": self.user,
            "POSTGRE_PASSWORD": self.password,
            "POSTGRE_HOST": self.host,
            "POSTGRE_PORT": str(self.port),
        }

    def _run(self, tool: str, *args: str) -> None:
        command = [tool, "-h", self.host, "-p", str(self.port), "-U", self.user, *args, self.name]
        try:
            subprocess.run(
                command,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PGPASSWORD": self.password},
            )
        except (OSError, subprocess.SubprocessError) as exc:
            stderr = getattr(exc, "stderr", None) or str(exc)
            raise LocalServerError(f"{tool} {self.name} failed: {stderr.strip()}") from None

    def create(self) -> None:
        """Create the (empty) database; ``label-studio init`` migrates it."""
        self._run("createdb")

    def drop(self) -> None:
        self._run("dropdb", "--if-exists", "--force")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM a server started in its own session (and its children), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def _log_tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def label_studio_env(
    data_dir: Path, *, username: str, password: str, token: str, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment Label Studio needs to run locally next to our backend and worker."""
    env = {k: v for k, v in base.items() if not k.startswith("LABEL_STUDIO_")}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password,
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # Without these two, LS 1.23 refuses ML backends and webhooks on 127.0.0.1 and private
            # addresses (docker-compose service names included) with a 403.
            "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
            "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
            # An offline machine: no error reports, analytics or version checks that retry and log.
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            # Off by default in 1.23.2: without it every predictions import recounts every task of the
            # project (10,000 tasks: ~50 s per request on a busy machine, whatever its size).
            PREDICTIONS_IMPORT_FLAG: "true",
        }
    )
    return env


class _Served:
    """What both local servers offer: the end of their log, and stopping them with their children."""

    log_path: Path
    process: subprocess.Popen[bytes] | None

    def log_tail(self, lines: int = 60) -> str:
        return _log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)


@dataclass
class LabelStudioProcess(_Served):
    """A running local Label Studio."""

    url: str
    token: str
    username: str
    password: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def wait_for_health(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url``/health answers 2xx; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalServerError(f"the server exited with code {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise LocalServerError(f"{url}/health did not answer within {timeout:.0f} s")


def _spawn(
    command: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    url: str,
    timeout: float,
    what: str,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session, logging to ``log_path``, and wait for ``url``/health."""
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # so that stopping it reaches every child (LS's, gunicorn's workers)
        )
    try:
        wait_for_health(url, timeout, process)
    except LocalServerError as exc:
        stop_process(process)
        raise LocalServerError(f"{what} did not start: {exc}", detail=f"see {log_path}") from None
    return process


def _label_studio_package(python: Path) -> Path:
    """The installed ``label_studio`` package folder of the virtualenv ``python`` belongs to."""
    venv = python.parent.parent
    found = sorted(venv.glob("lib/python3*/site-packages/label_studio/core/wsgi.py"))
    if not found:
        raise InputError(f"Label Studio's WSGI app is not installed under {venv}: run `make install-ls`")
    return found[-1].parent.parent


def label_studio_settings(data_dir: Path) -> dict[str, str]:
    """The variables that run Label Studio on ``LS_SETTINGS_MODULE``, written into ``data_dir``."""
    folder = data_dir / "settings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{LS_SETTINGS_MODULE}.py").write_text(_LS_SETTINGS)
    return {"PYTHONPATH": str(folder), "DJANGO_SETTINGS_MODULE": LS_SETTINGS_MODULE}


def start_label_studio(
    data_dir: Path,
    *,
    token: str,
    username: str = "admin@example.com",
    password: str = "admin12345",
    port: int | None = None,
    ls_bin: Path = DEFAULT_LS_BIN,
    base_env: Mapping[str, str] | None = None,
    postgres: Postgres | None = None,
    workers: int = 2,
    threads: int = 4,
    request_timeout: int = 120,
    timeout: float = 600.0,
) -> LabelStudioProcess:
    """Start Label Studio on 127.0.0.1 with its data in ``data_dir`` and wait for ``/health``.

    ``label-studio init`` migrates the database and creates the admin user, then gunicorn serves
    ``core.wsgi:application`` with ``workers`` x ``threads`` (measured on 2 cores: PATCH 56 ms vs
    95 ms under ``label-studio start``), on ``LS_SETTINGS_MODULE`` (no Redis). ``request_timeout`` is
    gunicorn's worker timeout, a heartbeat with threads: it restarts a worker whose main thread is
    stuck, while a long request runs on (unlike the 120 s ``harakiri`` of Label Studio's image; clients
    give up on their side, docs/scale.md). ``postgres``: an existing database to use instead of SQLite
    in ``data_dir``. ``timeout`` bounds the init and the wait for
    ``/health`` each (migrating a new database takes a minute or more on a busy 2-core machine).
    """
    if not ls_bin.exists():
        raise InputError(f"Label Studio is not installed at {ls_bin}: run `make install-ls`")
    python = ls_bin.parent / "python"
    package = _label_studio_package(python)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "label-studio.log"
    env = label_studio_env(
        data_dir, username=username, password=password, token=token, base=base_env or os.environ
    )
    env.update(postgres.env() if postgres is not None else {})
    env.update(label_studio_settings(data_dir))
    with log_path.open("ab") as log_file:
        try:
            init = subprocess.run(
                [str(ls_bin), "init", "--no-browser"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=data_dir,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalServerError(
                f"label-studio init did not finish within {timeout:.0f} s", detail=f"see {log_path}"
            ) from None
    if init.returncode != 0:
        raise LocalServerError(
            f"label-studio init exited with code {init.returncode}", detail=f"see {log_path}"
        )
    url = f"http://127.0.0.1:{port}"
    command = [
        str(python),
        "-m",
        "gunicorn",
        "core.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--worker-class=gthread",
        f"--timeout={request_timeout}",
        "--limit-request-line=0",  # long Data Manager queries in the URL (uWSGI's buffer in LS's image: 64 KiB)
        "--graceful-timeout=10",
    ]
    process = _spawn(
        command, env=env, cwd=package, log_path=log_path, url=url, timeout=timeout, what="Label Studio"
    )
    return LabelStudioProcess(url, token, username, password, log_path, process)


@dataclass
class MLBackendProcess(_Served):
    """A running ``ml-backend serve`` (gunicorn)."""

    url: str
    model_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


#: What a backend process inherits: the system's and Python's own variables, nothing of ours or its.
_INHERITED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV"})
_INHERITED_PREFIXES = ("LC_", "PYTHON", "LD_", "SSL_", "OMP_", "MKL_", "OPENBLAS_", "COVERAGE_")


def backend_env(
    model_dir: Path,
    *,
    label_studio_url: str,
    api_key: str | None,
    port: int,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The backend's environment: the system variables of ``base`` (``_INHERITED``), then ours.

    Nothing else is inherited, so a backend setting in the caller's shell (REDIS_URL, BASIC_AUTH_USER,
    ...) never leaks into a run: runs are hermetic without this package knowing the backend's settings.
    """
    source = base if base is not None else os.environ
    env = {k: v for k, v in source.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}
    env.update(
        {
            "MODEL_DIR": str(model_dir),
            "LABEL_STUDIO_URL": label_studio_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "INFO",
        }
    )
    if api_key:
        env["LABEL_STUDIO_API_KEY"] = api_key
    env.update(extra or {})
    return env


def start_ml_backend(
    model_dir: Path,
    *,
    label_studio_url: str,
    api_key: str | None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    workers: int = 2,
    threads: int = 4,
    timeout: float = 60.0,
) -> MLBackendProcess:
    """Run ``ml-backend serve`` on 127.0.0.1 with MODEL_DIR=model_dir; ``env`` adds settings (BASIC_AUTH_USER, ...)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = model_dir.parent / f"ml-backend-{port}.log"
    full_env = backend_env(
        model_dir, label_studio_url=label_studio_url, api_key=api_key, port=port, extra=env, base=base_env
    )
    full_env["WORKERS"] = str(workers)
    command = [sys.executable, "-m", "ml_backend.cli", "serve", "--threads", str(threads)]
    url = f"http://127.0.0.1:{port}"
    process = _spawn(
        command,
        env=full_env,
        cwd=REPO_ROOT,
        log_path=log_path,
        url=url,
        timeout=timeout,
        what="the ML backend",
    )
    return MLBackendProcess(url, model_dir, log_path, process)
