"""The ``ls-companion`` command line: one module per command, errors mapped to messages in ``app``."""

from ls_companion.cli import bootstrap, demo, metrics, report, select, simulate, sync  # noqa: F401  (registers)
from ls_companion.cli.app import app, main

__all__ = ["app", "main"]
