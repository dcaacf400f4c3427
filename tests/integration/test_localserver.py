"""Label Studio as ``localserver`` runs it: on its own settings with Redis switched off."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ls_companion.localserver import DEFAULT_LS_BIN, _label_studio_package, label_studio_settings

PROBE = """import django
django.setup()
from django.conf import settings
from core.redis import _redis, redis_connected
print(_redis is None, redis_connected(), settings.DATABASES["default"]["ENGINE"], settings.SENTRY_DSN == "")"""


def test_label_studio_reaches_no_redis_even_where_one_listens_on_6379(tmp_path: Path) -> None:
    """LS 1.23.2 would connect to localhost:6379 (this machine runs a Redis there); ours connects nowhere."""
    python = DEFAULT_LS_BIN.parent / "python"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path),
        "SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        **label_studio_settings(tmp_path),
    }
    probe = subprocess.run(
        [str(python), "-c", PROBE],
        env=env,
        cwd=_label_studio_package(python),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.split()[-4:] == ["True", "False", "django.db.backends.sqlite3", "True"]
