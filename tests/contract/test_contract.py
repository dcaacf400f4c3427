"""The backend keeps its OpenAPI contract and its limits, live: gunicorn, basic auth, a webhook secret.

schemathesis runs every check against ``/openapi.json``, with small limits so that the boundary cases it
draws (``maxItems + 1`` tasks, a config one character too long) stay cheap. A fixed seed and a bounded
number of examples keep the run the same from one CI run to the next (about 40 s on two cores).
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ls_companion.localserver import REPO_ROOT, MLBackendProcess, start_ml_backend

CONFIG = Path(__file__).with_name("schemathesis.toml")
CREDENTIALS = {
    "CONTRACT_USER": "ls",
    "CONTRACT_PASSWORD": "pw-contract",
    "CONTRACT_WEBHOOK_SECRET": "hook-secret",
}
AUTH = (CREDENTIALS["CONTRACT_USER"], CREDENTIALS["CONTRACT_PASSWORD"])
MAX_EXAMPLES = 20
MAX_BODY_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLBackendProcess]:
    process = start_ml_backend(
        tmp_path_factory.mktemp("contract") / "models",
        label_studio_url="http://127.0.0.1:9",  # never reached: training is not the contract's business
        api_key=None,
        env={
            "BASIC_AUTH_USER": CREDENTIALS["CONTRACT_USER"],
            "BASIC_AUTH_PASS": CREDENTIALS["CONTRACT_PASSWORD"],
            "WEBHOOK_SECRET": CREDENTIALS["CONTRACT_WEBHOOK_SECRET"],
            "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "MAX_TASKS": "20",
            "MAX_LABEL_CONFIG_LENGTH": "20000",
            "TRAIN_EVERY_N_ANNOTATIONS": "1000000",
            "TRAIN_DEBOUNCE_SECONDS": "86400",
        },
        workers=1,
    )
    yield process
    process.stop()
    # no request ended in the app's catch-all (a training run's own failure is not the contract's)
    assert "unexpected error on" not in process.log_tail(400), process.log_tail(60)


def test_the_live_backend_keeps_its_openapi_contract(backend: MLBackendProcess, tmp_path: Path) -> None:
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{backend.url}/openapi.json", auth=AUTH).raise_for_status().content)
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            *("--config-file", str(CONFIG), "run", str(document), "--url", backend.url),
            *(
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--request-timeout",
                "30",
                "--no-color",
            ),
        ],
        env={**os.environ, **CREDENTIALS, "SCHEMATHESIS_HOOKS": "tests.contract.hooks"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout


def _exchange(url: str, head: bytes, body_parts: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a raw request to the backend; the status line and body of its answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_oversize_bodies_get_413_under_gunicorn_without_being_read(backend: MLBackendProcess) -> None:
    basic = b"Basic " + base64.b64encode(":".join(AUTH).encode())
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic + b"\r\nConnection: close\r\n"
    # Content-Length says 1 GB and not one byte follows: the answer comes at once.
    status, body = _exchange(backend.url, head + b"Content-Length: 1000000000\r\n\r\n", iter(()))
    assert status == 413 and b'"payload_too_large"' in body
    # A chunked body is read up to MAX_BODY_BYTES, then refused.
    chunk = b"x" * 8192
    parts = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // len(chunk) + 1))
    status, body = _exchange(
        backend.url, head + b"Transfer-Encoding: chunked\r\n\r\n", iter([*parts, b"0\r\n\r\n"])
    )
    assert status == 413 and b'"payload_too_large"' in body
