"""The backend keeps its OpenAPI contract: schemathesis, every check, against the live backend.

The backend runs as users run it (``ml-backend serve``: gunicorn, basic auth, a webhook secret), with
small limits so that the boundary cases schemathesis draws (``maxItems + 1`` tasks, a config one
character too long) stay cheap. A fixed seed and a bounded number of examples keep the run the same
from one CI run to the next (about 40 s on two cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from ls_companion.localserver import REPO_ROOT, start_ml_backend

CONFIG = Path(__file__).with_name("schemathesis.toml")
CREDENTIALS = {
    "CONTRACT_USER": "ls",
    "CONTRACT_PASSWORD": "pw-contract",
    "CONTRACT_WEBHOOK_SECRET": "hook-secret",
}
MAX_EXAMPLES = 20


def test_the_live_backend_keeps_its_openapi_contract(tmp_path: Path) -> None:
    backend = start_ml_backend(
        tmp_path / "models",
        label_studio_url="http://127.0.0.1:9",  # never reached: training is not the contract's business
        api_key=None,
        env={
            "BASIC_AUTH_USER": CREDENTIALS["CONTRACT_USER"],
            "BASIC_AUTH_PASS": CREDENTIALS["CONTRACT_PASSWORD"],
            "WEBHOOK_SECRET": CREDENTIALS["CONTRACT_WEBHOOK_SECRET"],
            "MAX_TASKS": "20",
            "MAX_LABEL_CONFIG_LENGTH": "20000",
            "TRAIN_EVERY_N_ANNOTATIONS": "1000000",
            "TRAIN_DEBOUNCE_SECONDS": "86400",
        },
        workers=1,
    )
    document = tmp_path / "openapi.json"
    try:
        auth = (CREDENTIALS["CONTRACT_USER"], CREDENTIALS["CONTRACT_PASSWORD"])
        document.write_bytes(httpx.get(f"{backend.url}/openapi.json", auth=auth).raise_for_status().content)
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(CONFIG),
                "run",
                str(document),
                "--url",
                backend.url,
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--request-timeout",
                "30",
                "--no-color",
            ],
            env={**os.environ, **CREDENTIALS, "SCHEMATHESIS_HOOKS": "tests.contract.hooks"},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        log = backend.log_tail(40)
    finally:
        backend.stop()
    report = run.stdout[-8000:] + run.stderr[-2000:]
    assert run.returncode == 0, f"{report}\n--- backend log ---\n{log}"
    assert "Traceback" not in log, log
