"""The settings of this worker process, installed once by its entry point (``ls-companion worker``).

rq jobs take ids, not settings; they read them from here. The worker installs them before it forks
work horses, so every job of the process sees the same frozen object.
"""

from __future__ import annotations

from ls_companion.errors import ConfigError
from ls_companion.settings import Settings

_installed: Settings | None = None


def install(settings: Settings) -> None:
    global _installed
    _installed = settings


def settings() -> Settings:
    if _installed is None:
        raise ConfigError("ls-companion jobs run in `ls-companion worker`, which loads the settings")
    return _installed
